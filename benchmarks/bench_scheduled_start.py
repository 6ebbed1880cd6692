"""A clip started at a given time (``AudioEngine.play(audio, at=)``, the window's Play on the
bar of a synced session), heard over a real JACK server.

    .venv/bin/python benchmarks/bench_scheduled_start.py [--period 256] [--starts 40]

* Starts its own JACK dummy server (``jackd -R -n cadenza-sched-PID -d dummy -r 48000
  -p PERIOD``; real-time, as musicians run it) unless ``--server NAME`` names a running one.
* The engine (``Devices(audio_device="system")``) plays a 100 ms step of sound ``--starts``
  times, each at a random time 0.15 to 0.4 s ahead (``play(at=)``). An independent JACK client
  in a process of its own (``tests/app/jack_onsets.py``: it stamps the JACK frame of each onset
  and times it from its own cycles' arrival, plus ``system:playback``'s latency) hears each
  onset; the error is heard time minus ``at``: p50/p95/max of its size in ms, and its mean
  (signed). ``late``: starts whose first block went out after its planned block (the call came
  too late or the feeder thread was held up).
* For comparison, the same clip with a plain ``play()`` (what Play did before): the time from
  the call to the sound, p50/p95 in ms.

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.jack_server import jack_server, stats  # noqa: E402


def nearest(times: list[float], at: float) -> float | None:
    near = [t for t in times if abs(t - at) < 0.5]
    return min(near, key=lambda t: abs(t - at)) if near else None


def bench(engine, starts: int, seed: int) -> dict:  # noqa: ANN001
    from models.audio_io import Audio
    from tests.app.jack_onsets import OnsetProbe

    rng = random.Random(seed)
    rate = engine.sample_rate
    step = Audio(np.full((rate // 10, 2), 0.5, dtype=np.float32), rate)
    errors: list[float] = []
    late = missed = 0
    delays: list[float] = []
    with OnsetProbe() as probe:
        time.sleep(0.2)
        for _ in range(starts):
            at = time.perf_counter() + rng.uniform(0.15, 0.4)
            engine.play(step, at=at)
            engine.wait(timeout=3)
            late += engine.clip.start_late_frames > 0
            time.sleep(0.1 + rng.uniform(0.0, 0.02))
            heard = nearest(probe.onsets(), at)
            if heard is None:
                missed += 1
            else:
                errors.append((heard - at) * 1000)
        for _ in range(max(10, starts // 4)):
            called = time.perf_counter()
            engine.play(step)
            engine.wait(timeout=3)
            time.sleep(0.1 + rng.uniform(0.0, 0.02))
            heard = nearest(probe.onsets(), called + 0.05)
            if heard is not None:
                delays.append((heard - called) * 1000)
        latency = probe.latency_frames
    return {"scheduled_error": {**stats(errors), "mean_signed_ms": round(float(np.mean(errors)),
                                                                         3)},
            "late_starts": late, "onsets_not_heard": missed,
            "plain_play_call_to_sound": stats(delays),
            "playback_latency_frames": latency,
            "engine_output_latency_ms": round(engine.output_latency * 1000, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--period", type=int, default=256, help="JACK period in frames (256)")
    ap.add_argument("--starts", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--server", default=None, help="a running JACK server's name")
    args = ap.parse_args()
    with jack_server("sched", args.period, args.server) as name:
        from app.devices import Devices

        with Devices(audio_device="system") as devices:
            engine = devices.audio()
            time.sleep(0.3)
            result = bench(engine, args.starts, args.seed)
        print(json.dumps({"server": name, "period_frames": args.period,
                          "period_ms": round(args.period / 48.0, 3),
                          "blocksize": 256, "load_average": os.getloadavg()[0], **result},
                         indent=2))


if __name__ == "__main__":
    main()
