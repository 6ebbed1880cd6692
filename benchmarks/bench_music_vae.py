"""MusicVAE latency on CPU: an 11-step 2-bar interpolation and sampling 8, numpy and keras paths.

    .venv/bin/python benchmarks/bench_music_vae.py [--model melody-2bar] [--runs 30]

Prints JSON: p50/p95 in milliseconds per operation and path, model load time, peak memory
(process peak RSS, and the Python heap peak of the numpy path from tracemalloc).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def percentiles(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def timed(fn, runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def clips(model) -> tuple:
    """Two real clips (Nottingham or Groove) when the data sets are there, else two samples."""
    from models.midi_io import read_midi

    datasets = Path(os.environ.get("CADENZA_DATASETS", ROOT.parent / "shared" / "datasets"))
    folder = datasets / ("drums/groove" if model.kind == "drums" else "melody/nottingham")
    found = []
    for f in sorted(folder.rglob("*.mid"))[:200]:
        try:
            model.labels_for(read_midi(f))
        except Exception:  # noqa: BLE001 - not every file fits the model
            continue
        found.append(read_midi(f))
        if len(found) == 2:
            return tuple(found)
    return tuple(model.sample(2, temperature=0.5, seed=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="melody-2bar")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=11)
    args = parser.parse_args()

    from models.registry import ModelRegistry

    t0 = time.perf_counter()
    model = ModelRegistry().load(args.model)
    load_s = time.perf_counter() - t0
    a, b = clips(model)
    results: dict[str, object] = {
        "model": args.model, "config": model.config.name, "z_size": model.z_size,
        "params": model.net.count_params(), "load_s": round(load_s, 2), "runs": args.runs,
        "cpu_count": os.cpu_count(), "loadavg": os.getloadavg()[0],
    }
    for backend in ("numpy", "keras"):
        runs = args.runs if backend == "numpy" else max(5, args.runs // 3)
        def interpolate(backend: str = backend) -> None:
            model.interpolate(a, b, steps=args.steps, backend=backend)

        def sample(backend: str = backend) -> None:
            model.sample(8, temperature=0.5, seed=1, backend=backend)

        inter = timed(interpolate, runs)
        samp = timed(sample, runs)
        results[f"interpolate_{args.steps}_{backend}"] = percentiles(inter)
        results[f"sample_8_{backend}"] = percentiles(samp)
    tracemalloc.start()
    model.interpolate(a, b, steps=args.steps)
    model.sample(8, temperature=0.5, seed=1)
    results["numpy_path_heap_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
    tracemalloc.stop()
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
