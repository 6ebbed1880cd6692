"""MIDI clock out and in, measured over a real JACK server.

    .venv/bin/python benchmarks/bench_clock.py [--period 64] [--seconds 20] [--bpm 120]

* Starts its own JACK dummy server (``jackd -R -n cadenza-clock-bench-PID -d dummy -r 48000
  -p PERIOD``; real-time, as musicians run it) unless ``--server NAME`` names a running one.
  JACK delivers MIDI once per period, so the period bounds what any receiver can see: 64
  frames at 48 kHz is 1.3 ms.
* Clock out: :class:`app.clock.ClockOut` (opened through ``Devices.open_clock_out``) sends
  ``--bpm`` for ``--seconds``; a separate JACK client (a drum machine's part) stamps each pulse
  on arrival. Pulse interval jitter: |interval - 60/(24 BPM)|, p50/p95/max in ms; the sender's
  own lateness (sent - deadline) too.
* Clock in: a separate JACK client sends clock on absolute deadlines (120 BPM, then 132, 100,
  126, 8 beats each); :class:`app.clock.ClockIn` (``Devices.open_clock_in``) follows it. For
  each tempo change: the beats until the estimate stays within 0.5 BPM; at every beat: the
  estimated beat time (the clock's line, when the beat's pulse arrived) against the sender's
  own beat time, p50/p95 in ms.

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.jack_server import jack_server, stats  # noqa: E402


def bench_out(devices, api: int, bpm: float, seconds: float) -> dict:  # noqa: ANN001
    import rtmidi

    from app.clock import CLOCK
    from app.transport import realtime_thread

    rx = rtmidi.MidiIn(api, name="bench clock rx", queue_size_limit=8192)
    rx.ignore_types(sysex=True, timing=False, active_sense=True)
    rx.open_virtual_port("bench-clock-rx")
    arrivals: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        realtime_thread(40)
        while not stop.is_set():
            msg = rx.get_message()
            if msg is None:
                time.sleep(0.0002)
                continue
            if msg[0] == [CLOCK]:
                arrivals.append(time.perf_counter())

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    clock = devices.open_clock_out(["bench-clock-rx"], bpm=bpm)
    time.sleep(0.1)
    clock.start()
    time.sleep(seconds)
    clock.stop()
    time.sleep(0.1)
    stop.set()
    thread.join(1)
    clock.close()
    rx.close_port()
    rx.delete()
    period = 60.0 / bpm / 24
    intervals = np.diff(np.array(arrivals))
    expected = int(seconds / period)
    return {"bpm": bpm, "seconds": seconds, "pulses_received": len(arrivals),
            "pulses_expected_about": expected, "realtime_thread": clock.realtime,
            "interval_jitter": stats((intervals - period) * 1000),
            "sender_lateness": stats(np.array(clock.lateness) * 1000)}


def bench_in(devices, api: int) -> dict:  # noqa: ANN001
    import rtmidi

    from app.clock import CLOCK, PPQN, START, STOP, ClockIn
    from app.transport import realtime_thread, wait_until

    tx = rtmidi.MidiOut(api, name="bench clock tx")
    tx.open_virtual_port("bench-clock-tx")
    plan = [(120.0, 8), (132.0, 8), (100.0, 8), (126.0, 8)]
    truth: dict[int, tuple[float, float]] = {}  # beat -> (sender's time, bpm)
    seen: list[tuple[int, float | None, float | None]] = []  # beat, estimated time, bpm

    def listener(event: str, c: ClockIn) -> None:
        if event == "beat":
            seen.append((c.beat, c.time_of(c.beat), c.bpm))

    clock = ClockIn(listener)
    inp = devices.open_clock_in("bench-clock-tx", clock)
    time.sleep(0.1)

    def send() -> None:
        realtime_thread(35)
        t = time.perf_counter() + 0.05
        n = 0
        schedule = []
        for bpm, beats in plan:
            for _ in range(beats * PPQN):
                if n % PPQN == 0:
                    truth[n // PPQN] = (t, bpm)
                schedule.append(t)
                n += 1
                t += 60.0 / bpm / PPQN
        truth[n // PPQN] = (t, plan[-1][0])
        wait_until(schedule[0] - 0.005)
        tx.send_message([START])
        for due in schedule:
            wait_until(due)
            tx.send_message([CLOCK])
        wait_until(t)
        tx.send_message([CLOCK])  # the last beat's pulse
        time.sleep(0.02)
        tx.send_message([STOP])

    sender = threading.Thread(target=send)
    sender.start()
    sender.join()
    time.sleep(0.1)
    inp.close()
    tx.close_port()
    tx.delete()
    errors = [(est - truth[b][0]) * 1000 for b, est, _ in seen if est is not None and b in truth
              and b > 1]
    changes = []
    first = 0
    for bpm, beats in plan:
        if first:
            settled = None
            for b, _est, est_bpm in seen:
                if first < b <= first + beats and est_bpm is not None:
                    if abs(est_bpm - bpm) <= 0.5:
                        if settled is None:
                            settled = b - first
                    else:
                        settled = None
            changes.append({"to_bpm": bpm, "beats_to_within_0.5_bpm": settled,
                            "error_bpm_2_beats_after": round(next(
                                (e - bpm for b, _t, e in seen if b == first + 2 and e), 99), 3)})
        first += beats
    return {"beats": len(seen), "missed_pulses": clock.missed, "tempo_changes": changes,
            "beat_error": stats(errors)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--period", type=int, default=64, help="JACK period in frames (64)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--bpm", type=float, default=120.0)
    ap.add_argument("--server", default=None, help="a running JACK server's name")
    args = ap.parse_args()
    with jack_server("clock-bench", args.period, args.server) as name:
        from app.devices import Devices

        with Devices(client_name="Cadenza bench") as devices:
            midi = devices.midi()
            if not midi.is_jack:
                raise SystemExit(f"MIDI is {midi.api_name}, not JACK")
            out = bench_out(devices, midi.api, args.bpm, args.seconds)
            inn = bench_in(devices, midi.api)
        print(json.dumps({"server": name, "period_frames": args.period,
                          "period_ms": round(args.period / 48.0, 3),
                          "clock_out": out, "clock_in": inn}, indent=2))


if __name__ == "__main__":
    main()
