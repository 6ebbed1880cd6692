"""The morph played live from a DDSP model: CPU of eight voices with the XY pad moving, and the
time from a key press to its sound, heard over a real JACK server.

    .venv/bin/python benchmarks/bench_morph_live.py --model DIR [--seconds 10] [--presses 40]

* ``--model``: a DDSP model folder (``cadenza train ddsp``); the sources are two General MIDI
  notes (``--sources gm:0 gm:73``: piano and flute at middle C, rendered with the soundfont).
* **CPU, offline**: :class:`models.ddsp.voices.DDSPVoices` at 48 kHz in blocks of 256 (what the
  render thread does), eight notes held, the pad's x swept back and forth once a second
  (``set_xy`` every block); process time over the seconds of audio made: the share of one core
  that playing them live takes (target: <= 50 %).
* **CPU, live**: the same on the app's :class:`app.sampler.DDSPSynth` feeding the audio engine
  over JACK (its render thread, paced by the engine's bus), with the pad moving from the main
  thread every 10 ms: process time over wall time (the engine's callback included), and the
  blocks the engine found missing (underruns), for each queue depth of ``--queues``; and the
  process with the engine running idle, for reference.
* **Key-press latency**: ``--presses`` notes sent to the synth (what the MIDI thread does with a
  key press) at random moments; an independent JACK client in a process of its own
  (``tests/app/jack_onsets.py``, as ``bench_scheduled_start.py`` uses) hears each onset: heard
  time minus send time, p50/p95/max in ms, with the JACK playback port's latency
  (``heard_ms``) and without it (``in_port_ms``: the sound in Cadenza's output port); for the
  live bus's queue depths ``--queues`` (the engine's default is 3 blocks), and for the
  FluidSynth live synth at the default depth for comparison (``--presses 0``: none). Target:
  one block (5.3 ms) + 5 ms. The DDSP voices add a key press into the blocks already queued
  (:class:`app.transport.LiveVoices`), so their figure no longer grows with the queue's depth;
  FluidSynth's does.
* Starts its own JACK dummy server (``jackd -R``, 48 kHz, ``--period`` frames, 256 by default)
  unless ``--server NAME`` names a running one.

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

RATE = 48000
BLOCK = 256
CHORD = (48, 52, 55, 59, 62, 65, 69, 72)


def sweep(t: float) -> float:
    """The pad's x at ``t`` seconds: 0 -> 1 -> 0 every two seconds."""
    return 1.0 - abs((t % 2.0) - 1.0)


def cpu_offline(live: object, seconds: float, block: int = BLOCK) -> dict:
    voices = live.voices(RATE)  # type: ignore[attr-defined]
    for p in CHORD:
        voices.note_on(0, p, 100)
    buf = np.zeros(block, np.float32)
    for _ in range(20):  # warm up
        voices.render(block, buf)
    n = int(seconds * RATE / block)
    cpu, wall = time.process_time(), time.perf_counter()
    worst = 0.0
    for i in range(n):
        t0 = time.perf_counter()
        voices.set_xy(sweep(i * block / RATE))
        voices.render(block, buf)
        worst = max(worst, time.perf_counter() - t0)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    audio = n * block / RATE
    return {"voices": voices.active_voices, "audio_s": round(audio, 2), "block": block,
            "cpu_percent_of_one_core": round(100 * cpu / audio, 1),
            "wall_percent": round(100 * wall / audio, 1),
            "block_mean_ms": round(1000 * wall / n, 3), "block_max_ms": round(1000 * worst, 3),
            "block_budget_ms": round(1000 * block / RATE, 3)}


def cpu_live(engine: object, live: object, seconds: float, queue_blocks: int) -> dict:
    from app.sampler import DDSPSynth

    synth = DDSPSynth(engine, live, queue_blocks=queue_blocks)
    try:
        for p in CHORD:
            synth.send([0x90, p, 100])
        time.sleep(0.5)
        under = synth.bus.underruns
        blocks = synth.blocks_rendered
        cpu, wall = time.process_time(), time.perf_counter()
        while time.perf_counter() - wall < seconds:
            synth.set_xy(sweep(time.perf_counter() - wall))
            time.sleep(0.01)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        result = {"voices": synth.active_voices,
                  "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
                  "blocks_per_s": round((synth.blocks_rendered - blocks) / wall, 1),
                  "underruns": synth.bus.underruns - under}
    finally:
        synth.close()
    return result


def cpu_idle(seconds: float) -> dict:
    """The process with the engine running and nothing playing: what the live figures stand
    on (the engine's callback, PortAudio's JACK client)."""
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_percent_of_one_core": round(100 * cpu / wall, 1)}


