"""How the shipped MusicVAE models do on music in other metres than 4/4: three designs.

    .venv/bin/python benchmarks/bench_meters.py [--model melody-2bar] [--limit 1500]

On the Nottingham tunes of the validation side of the training split (``is_validation_piece``
of the file name, fraction 0.1, as the shipped models were trained: no model here trained on
them), grouped into 4/4 tunes and the others (``--model drums-2bar``: the Groove files of the
validation and test splits of its ``info.csv``, grouped the same way):

* ``grid``: the sixteenth-note grid whose windows ignore bar lines (32 or 256 steps) and start
  on the tune's own bar lines (what ``Converter(any_meter=True)`` does, what the app uses);
* ``grid16``: the same windows started every 16 steps from the melody's first bar line;
* ``padded``: meter-aware windows: each bar of the tune (at most 16 steps: 2/4, 3/4, 6/8, 7/8)
  padded with "no event" to a 16-step bar, so that the model's bars are the tune's bars;
  accuracy counts the tune's own steps only, and the padding is cut from the output.

Reconstruction accuracy is per step of the greedy decode from the posterior mean (as
``cadenza evaluate``). Interpolation: between random pairs of windows of the same group, 7 steps
(slerp, greedy): ``smooth`` is the share of neighbouring steps whose Hamming distance to A does
not fall and to B does not rise; ``onset_ok`` the share of in-between steps whose notes start
only on the tune's steps (never in the padding, for ``padded``) and are not empty.

Prints one JSON object: per design and group, windows, accuracy and the interpolation figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

NOTTINGHAM = ROOT.parent / "shared" / "datasets" / "melody" / "nottingham"
GROOVE = ROOT.parent / "shared" / "datasets" / "drums" / "groove"


def onsets(labels: np.ndarray, kind: str) -> np.ndarray:
    """Where a window's labels start a note (melody) or play a drum (drums)."""
    return labels >= 2 if kind == "melody" else labels > 0


def padded_windows(conv, seq, steps: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Meter-aware windows: each bar of ``bar`` steps padded to 16 (label 0, no event)."""
    wins, masks = [], []
    for events, bar in conv.event_parts(seq):
        labels = conv.encode_events(events)
        if labels is None or bar > 16 or len(labels) % bar:
            continue
        lab = np.asarray(labels).reshape(-1, bar)
        pad = np.zeros((len(lab), 16), np.int64)
        pad[:, :bar] = lab
        mask = np.zeros((len(lab), 16), bool)
        mask[:, :bar] = True
        flat, fmask = pad.reshape(-1), mask.reshape(-1)
        for end in range(steps, len(flat) + 1, 16):
            w = flat[end - steps:end]
            if onsets(w, conv.kind).any():
                wins.append(w)
                masks.append(fmask[end - steps:end])
    return wins, masks


def groups(model, design: str, files: list[Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from models.midi_io import read_midi

    base = replace(model.converter, any_meter=True)
    conv = replace(base, hop_steps=16) if design == "grid16" else base
    out: dict[str, tuple[list, list]] = {"4/4": ([], []), "other": ([], [])}
    for f in files:
        seq = read_midi(f)
        four = all((t.numerator, t.denominator) == (4, 4) for t in seq.time_signatures)
        if design == "padded":
            wins, masks = padded_windows(base, seq, model.num_steps)
        else:
            arr = conv.to_windows(seq)
            wins, masks = list(arr), [np.ones(model.num_steps, bool)] * len(arr)
        seen = set()
        for w, m in zip(wins, masks, strict=True):
            key = tuple(int(x) for x in w)
            if key not in seen:
                seen.add(key)
                out["4/4" if four else "other"][0].append(w)
                out["4/4" if four else "other"][1].append(m)
    return {k: (np.asarray(w, np.int64).reshape(-1, model.num_steps),
                np.asarray(m, bool).reshape(-1, model.num_steps)) for k, (w, m) in out.items()}


def measure(model, windows: np.ndarray, masks: np.ndarray, pairs: int,
            rng: np.random.Generator) -> dict[str, float]:
    correct = total = 0
    for i in range(0, len(windows), 256):
        chunk, m = windows[i:i + 256], masks[i:i + 256]
        mu, _ = model.encode(chunk)
        dec = model.decode_labels(mu, 0.0)
        correct += int(np.sum((dec == chunk) & m))
        total += int(m.sum())
    smooth = onset_ok = n_mid = n_pairs = 0
    idx = rng.choice(len(windows), (pairs, 2), replace=len(windows) < 2 * pairs)
    for a, b in idx:
        if a == b:
            continue
        z = model.encode(np.stack([windows[a], windows[b]]))[0]
        path = model.decode_labels(model.interpolation_latents(z[0], z[1], 7), 0.0)
        mask = masks[a] & masks[b]
        da = [(p != path[0])[mask].sum() for p in path]
        db = [(p != path[-1])[mask].sum() for p in path]
        smooth += sum(da[k + 1] >= da[k] and db[k + 1] <= db[k] for k in range(6))
        n_pairs += 1
        for p in path[1:-1]:
            n_mid += 1
            hits = onsets(p, model.kind)
            onset_ok += bool(hits[mask].any()) and not hits[~mask].any()
    return {"windows": len(windows), "accuracy": round(correct / max(total, 1), 4),
            "smooth": round(smooth / max(6 * n_pairs, 1), 4),
            "onset_ok": round(onset_ok / max(n_mid, 1), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="melody-2bar", help="shipped model name or folder")
    parser.add_argument("--limit", type=int, default=1500, help="windows per group at most")
    parser.add_argument("--pairs", type=int, default=60, help="interpolations per group")
    parser.add_argument("--designs", default="grid,grid16,padded")
    args = parser.parse_args()

    from models.music_vae.data import is_validation_piece
    from models.music_vae.generate import load

    folder = Path(args.model)  # a model folder, or a shipped model's name
    model = load(folder if (folder / "config.json").is_file()
                 else ROOT / "models" / "shipped" / args.model)
    if model.kind == "drums":
        from models.music_vae.data import groove_splits

        splits = groove_splits(GROOVE) or {}
        files = sorted(GROOVE / rel for rel, split in splits.items() if split != "train")
    else:
        files = sorted(f for f in NOTTINGHAM.glob("*.mid") if is_validation_piece(f.name, 0.1))
    result: dict = {"model": args.model, "validation_tunes": len(files)}
    for design in args.designs.split(","):
        t0 = time.perf_counter()
        for group, (w, m) in groups(model, design, files).items():
            rng = np.random.default_rng(0)
            if len(w) > args.limit:
                keep = np.sort(rng.choice(len(w), args.limit, replace=False))
                w, m = w[keep], m[keep]
            result[f"{design} {group}"] = measure(model, w, m, args.pairs, rng)
        result[f"{design} seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(result), file=sys.stderr, flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
