"""Morph models side by side: how they sound (measured) and how long they take.

    .venv/bin/python benchmarks/bench_morph.py --models nsynth-small[,OTHER] \
        --data /tmp/nsdata/valid --limit 32 [--pairs 16] [--gpu]

For each model (a name or a folder of any Morph family: ``nsynth``, ``ddsp``), on the notes of
a data set's validation split (``--limit`` of them, evenly spread; as ``cadenza evaluate
nsynth``, :func:`models.nsynth.evaluate.evaluate`):

* ``pitch_kept``: share of pitched notes whose reconstruction is within 50 cents of the source;
* ``harmonic_share`` and ``flatness`` of the reconstructions (medians; the definitions are in
  :mod:`models.nsynth.signal`) and, once, of the sources (``source_*``);
* ``between``: share of 0.5 morphs of same-pitch pairs from different instruments (up to
  ``--pairs``) nearer each source (log-mel) than the sources are to each other;
* a flute x clarinet morph at middle C (``gm:flute``, ``gm:clarinet``, mix 0.5, seed 1): its
  pitch, harmonic share, flatness, and its log-mel distance to each source and theirs apart;
* ``morph_4s_warm_seconds``: that morph again in the same process (encode both, mix, decode),
  as the app's worker keeps a model;
* ``cli_morph_cold_seconds``: a whole ``cadenza morph`` command of the same two sources, a new
  process (Python and backend start-up, model load, compile, decode, write);
* ``cli_instrument_48k_seconds``: a whole ``cadenza morph-instrument --sample-rate 48000``
  (16 pitches), and ``instrument_render_seconds``, the part the command reports itself.

Prints a table (figures in rows, models in columns) and then the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.gpu_option import parse_args_with_gpu  # noqa: E402

SOURCES = ("gm:flute", "gm:clarinet")
PITCH = 60
QUALITY = ("pitch_kept", "harmonic_share", "harmonic_share_mean", "flatness",
           "source_harmonic_share", "source_flatness", "between", "pairs", "spectral_distance",
           "notes")
MORPH = ("morph_f0", "morph_harmonic_share", "morph_flatness", "morph_to_flute",
         "morph_to_clarinet", "flute_to_clarinet", "morph_between")
SPEED = ("morph_4s_warm_seconds", "cli_morph_cold_seconds", "cli_instrument_48k_seconds",
         "instrument_render_seconds")


def load(name: str):
    """A Morph model of any family through the registry (as ``cadenza evaluate`` loads it)."""
    from models.registry import ModelRegistry

    model = ModelRegistry().load(name)
    for operation in ("source_audio", "encode_batch", "guide", "decode"):
        if not callable(getattr(model, operation, None)):
            raise SystemExit(f"{name}: a {model.family} model, not a Morph model")
    return model


def one_morph(model) -> tuple[object, list, float]:
    """The flute x clarinet morph as ``cadenza morph`` makes it: (audio, sources, seconds)."""
    import numpy as np

    started = time.perf_counter()
    audios = [model.source_audio(s, pitch=PITCH) for s in SOURCES]
    emb = np.asarray(model.encode_batch(audios))
    f0, envelope = model.guide(audios, [0.5, 0.5])
    audio = model.decode(0.5 * (emb[0] + emb[1]), seed=1, f0=f0, envelope=envelope)
    return audio, audios, time.perf_counter() - started


def quality(model, args: argparse.Namespace) -> dict:
    from models.nsynth.evaluate import evaluate
    from models.nsynth.signal import estimate_f0, flatness, harmonic_share, spectral_distance

    result = evaluate(model, args.data, limit=args.limit, batch=args.batch, pairs=args.pairs)
    out = {k: result.get(k) for k in QUALITY}
    out["pitch_kept"] = result["pitch_accuracy"]
    audio, (a, b), _ = one_morph(model)  # cold: compile and soundfont load included
    sr = model.config.sample_rate
    y = audio.samples[:, 0]
    f0 = estimate_f0(a, sr)
    apart, to_a, to_b = (spectral_distance(a, b, sr), spectral_distance(y, a, sr),
                         spectral_distance(y, b, sr))
    out.update({
        "morph_f0": round(estimate_f0(y, sr), 2),
        "morph_harmonic_share": round(harmonic_share(y, sr, f0), 4),
        "morph_flatness": round(flatness(y, sr), 5),
        "morph_to_flute": round(to_a, 3), "morph_to_clarinet": round(to_b, 3),
        "flute_to_clarinet": round(apart, 3), "morph_between": bool(max(to_a, to_b) < apart),
    })
    out["morph_4s_warm_seconds"] = round(one_morph(model)[2], 2)
    return out


def commands(name: str) -> dict:
    """Whole commands, each a new process."""
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "cli_morph_cold_seconds": ["morph", *SOURCES, "--model", name, "-o",
                                       str(Path(tmp) / "m.wav")],
            "cli_instrument_48k_seconds": ["morph-instrument", *SOURCES, "--model", name,
                                           "--sample-rate", "48000", "-o",
                                           str(Path(tmp) / "inst")],
        }
        for key, argv in runs.items():
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "app", *argv], cwd=ROOT, text=True,
                                  capture_output=True)
            took = time.perf_counter() - started
            if done.returncode != 0:
                lines = done.stderr.strip().splitlines() or ["?"]
                out[key] = f"failed: {lines[-1][:120]}"
                continue
            out[key] = round(took, 2)
            said = re.search(r" in ([0-9.]+) s\s*$", done.stdout.strip())
            if key.startswith("cli_instrument") and said:
                out["instrument_render_seconds"] = float(said.group(1))
    return out


def table(figures: dict[str, dict], names: list[str]) -> str:
    rows = [["figure", *names], ["---"] * (len(names) + 1)]
    for key in (*QUALITY, *MORPH, *SPEED):
        cells = [figures[n].get(key) for n in names]
        if all(c is None for c in cells):
            continue
        rows.append([key, *("" if c is None else str(c) for c in cells)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
                     for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="nsynth-small",
                        help="comma-separated model names or folders (any Morph family)")
    parser.add_argument("--data", type=Path, default=Path("/tmp/nsdata/valid"),
                        help="a folder of notes, e.g. the valid split of 'cadenza dataset nsynth'")
    parser.add_argument("--limit", type=int, default=32, help="notes, evenly spread")
    parser.add_argument("--pairs", type=int, default=16, help="same-pitch pairs morphed")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--no-commands", action="store_true",
                        help="leave out the two timed commands (new processes)")
    args = parse_args_with_gpu(parser)
    if not args.data.is_dir():
        raise SystemExit(f"--data: no such folder {args.data} (cadenza dataset nsynth --out DIR)")

    import keras

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    figures: dict[str, dict] = {}
    for name in names:
        model = load(name)
        figures[name] = {"family": model.family, **quality(model, args)}
        model.close()
        if not args.no_commands:
            figures[name].update(commands(name))
    print(table(figures, names))
    print(json.dumps({
        "data": str(args.data), "limit": args.limit, "pairs": args.pairs,
        "backend": keras.backend.backend(), "cpu_count": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2), "models": figures,
    }, indent=1))


if __name__ == "__main__":
    main()