def latency(make_synth: object, presses: int, seed: int) -> dict:
    from tests.app.jack_onsets import OnsetProbe

    rng = random.Random(seed)
    heard: list[float] = []
    missed = 0
    synth = make_synth()  # type: ignore[operator]
    try:
        with OnsetProbe(threshold=1e-3, quiet=2400) as probe:
            time.sleep(0.5)
            port = probe.latency_frames / RATE
            for i in range(presses):
                time.sleep(rng.uniform(0.0, 0.02))
                before = len(probe.onsets())
                sent = time.perf_counter()
                synth.send([0x90, 60 + i % 12, 100])
                time.sleep(0.25)
                synth.send([0x80, 60 + i % 12, 0])
                onsets = probe.wait_for(before + 1, timeout=2.0)[before:]
                near = [t for t in onsets if -0.005 < t - sent < 0.5]
                if near:
                    heard.append(1000 * (near[0] - sent))
                else:
                    missed += 1
                time.sleep(1.3)  # the release, then the probe's quiet window
            underruns = synth.bus.underruns
    finally:
        synth.close()
    return {"heard_ms": stats(heard) if heard else None,
            "in_port_ms": stats(np.array(heard) - 1000 * port) if heard else None,
            "not_heard": missed, "playback_port_latency_ms": round(1000 * port, 3),
            "underruns": underruns}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a DDSP model folder")
    ap.add_argument("--sources", nargs="+", default=["gm:0", "gm:73"])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--presses", type=int, default=40)
    ap.add_argument("--queues", type=int, nargs="+", default=[3, 2, 1],
                    help="the live bus depths to time key presses with (3 2 1)")
    ap.add_argument("--period", type=int, default=256, help="JACK period in frames (256)")
    ap.add_argument("--blocksize", type=int, default=256,
                    help="the audio engine's block (256, the app's; another makes an engine "
                         "of its own)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--server", default=None, help="a running JACK server's name")
    ap.add_argument("--skip-fluidsynth", action="store_true")
    args = ap.parse_args()

    from models.ddsp.morph import DDSPMorpher
    from models.ddsp.voices import LiveMorph

    t0 = time.perf_counter()
    morpher = DDSPMorpher.load(args.model)
    sounds = [morpher.source_audio(s, 60) for s in args.sources]
    live = LiveMorph.from_sounds(morpher, sounds, (0.0, 0.0))
    live.warm(RATE)
    prepared = round(time.perf_counter() - t0, 2)
    result: dict = {"model": str(args.model), "gru_units": morpher.config.gru_units,
                    "n_harmonics": morpher.config.n_harmonics, "sources": args.sources,
                    "prepare_s": prepared, "cpu_count": os.cpu_count(),
                    "load_average_before": round(os.getloadavg()[0], 2)}
    result["cpu_offline"] = cpu_offline(live, args.seconds, args.blocksize)
    print(json.dumps({"cpu_offline": result["cpu_offline"]}), flush=True)
    with jack_server("morph-live", args.period, args.server) as name:
        from app.devices import Devices
        from app.sampler import DDSPSynth

        with Devices(audio_device="system") as devices:
            if args.blocksize == 256:
                engine = devices.audio()
            else:
                from app.audio_engine import AudioEngine

                engine = AudioEngine(devices.portaudio, device="system",
                                     blocksize=args.blocksize)
                engine.start()
            time.sleep(0.3)
            result["server"] = name
            result["period_frames"] = args.period
            result["blocksize"] = engine.blocksize
            result["cpu_engine_idle"] = cpu_idle(min(args.seconds, 5.0))
            result["cpu_live"] = {f"queue_{d}": cpu_live(engine, live, args.seconds, d)
                                  for d in args.queues}
            print(json.dumps({"cpu_live": result["cpu_live"]}), flush=True)
            keys: dict = {}
            for depth in args.queues if args.presses else ():
                keys[f"ddsp_queue_{depth}"] = latency(
                    lambda d=depth: DDSPSynth(engine, live, queue_blocks=d), args.presses,
                    args.seed)
                print(json.dumps({f"ddsp_queue_{depth}": keys[f"ddsp_queue_{depth}"]}),
                      flush=True)
            if args.presses and not args.skip_fluidsynth:
                from app.transport import LiveSynth

                keys["fluidsynth_queue_3"] = latency(lambda: LiveSynth(engine), args.presses,
                                                     args.seed)
            result["key_press"] = keys
            result["target_ms"] = round(1000 * engine.blocksize / RATE + 5.0, 2)
            if args.blocksize != 256:
                engine.close()
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
