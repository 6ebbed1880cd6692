"""``cadenza duet``: call and response with a MIDI keyboard, without a window.

The keyboard's port and the output (a MIDI port, or ``audio`` for sound through the audio
engine: FluidSynth, or with ``--instrument DIR`` a morph instrument folder) are named by
substring. Each call and answer is logged with its latency (pause detected -> first answer note
sent) until Ctrl+C; then nothing is left sounding. The ports and the audio output come from one
:class:`app.devices.Devices`; when one of them goes away the duet stops with a one-line error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models import limits
from models.errors import CadenzaError

if TYPE_CHECKING:
    from app.devices import Devices
    from models.nsynth.instrument import MorphInstrument

AUDIO = "audio"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "duet",
        help="call and response with a MIDI keyboard (PerformanceRNN answers)",
        description=(
            "Play a phrase on a MIDI keyboard and pause: PerformanceRNN answers. Runs until "
            "Ctrl+C. Ports are matched by (case-insensitive) name substring; see "
            "'cadenza devices'."
        ),
    )
    p.add_argument("--input", required=True, metavar="PORT", help="MIDI input (the keyboard)")
    p.add_argument("--output", required=True, metavar="PORT|audio",
                   help="MIDI output port, or 'audio' for built-in sound (FluidSynth, or "
                        "--instrument)")
    p.add_argument("--silence-ms", type=float, default=600.0,
                   help="pause that ends your phrase, ms (600)")
    p.add_argument("--seconds", type=float, default=4.0, help="answer length in seconds (4)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (1.0)")
    p.add_argument("--model", default=None, metavar="NAME|PATH",
                   help="performance model name or folder (default: the installed one)")
    p.add_argument("--max-phrase-seconds", type=float, default=8.0,
                   help="answer after this long even without a pause (8)")
    p.add_argument("--no-follow", dest="follow", action="store_false",
                   help="answer without following the player (by default the answers take the "
                        "note density and pitch classes of your last 30 s of playing)")
    p.add_argument("--layer", action="store_true",
                   help="keep the answer playing when you play again (default: it stops)")
    p.add_argument("--thru", action="store_true",
                   help="also send what you play to the output (MIDI thru)")
    p.add_argument("--channel", type=int, default=1, metavar="1-16",
                   help="MIDI channel of the answer (1)")
    p.add_argument("--audio-device", default=None, metavar="NAME",
                   help="audio output for --output audio (default device)")
    p.add_argument("--soundfont", default=None, help="soundfont for --output audio")
    p.add_argument("--instrument", type=Path, default=None, metavar="DIR",
                   help="a morph instrument folder (WAVs + instrument.sfz) for --output audio, "
                        "instead of FluidSynth")
    from app.commands.sound import add_morph_options

    add_morph_options(p)
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--rounds", type=int, default=0,
                   help="stop after this many answers (0: until Ctrl+C)")
    from app.commands.play import add_sync_options

    add_sync_options(p)
    p.add_argument("--answer-on", default="pause", choices=["pause", "beat", "bar"],
                   help="start each answer after the pause (default), or on the next beat or "
                        "bar of the --sync time")
    p.add_argument("--quantize", type=float, default=0.0, metavar="0-1",
                   help="move each answer note this far toward the --sync time's grid (0: as "
                        "played, the default; 0.5: soft; 1: on the grid)")
    p.add_argument("--quantize-grid", type=note_value, default=0.25, metavar="1/16",
                   help="the grid --quantize moves notes to: a note value (1/4, 1/8, 1/16, "
                        "1/32; 't' for triplets: 1/8t); default 1/16")
    p.add_argument("--tempo", type=float, default=120.0, metavar="BPM",
                   help="tempo of the MIDI clock sent with --clock-out (120; with --sync "
                        "link, the tempo proposed to the session)")
    p.set_defaults(handler=run_duet)


def _say(text: str) -> None:
    print(text, flush=True)


class LiveRig:
    """The devices, ports, sinks and the duet of one headless session; ``close()`` undoes
    everything (bounded: it returns even when the sound server went away)."""

    def __init__(self, devices: Devices) -> None:
        self.devices = devices
        self.system: Any = None
        self.output: Any = None
        self.engine: Any = None
        self.synth: Any = None
        self.input: Any = None
        self.watcher: Any = None
        self.duet: Any = None
        self.sync: list[Any] = []  # clock ports, a Link session (see app.commands.play)

    def close(self) -> None:
        for obj in self.sync:
            try:
                obj.close()
            except Exception as exc:  # noqa: BLE001 - closing must finish
                logging.getLogger(__name__).warning("closing: %s", exc)
        if self.watcher is not None:
            self.watcher.stop()
        if self.input is not None:
            self.input.close()
        if self.duet is not None:
            self.duet.stop()
        for obj in (self.synth, self.output):
            if obj is not None:
                try:
                    obj.close()
                except Exception as exc:  # noqa: BLE001 - closing must finish
                    logging.getLogger(__name__).warning("closing: %s", exc)
        self.devices.close()


def note_value(text: str) -> float:
    """A note value as musicians write it (``1/16``, ``1/8t`` for a triplet eighth, ``1/4.``
    dotted) in beats (quarter notes): ``1/16`` is 0.25."""
    value = text.strip().lower()
    triplet, dotted = value.endswith("t"), value.endswith(".")
    value = value.rstrip("t.")
    num, _, den = value.partition("/")
    try:
        beats = 4.0 * float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"not a note value: {text!r} (say 1/8, 1/16, 1/8t)") from None
    if triplet:
        beats *= 2.0 / 3.0
    if dotted:
        beats *= 1.5
    if not 1 / 32 <= beats <= 4.0:
        raise argparse.ArgumentTypeError(f"{text!r}: the grid must be 1/128 .. 1/1")
    return beats


def run_duet(args: argparse.Namespace) -> int:
    from app.clock import check_bpm
    from app.commands.play import grid_of, parse_sync, start_sync
    from app.devices import Devices, describe_losses
    from app.duet import Duet, DuetSettings, Round

    if not 1 <= args.channel <= 16:
        raise CadenzaError("--channel must be 1..16")
    sync = parse_sync(args.sync)
    check_bpm(args.tempo)
    limits.seed(args.seed)
    settings = DuetSettings(
        silence_ms=args.silence_ms, seconds=args.seconds, temperature=args.temperature,
        max_phrase_seconds=args.max_phrase_seconds, layer=args.layer, channel=args.channel - 1,
        seed=args.seed, follow=args.follow, answer_on=args.answer_on,
        quantize=args.quantize, quantize_every=args.quantize_grid,
    ).check()
    to_audio = args.output.strip().lower() == AUDIO
    from app.commands.sound import audio_synth, check_sound_options, load_live_morph, sound_name

    check_sound_options(args, to_audio)
    instrument: MorphInstrument | None = None
    if args.instrument is not None:
        from app.commands.render import load_instrument

        # Before the ports and the (slow) model load, so a bad folder fails at once.
        instrument = load_instrument(args.instrument)
    devices = Devices(audio_device=args.audio_device)
    rig = LiveRig(devices)
    try:
        system = devices.midi()
        if not system.available:
            raise CadenzaError(system.reason)
        # Check the ports before the (slow) model load, so a typo fails at once.
        in_name = system.match_input(args.input)
        if not to_audio:
            system.match_output(args.output)
    except BaseException:
        devices.close()
        raise
    rig.system = system
    done = threading.Event()
    answered = [0]

    def on_round(rnd: Round, event: str) -> None:
        if event == "call":
            _say(f"call {rnd.index}: {len(rnd.call.notes)} notes, "
                 f"{rnd.detected_at - rnd.call_started:.2f} s ({rnd.reason})")
        elif event == "first-note":
            _say(f"answer {rnd.index}: first note after {1000 * (rnd.latency or 0):.1f} ms")
        else:
            lat = f"{1000 * rnd.latency:.1f} ms" if rnd.latency is not None else "no note"
            _say(f"answer {rnd.index}: {rnd.notes_sent} notes "
                 f"({'interrupted' if event == 'interrupted' else 'done'}), latency {lat}")
            answered[0] += 1
            if args.rounds and answered[0] >= args.rounds:
                done.set()

    def on_error(exc: BaseException) -> None:
        _say(f"cadenza: error: {exc}")
        done.set()

    try:
        _say(f"loading the model {args.model or '(installed default)'}…")
        t0 = time.perf_counter()
        from models.registry import ModelRegistry

        model = ModelRegistry().load(args.model, "performance")
        _say(f"model ready in {time.perf_counter() - t0:.1f} s")
        sinks: list[Any] = []
        if to_audio:
            live = load_live_morph(args)
            rig.engine = devices.audio()
            rig.synth = audio_synth(rig.engine, soundfont=args.soundfont, instrument=instrument,
                                    live=live)
            sinks.append(rig.synth)
            out_name = f"audio ({sound_name(args, live)}{rig.engine.sample_rate} Hz)"
        else:
            rig.output = system.open_output(args.output)
            sinks.append(rig.output)
            out_name = rig.output.name
        duet = Duet(sinks, settings, on_round=on_round, on_error=on_error)
        rig.duet = duet
        duet.start(model)
        if not duet.wait_running(60):
            raise CadenzaError(f"the duet did not start: {duet.error}")
        thru_to = sinks[0] if args.thru else None

        def on_message(message: list[int], _delta: float) -> None:
            duet.feed(message)
            if thru_to is not None and rig.synth is not None:
                rig.synth.send(message)

        rig.input = system.open_input(
            args.input, on_message, thru=rig.output if (args.thru and rig.output) else None)

        def on_ports(changes: Any) -> None:
            if in_name in changes.removed_inputs:
                _say(f"input {in_name} went away; waiting for it to come back")
                duet.input_lost()
            if in_name in changes.added_inputs:
                _say(f"input {in_name} is back")
                old, rig.input = rig.input, None
                if old is not None:
                    old.close()
                try:
                    rig.input = system.open_input(
                        in_name, on_message,
                        thru=rig.output if (args.thru and rig.output) else None)
                except CadenzaError as exc:
                    _say(f"cannot reopen {in_name}: {exc}")

        rig.sync = start_sync(devices, sync, args.clock_out, args.tempo)
        on_grid = args.answer_on != "pause" or settings.quantize > 0
        if on_grid and sync.kind == "internal" and not args.clock_out:
            from app.clock import ClockOut

            rig.sync.append(ClockOut([], bpm=args.tempo))  # the grid alone: no clock sent
            rig.sync[-1].start()
        duet.grid = grid_of(rig.sync)
        rig.watcher = system.watch_ports(on_change=on_ports, interval=1.0)
        rig.watcher.start()
        _say(f"listening on {rig.input.name}, answering on {out_name}; "
             f"pause {settings.silence_ms:g} ms to hear an answer; Ctrl+C to stop")
        while not done.wait(0.2):
            losses = devices.check()
            if losses:
                raise CadenzaError(describe_losses(losses))
        if duet.error is not None:
            raise CadenzaError(str(duet.error))
    except KeyboardInterrupt:
        _say("stopping")
    finally:
        rig.close()
        if rig.duet is not None and rig.duet.latencies:
            st = rig.duet.latency_stats()
            _say(f"{int(st['rounds'])} answers; latency p50 {st['p50_ms']:.1f} ms, "
                 f"p95 {st['p95_ms']:.1f} ms")
    sys.stdout.flush()
    return 0
