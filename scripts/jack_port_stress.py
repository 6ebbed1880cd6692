"""Open and close JACK MIDI ports in a loop while messages flow, and say how many closes it took.

A diagnostic for the libjack race described in ``app/midi_ports.py`` (a port unregistered on an
active client while libjack's notification thread walks the port list): run it against a JACK
server, ideally with the CPU overloaded (e.g. three ``sh -c 'while :; do :; done'``), to check a
newer python-rtmidi or libjack. It exits 0 after ``--cycles`` cycles; the race ends it with a
segmentation fault (exit status 139 from the shell) instead.

    jackd --no-realtime -d dummy -r 48000 -p 512 &
    .venv/bin/python scripts/jack_port_stress.py --cycles 1000
"""

from __future__ import annotations

import argparse
import faulthandler
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.devices import Devices  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000, help="open/close cycles (1000)")
    args = parser.parse_args(argv)
    faulthandler.enable()
    midi = Devices().midi()
    if midi.api_name != "JACK":
        print(f"needs a running JACK server and no ALSA sequencer; MIDI here: "
              f"{midi.api_name or midi.reason}")
        return 2
    import rtmidi

    keys = rtmidi.MidiOut(midi.api, name="Stress keys")
    keys.open_virtual_port("Stress keys")
    running = threading.Event()
    running.set()

    def play() -> None:  # a keyboard that never stops
        while running.is_set():
            keys.send_message([0x90, 60, 80])
            keys.send_message([0x80, 60, 0])
            time.sleep(0.0003)

    player = threading.Thread(target=play, daemon=True)
    player.start()
    start = time.perf_counter()
    try:
        for i in range(args.cycles):
            heard = midi.open_input("Stress keys", lambda message, delta: None)
            ear = rtmidi.MidiIn(midi.api, name=f"Stress ear {i}")
            ear.open_virtual_port("ear")
            out = midi.open_output(f"Stress ear {i}")
            for _ in range(50):
                out.send([0x90, 64, 80])
                out.send([0x80, 64, 0])
            time.sleep(0.005)
            out.close()
            heard.close()
            ear.close_port()
            ear.delete()
            if (i + 1) % 100 == 0:
                print(f"{i + 1} cycles, {3 * (i + 1)} ports closed", flush=True)
    finally:
        running.clear()
        player.join()
        keys.close_port()
        keys.delete()
    seconds = time.perf_counter() - start
    print(f"{args.cycles} cycles ({3 * args.cycles} port closes) in {seconds:.1f} s, "
          f"{3 * args.cycles / seconds:.0f} closes/s, no crash")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
