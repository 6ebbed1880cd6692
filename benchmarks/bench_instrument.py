"""A morph instrument from a Morph model, measured as a player would hear it.

    .venv/bin/python benchmarks/bench_instrument.py --out /tmp/inst [--model nsynth-small]
        [--sources gm:0,gm:73] [--sample-rate 48000] [--pitches 36,40,...]

Builds the instrument (16 pitches from C2 by default) and prints: the wall time (and when the
bar reached 0.1, the sources encoded, and 0.9, the notes decoded), the progress reports (how
many, the longest gap between two), each WAV's DC (|mean|), how long C2, C6 and C7 stay audible
when held 4 s in Cadenza's sampler (the last 20 ms frame within 40 dB of the note's loudest),
and the level difference between neighbouring key centers (RMS of the note played at its key
center, held, 0.1..1.0 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.nsynth.instrument import DEFAULT_PITCHES, MorphInstrument, build_instrument  # noqa: E402
from models.nsynth.voices import render_sequence  # noqa: E402
from models.registry import ModelRegistry  # noqa: E402
from models.sequence import Note, NoteSequence  # noqa: E402

FRAME = 0.02


def audible_seconds(x: np.ndarray, rate: int, floor_db: float = 40.0) -> float:
    n = int(FRAME * rate)
    frames = x[: len(x) // n * n].reshape(-1, n)
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(db >= db.max() - floor_db)
    return float((loud[-1] + 1) * FRAME) if loud.size else 0.0


def held(inst: MorphInstrument, pitch: int, seconds: float, rate: int) -> np.ndarray:
    seq = NoteSequence(notes=[Note(pitch, 100, 0.0, seconds)])
    return render_sequence(inst, seq, sample_rate=rate, tail=1.0).samples[:, 0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default="nsynth-small")
    ap.add_argument("--sources", default="gm:0,gm:73")
    ap.add_argument("--sample-rate", type=int, default=48000)
    ap.add_argument("--pitches", default=None)
    args = ap.parse_args()
    pitches = tuple(int(p) for p in args.pitches.split(",")) if args.pitches else DEFAULT_PITCHES
    morpher = ModelRegistry().load(args.model, "nsynth")
    reports: list[tuple[float, float]] = []
    started = time.perf_counter()
    inst = build_instrument(morpher, args.sources.split(","), args.out, amount=0.5,
                            pitches=pitches, sample_rate=args.sample_rate,
                            progress=lambda f: reports.append((time.perf_counter() - started, f)))
    took = time.perf_counter() - started
    inside = [f for _, f in reports if 0 < f < 1]
    gaps = np.diff([t for t, _ in reports]) if len(reports) > 1 else np.zeros(1)
    rate = inst.sample_rate
    dc = {p: float(abs(np.mean(inst.samples[p]))) for p in inst.pitches}
    audible = {}
    for name, pitch in (("C2", 36), ("C6", 84), ("C7", 96)):
        audible[name] = audible_seconds(held(inst, pitch, 4.0, rate), rate)
    levels = []
    for p in inst.pitches:
        x = held(inst, p, 1.2, rate)[int(0.1 * rate): int(1.0 * rate)]
        levels.append(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12))
    steps = np.abs(np.diff(levels))
    def reached(fraction: float) -> float:
        return round(next((t for t, f in reports if f >= fraction), took), 1)

    result = {
        "seconds": round(took, 1), "sample_rate": rate, "pitches": inst.pitches,
        "encoded_at_s": reached(0.1), "decoded_at_s": reached(0.9),
        "progress_reports": len(reports), "progress_inside_0_1": len(inside),
        "longest_gap_between_reports_s": round(float(gaps.max()), 1),
        "dc_max": float(max(dc.values())),
        "audible_held_4s": {k: round(v, 2) for k, v in audible.items()},
        "levels_db": [round(float(v), 1) for v in levels],
        "neighbour_db_max": round(float(steps.max()), 2),
        "neighbour_db_mean": round(float(steps.mean()), 2),
        "loops": len(getattr(inst, "loops", {}) or {}),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
