"""Duet latency and MIDI-out jitter, measured from outside over JACK.

    .venv/bin/python benchmarks/bench_duet.py [--rounds 30] [--soak 100] [--model NAME|PATH]

* Starts its own JACK dummy server (``jackd -R -n cadenza-bench-PID -d dummy -p 128``, real-time
  as musicians run it; 128 frames at 48 kHz is a 2.7 ms period) unless ``--server NAME`` names
  a running one. Separate JACK clients play the keyboard and listen, as hardware would.
* Latency: for each round, the keyboard's last note-off send time + the silence setting ->
  the listener's arrival time of the first answer note (so it includes JACK's MIDI transport
  both ways). Also the duet's own figure (pause detected -> first note sent).
* Jitter: the transport plays 200 notes 20 ms apart; internal lateness (sent - due) and the
  listener's arrival times against the schedule (offset removed), p50/p95.
* On the beat: ``--beat-rounds N`` rounds answering on the next beat of Cadenza's own grid
  (``--bpm``), every note quantized to sixteenths: each answer's first note against its beat and
  every note against its sixteenth, as sent and as heard by the listener, p50/p95.
* Soak: ``--soak N`` compressed rounds (short calls, 80 ms silence, 0.25 s answers): stuck notes
  (note-ons without a note-off at the listener), crashes, RSS growth.

Without ``--model`` the installed PerformanceRNN is used, or a tiny one is trained on six POP909
songs (about 20 s; its answers are no musical benchmark, its timing is).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.jack_server import jack_server  # noqa: E402


class Listener:
    def __init__(self, api: int, name: str) -> None:
        import rtmidi

        from app.midi_ports import realtime_thread

        self._rt = realtime_thread
        self.port = rtmidi.MidiIn(api, name=f"{name} client", queue_size_limit=4096)
        self.port.open_virtual_port(name)
        self.events: list[tuple[float, list[int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        self._rt()
        while not self._stop.is_set():
            ev = self.port.get_message()
            if ev is None:
                time.sleep(0.0002)
                continue
            self.events.append((time.perf_counter(), list(ev[0])))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.port.close_port()
        self.port.delete()


def stuck(messages: list[list[int]]) -> int:
    count: Counter = Counter()
    for m in messages:
        if len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2] > 0:
            count[(m[0] & 15, m[1])] += 1
        elif len(m) == 3 and m[0] & 0xF0 in (0x80, 0x90) and count[(m[0] & 15, m[1])] > 0:
            count[(m[0] & 15, m[1])] -= 1
    return sum(count.values())


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_model(name: str | None) -> tuple[object, str]:
    from models.errors import CadenzaError
    from models.registry import ModelRegistry

    try:
        return ModelRegistry().load(name, "performance"), name or "installed default"
    except CadenzaError:
        if name:
            raise
    from models.performance_rnn.train import train

    work = Path(tempfile.mkdtemp(prefix="cadenza-bench-perf-"))
    data = work / "data"
    data.mkdir()
    files = sorted((ROOT.parent / "shared" / "datasets" / "piano" / "pop909").rglob("*.mid"),
                   key=lambda p: (p.stat().st_size, str(p)))[:6]
    for i, f in enumerate(files):
        shutil.copy(f, data / f"{i}.mid")
    train(data, work / "tiny", config_name="tiny", steps=300, checkpoint_steps=300,
          learning_rate=0.01, val_windows=2, verbose=0, log=lambda s: None)
    tiny = ModelRegistry([work]).load(str(work / "tiny"), "performance")
    return tiny, "tiny (1 x 32, trained 300 steps here)"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def on_the_beat(args: argparse.Namespace, midi: object, out: object, ear: Listener,
                play: object, phrase: list[tuple[int, float]], model: object) -> dict:
    """Answers on the next beat of Cadenza's own grid (``app.sync.SyncSession``, internal, at
    ``--bpm``), every note quantized to sixteenths: how far from the grid each note is sent
    (the scheduler's clock) and heard (the listener's arrival time, JACK's MIDI transport
    included), the first note of each answer against its beat and all notes against their
    sixteenth."""
    from app.duet import Duet, DuetSettings
    from app.sync import SyncSession

    sync = SyncSession(None)
    sync.configure("internal", bpm=args.bpm)
    sync.start()
    settings = DuetSettings(silence_ms=args.silence_ms, seconds=args.seconds, seed=2,
                            answer_on="beat", quantize=1.0, quantize_every=0.25)
    sent: list[tuple[float, int]] = []  # (sent at, round)
    duet = Duet([out], settings, history=10, grid=sync.next_time,
                on_answer_message=lambda m, at: sent.append((at, duet.rounds_done))
                if m[0] & 0xF0 == 0x90 and m[2] > 0 else None)
    duet.start(model)
    duet.wait_running(30)
    inp = midi.open_input("BenchKeys", lambda m, d: duet.feed(m))  # type: ignore[attr-defined]
    time.sleep(0.1)
    beat_ms = 60000.0 / args.bpm

    def off_grid(t: float, per_beat: int) -> float:
        b = sync.beat(t) * per_beat
        return abs(b - round(b)) * beat_ms / per_beat

    first_sent, first_heard, all_sent, all_heard = [], [], [], []
    for _ in range(args.beat_rounds):
        done = duet.rounds_done
        n_events, n_sent = len(ear.events), len(sent)
        last_off = play(phrase)  # type: ignore[operator]
        deadline = time.monotonic() + 10
        while duet.rounds_done == done and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        heard = [t for t, m in ear.events[n_events:] if m[0] & 0xF0 == 0x90 and m[2] > 0
                 and t > last_off]
        went = [t for t, _ in sent[n_sent:]]
        if heard and went:
            first_sent.append(off_grid(went[0], 1))
            first_heard.append(off_grid(heard[0], 1))
            all_sent += [off_grid(t, 4) for t in went]
            all_heard += [off_grid(t, 4) for t in heard]
        time.sleep(0.1)
    duet.stop()
    inp.close()
    sync.stop()

    def figures(values: list[float]) -> dict[str, float]:
        return {"p50_ms": round(pct(values, 50), 2), "p95_ms": round(pct(values, 95), 2),
                "max_ms": round(max(values), 2) if values else float("nan")}

    return {"rounds": args.beat_rounds, "answered": len(first_sent), "bpm": args.bpm,
            "first_note_sent": figures(first_sent), "first_note_heard": figures(first_heard),
            "notes": len(all_heard), "every_note_sent": figures(all_sent),
            "every_note_heard": figures(all_heard),
            "jack_period_ms": round(1000 * args.period / 48000, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--soak", type=int, default=100)
    ap.add_argument("--model", default=None)
    ap.add_argument("--server", default=None, help="use this running JACK server")
    ap.add_argument("--period", type=int, default=128, help="frames per JACK period (128)")
    ap.add_argument("--silence-ms", type=float, default=300.0)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--beat-rounds", type=int, default=30,
                    help="rounds answering on the beat, quantized to sixteenths (0: skip)")
    ap.add_argument("--bpm", type=float, default=120.0, help="the grid's tempo for those (120)")
    args = ap.parse_args()

    with jack_server("bench", args.period, args.server) as server:
        return run(args, server)


def run(args: argparse.Namespace, server: str) -> int:
    import rtmidi

    from app.devices import Devices
    from app.duet import Duet, DuetSettings
    from app.midi_ports import realtime_thread
    from app.transport import Transport
    from models.sequence import Note, NoteSequence

    t0 = time.perf_counter()
    model, model_name = load_model(args.model)
    print(f"model: {model_name} ({time.perf_counter() - t0:.1f} s to load)", flush=True)
    realtime_thread()  # the keyboard player's timing, as hardware would have
    midi = Devices().midi()
    assert midi.available, midi.reason
    kb = rtmidi.MidiOut(midi.api, name="BenchKeys client")
    kb.open_virtual_port("BenchKeys")
    ear = Listener(midi.api, "BenchEar")
    out = midi.open_output("BenchEar")
    time.sleep(0.1)
    phrase = [(60, 0.08), (64, 0.08), (67, 0.08), (72, 0.15)]

    def play(notes: list[tuple[int, float]]) -> float:
        last = time.perf_counter()
        for pitch, dur in notes:
            kb.send_message([0x90, pitch, 80])
            time.sleep(dur)
            kb.send_message([0x80, pitch, 0])
            last = time.perf_counter()
        return last

    results: dict[str, object] = {"server": server, "model": model_name,
                                  "load_before": os.getloadavg()}

    # ------------------------------------------------------------------ latency rounds
    settings = DuetSettings(silence_ms=args.silence_ms, seconds=args.seconds, seed=0)
    duet = Duet([out], settings, history=10)
    duet.start(model)
    duet.wait_running(30)
    inp = midi.open_input("BenchKeys", lambda m, d: duet.feed(m))
    time.sleep(0.1)
    outside: list[float] = []
    for _ in range(args.rounds):
        done = duet.rounds_done
        n_events = len(ear.events)
        last_off = play(phrase)
        deadline = time.monotonic() + 10
        while duet.rounds_done == done and time.monotonic() < deadline:
            time.sleep(0.005)
        ons = [t for t, m in ear.events[n_events:] if m[0] & 0xF0 == 0x90 and m[2] > 0
               and t > last_off]
        if ons:
            outside.append(ons[0] - (last_off + settings.silence_ms / 1000))
        time.sleep(0.1)
    inside = list(duet.latencies)
    duet.stop()
    inp.close()
    results["latency"] = {
        "rounds": args.rounds, "answered": len(outside),
        "outside_p50_ms": round(1000 * pct(outside, 50), 1),
        "outside_p95_ms": round(1000 * pct(outside, 95), 1),
        "outside_max_ms": round(1000 * max(outside), 1) if outside else None,
        "inside_p50_ms": round(1000 * pct(inside, 50), 2),
        "inside_p95_ms": round(1000 * pct(inside, 95), 2),
    }
    print(json.dumps({"latency": results["latency"]}), flush=True)

    # ------------------------------------------------------------------ transport jitter
    seq = NoteSequence(notes=[Note(48 + i % 24, 80, 0.02 * i, 0.02 * i + 0.01)
                              for i in range(200)])
    n0 = len(ear.events)
    transport = Transport([out])
    transport.play(seq)
    transport.wait(20)
    time.sleep(0.2)
    arrivals = [t for t, m in ear.events[n0:] if m[0] & 0xF0 == 0x90 and m[2] > 0]
    late = list(transport.lateness)
    ext: list[float] = []
    if len(arrivals) == 200:
        dev = np.asarray(arrivals) - 0.02 * np.arange(200)
        ext = list(np.abs(dev - np.median(dev)))
    results["jitter"] = {
        "notes": 200, "arrived": len(arrivals),
        "internal_p50_ms": round(1000 * pct(late, 50), 3),
        "internal_p95_ms": round(1000 * pct(late, 95), 3),
        "internal_max_ms": round(1000 * max(late), 3),
        "outside_p50_ms": round(1000 * pct(ext, 50), 2),
        "outside_p95_ms": round(1000 * pct(ext, 95), 2),
        "jack_period_ms": round(1000 * args.period / 48000, 2),
    }
    transport.close()
    print(json.dumps({"jitter": results["jitter"]}), flush=True)

    # ------------------------------------------------------------------ on the beat
    if args.beat_rounds:
        results["on_the_beat"] = on_the_beat(args, midi, out, ear, play, phrase, model)
        print(json.dumps({"on_the_beat": results["on_the_beat"]}), flush=True)

    # ------------------------------------------------------------------ soak
    if args.soak:
        soak = DuetSettings(silence_ms=80, seconds=0.25, seed=1)
        duet = Duet([out], soak, history=10)
        duet.start(model)
        duet.wait_running(30)
        inp = midi.open_input("BenchKeys", lambda m, d: duet.feed(m))
        time.sleep(0.1)
        n0 = len(ear.events)
        rss: dict[int, float] = {}
        crashes = 0
        started = time.perf_counter()
        for k in range(args.soak):
            done = duet.rounds_done
            play([(55 + k % 12, 0.02), (62 + k % 7, 0.02)])
            deadline = time.monotonic() + 5
            while duet.rounds_done == done and time.monotonic() < deadline:
                time.sleep(0.002)
            if duet.error is not None or not duet.running:
                crashes += 1
                break
            time.sleep(0.03)
            if k + 1 in (20, args.soak):
                rss[k + 1] = round(rss_mb(), 1)
        soak_lat = list(duet.latencies)
        duet.stop()
        inp.close()
        time.sleep(0.2)
        results["soak"] = {
            "rounds": duet.rounds_done, "crashes": crashes,
            "stuck_notes": stuck([m for _, m in ear.events[n0:]]),
            "rss_mb": rss, "seconds": round(time.perf_counter() - started, 1),
            "inside_p50_ms": round(1000 * pct(soak_lat, 50), 2),
            "inside_p95_ms": round(1000 * pct(soak_lat, 95), 2),
        }
        print(json.dumps({"soak": results["soak"]}), flush=True)

    out.close()
    kb.close_port()
    kb.delete()
    ear.close()
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
