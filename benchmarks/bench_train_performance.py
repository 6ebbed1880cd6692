"""PerformanceRNN training speed on this machine, per Keras backend.

    .venv/bin/python benchmarks/bench_train_performance.py [--config small|full|tiny]
        [--backends tensorflow,jax,torch] [--precisions float32,mixed_bfloat16] [--steps N]
        [--batch-size B] [--seq-len T]

Each backend runs in its own process (Keras picks its backend once, at import). The same real
windows from ../shared/datasets/piano (random events when the data sets are missing), with the
note state, go through the training step that ``cadenza train performance`` compiles (Adam,
clipping, the logits' cross-entropy). Prints JSON per backend: seconds per step, training
events/s, the first step (compilation) and peak memory (RSS high-water mark). A backend that is
not installed is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PIANO = ROOT.parent / "shared" / "datasets" / "piano"
BACKENDS = ("tensorflow", "jax", "torch")  # each is also the module it needs


def windows(batch: int, seq_len: int, note_state: bool
            ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """``batch`` training windows: real ones from a few POP909 and ASAP files when present."""
    from models.performance_rnn import data as data_lib
    from models.performance_rnn import encoding as enc

    files = sorted(PIANO.rglob("*.mid"))[::97][:24]
    if files:
        encoded = data_lib.load_encoded(files, cache_dir=None)
        if any(e.size > seq_len for e in encoded.events):
            return data_lib.fixed_windows(encoded, seq_len, batch, note_state=note_state)
    rng = np.random.default_rng(0)
    fake = data_lib.EncodedSet(names=["random"],
                               events=[rng.integers(0, enc.NUM_CLASSES, 4 * seq_len + 8)])
    return data_lib.fixed_windows(fake, seq_len, batch, note_state=note_state)


def measure(config_name: str, steps: int, batch: int | None, seq_len: int | None,
            precision: str = "float32") -> dict:
    import keras

    keras.config.set_dtype_policy(precision)  # mixed_bfloat16: bfloat16 math, float32 weights

    from models.performance_rnn.model import build_model, get_config, get_training
    from models.performance_rnn.train import compile_model

    config = get_config(config_name)
    settings = get_training(config_name, batch_size=batch, seq_len=seq_len)
    model = build_model(config)
    compile_model(model, settings)
    x, y = windows(settings.batch_size, settings.seq_len, model.uses_notes)
    t0 = time.perf_counter()
    model.keras_model.train_on_batch(x, y)
    first = time.perf_counter() - t0
    model.keras_model.train_on_batch(x, y)  # some backends compile on the second call too
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.keras_model.train_on_batch(x, y)
        times.append(time.perf_counter() - t0)
    step = float(np.median(times))
    return {
        "backend": keras.backend.backend(),
        "precision": precision,
        "config": config.name,
        "layers": list(config.layers),
        "batch": settings.batch_size,
        "seq_len": settings.seq_len,
        "s_per_step_median": round(step, 3),
        "train_events_per_s": round(settings.batch_size * settings.seq_len / step),
        "first_step_s": round(first, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small", help="small (default), full or tiny")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated Keras backends (default: all three)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per backend (10)")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per step (64)")
    parser.add_argument("--seq-len", type=int, default=None, help="events per window (config)")
    parser.add_argument("--precisions", default="float32",
                        help="comma-separated Keras dtype policies, e.g. "
                             "float32,mixed_bfloat16 (default: float32)")
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print(json.dumps(measure(args.config, args.steps, args.batch_size, args.seq_len,
                                 args.precision)))
        return
    results = []
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if backend not in BACKENDS:
            results.append({"backend": backend, "error": f"not one of {', '.join(BACKENDS)}"})
            continue
        probe = subprocess.run([sys.executable, "-c", f"import {backend}"], capture_output=True)
        if probe.returncode != 0:
            results.append({"backend": backend, "error": "not installed"})
            continue
        for precision in precisions:
            cmd = [sys.executable, __file__, "--one", "--config", args.config, "--steps",
                   str(args.steps), "--batch-size", str(args.batch_size),
                   "--precision", precision]
            if args.seq_len:
                cmd += ["--seq-len", str(args.seq_len)]
            run = subprocess.run(cmd, capture_output=True, text=True,
                                 env={**os.environ, "KERAS_BACKEND": backend})
            lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
            if run.returncode != 0 or not lines:
                tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
                results.append({"backend": backend, "precision": precision, "error": tail})
            else:
                results.append(json.loads(lines[-1]))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
