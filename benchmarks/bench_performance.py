"""PerformanceRNN generation speed on this machine.

    .venv/bin/python benchmarks/bench_performance.py [--model NAME|PATH] [--events N]

Prints JSON: events/s at batch 1 and batch 8 for the numpy fast path and the keras.ops path,
the time from a request to the first generated event after a 500-event primer (priming
included), and peak memory (RSS high-water mark of this process). Targets: >= 2,500 events/s
at batch 1 (numpy) and <= 50 ms to the first event.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.performance_rnn import encoding as enc  # noqa: E402


def primer_events(count: int = 500) -> np.ndarray:
    """A real 500-event primer from the data sets, or a synthetic one when they are missing."""
    root = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "piano" / "pop909"
    files = sorted(root.glob("*.mid"))
    if files:
        from models.midi_io import read_midi

        events = enc.encode(read_midi(files[0]))
        if events.size >= count:
            return events[:count]
    rng = np.random.default_rng(0)
    out = []
    while len(out) < count:
        p = int(rng.integers(48, 84))
        out += [enc.VELOCITY + 15, p, enc.TIME_SHIFT + 9, enc.NOTE_OFF + p]
    return np.asarray(out[:count], np.int16)


def events_per_second(session, batch: int, events: int) -> float:  # noqa: ANN001
    from models.performance_rnn.generate import sample

    engine = session.engine
    control = enc.control_vector()
    state = engine.tile(session._state, batch)  # noqa: SLF001
    bias0 = engine.first_bias(np.repeat(control[None], batch, axis=0))
    rng = np.random.default_rng(0)
    logits = np.repeat(session._last_logits, batch, axis=0)  # noqa: SLF001
    t0 = time.perf_counter()
    for _ in range(events):
        ev, _ = sample(logits, rng)
        logits = engine.step(ev, state, bias0)
    return batch * events / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or folder (default: shipped)")
    parser.add_argument("--events", type=int, default=2000, help="events per numpy measurement")
    args = parser.parse_args()

    from models.performance_rnn.generate import Continuer
    from models.registry import ModelRegistry

    model = ModelRegistry().load(args.model, "performance")
    primer = primer_events(500)
    results: dict[str, object] = {"model": model.name, "arch": model.config.arch,
                                  "layers": list(model.config.layers)}

    from models.compute import single_blas_thread

    engines = [("numpy", args.events)]
    if model.config.arch != "transformer":  # a transformer generates with numpy only
        engines.append(("keras", max(100, args.events // 10)))
    for engine, count in engines:
        session = Continuer(model, engine)
        session.primer_events = primer
        session._prime_with(enc.control_vector())  # noqa: SLF001 - warm-up / compile
        for batch in (1, 8):
            with single_blas_thread():
                events_per_second(session, batch, 20)  # warm-up
                results[f"{engine}_events_per_s_batch{batch}"] = round(
                    events_per_second(session, batch, count))

    # Request -> first event: prime on the 500-event primer, then sample one event.
    session = Continuer(model, "numpy")
    latencies = []
    for _ in range(5):
        t0 = time.perf_counter()
        session.primer_events = primer
        session._prime_with(enc.control_vector())  # noqa: SLF001
        session.generate_detailed(0.01, seed=0, max_events=1)
        latencies.append(time.perf_counter() - t0)
    results["first_event_ms_after_500_event_primer"] = round(1000 * min(latencies), 1)
    results["first_event_ms_median"] = round(1000 * float(np.median(latencies)), 1)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
