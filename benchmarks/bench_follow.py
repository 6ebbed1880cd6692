"""How Continue follows its primer, on held-out piano performances.

    .venv/bin/python benchmarks/bench_follow.py [--model NAME|PATH] [--pieces 16] [--seeds 4]

For validation pieces of ``../shared/datasets/piano`` (the training split's held-out side), the
primer is seconds 10-18 of the piece and each continuation 10 s at temperature 1.0; the real
seconds 18-28 are measured the same way. Prints JSON: the median over takes of ``in_key``,
``pc_divergence``, ``notes_per_second`` and ``median_note_seconds`` (see
``models/performance_rnn/follow.py``) for the real continuation, for unconditioned
continuations and for continuations conditioned on the primer (the default), and the primer's
own density and note length.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.midi_io import read_midi  # noqa: E402
from models.performance_rnn import data as data_lib  # noqa: E402
from models.performance_rnn import follow  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "piano"
PRIMER = (10.0, 18.0)
REAL = (18.0, 28.0)


def held_out_pieces(count: int) -> list[Path]:
    files = data_lib.find_midi_files(DATA)
    _, val = data_lib.split_by_piece(files, DATA, 0.1)
    step = max(1, len(val) // count)
    return val[::step][:count]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None, help="default: the installed default")
    ap.add_argument("--pieces", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--half-life", type=float, default=None,
                    help="default: the model's own (its folder's \"follow\")")
    ap.add_argument("--flatten", type=float, default=None, help="default: the model's own")
    ap.add_argument("--release", type=float, default=None, help="default: the model's own")
    ap.add_argument("--modes", default="off,primer,density,histogram")
    args = ap.parse_args()

    from models.performance_rnn.generate import Continuer
    from models.registry import ModelRegistry

    model = ModelRegistry().load(args.model, "performance")
    overrides = {k: v for k, v in (("half_life", args.half_life), ("flatten", args.flatten),
                                   ("release", args.release)) if v is not None}
    following = dataclasses.replace(model.following, **overrides)
    session = Continuer(model.network, following=following)
    seconds = REAL[1] - REAL[0]
    modes = args.modes.split(",")
    rows: dict[str, list[dict[str, float]]] = {"real": [], **{m: [] for m in modes}}
    primer_rows: list[dict[str, float]] = []
    started = time.perf_counter()
    used = 0
    for path in held_out_pieces(args.pieces * 2):
        seq = read_midi(path).apply_sustain()
        if seq.total_time < REAL[1] + 1:
            continue
        primer = seq.trim(*PRIMER)
        real = seq.trim(*REAL)
        if len(primer.notes) < 8:
            continue
        used += 1
        rows["real"].append(follow.follow_figures(primer, real, seconds))
        primer_rows.append(follow.follow_figures(primer, primer, PRIMER[1] - PRIMER[0]))
        ref = follow.reference_controls(primer, half_life=following.half_life,
                                        flatten=following.flatten)
        for mode in modes:
            density = ref.density if mode in ("primer", "density") else None
            hist = ref.histogram if mode in ("primer", "histogram") else None
            session.prime(primer, density=density, pitch_histogram=hist)
            for seed in range(args.seeds):
                (take,) = session.generate(seconds, temperature=args.temperature, seed=seed,
                                           density=density, pitch_histogram=hist)
                rows[mode].append(follow.follow_figures(primer, take, seconds))
        if used >= args.pieces:
            break
    out = {
        "model": model.name,
        "pieces": used,
        "seeds": args.seeds,
        "temperature": args.temperature,
        "following": dataclasses.asdict(following),
        "primer_own": follow.summarize(primer_rows),
        **{name: follow.summarize(r) for name, r in rows.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out, indent=1, default=lambda x: float(np.round(x, 4))))


if __name__ == "__main__":
    main()
