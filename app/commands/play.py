"""``cadenza play``: play a MIDI file to a MIDI output or built-in audio, in time with others.

``--sync internal`` (the default) plays at the file's tempo or ``--tempo``; ``--clock-out PORT``
(repeatable) sends MIDI clock to those outputs meanwhile (Start at the first note, Stop at the
end). ``--sync midi-clock:PORT`` waits for an external MIDI clock on the input PORT and follows
it: its Start plays from the top, Continue from its Song Position, its tempo drives the
playback; it ends when the file ends, or when the clock stops or goes away (nothing is left
sounding). ``--sync link`` joins an Ableton Link session (off unless asked for: Link talks on
the local network).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import CadenzaError

AUDIO = "audio"


@dataclass(frozen=True)
class SyncChoice:
    """What ``--sync`` asked for: ``kind`` is ``internal``, ``midi-clock`` or ``link``."""

    kind: str
    port: str = ""


def parse_sync(text: str) -> SyncChoice:
    """``internal``, ``midi-clock:PORT`` or ``link`` (one line of error otherwise)."""
    value = (text or "internal").strip()
    low = value.lower()
    if low == "internal":
        return SyncChoice("internal")
    if low == "link":
        return SyncChoice("link")
    if low.startswith("midi-clock:"):
        port = value.split(":", 1)[1].strip()
        if not port:
            raise CadenzaError("--sync midi-clock:PORT needs the input port that sends the clock")
        return SyncChoice("midi-clock", port)
    raise CadenzaError(f"--sync must be internal, midi-clock:PORT or link, not {value!r}")


def add_sync_options(p: argparse.ArgumentParser) -> None:
    """``--sync`` and ``--clock-out``, shared by ``play`` and ``duet``."""
    p.add_argument("--sync", default="internal", metavar="internal|midi-clock:PORT|link",
                   help="whose time to play in: Cadenza's own (internal, the default), an "
                        "external MIDI clock arriving on input PORT, or an Ableton Link "
                        "session on the local network (opt-in)")
    p.add_argument("--clock-out", action="append", default=[], metavar="PORT",
                   help="send MIDI clock (24 ppqn, Start/Stop/Continue, Song Position) to this "
                        "output while playing; repeat for several")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "play",
        help="play a MIDI file to a MIDI output or built-in audio, in sync (MIDI clock, Link)",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'"),
    )
    p.add_argument("file", type=Path, metavar="IN.mid", help="the MIDI (or MusicXML) file to play")
    p.add_argument("--output", required=True, metavar="PORT|audio",
                   help="MIDI output port (name substring), or 'audio' for built-in sound")
    p.add_argument("--tempo", type=float, default=None, metavar="BPM",
                   help="play at this tempo (default: the file's own)")
    add_sync_options(p)
    p.add_argument("--audio-device", default=None, metavar="NAME",
                   help="audio output for --output audio (default device)")
    p.add_argument("--soundfont", default=None, help="soundfont for --output audio")
    from app.commands.sound import add_morph_options

    add_morph_options(p)
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="with --sync midi-clock: give up after this long without a start (0: "
                        "wait until Ctrl+C); with --sync link: wait this long for another peer "
                        "(0: start at once)")
    p.set_defaults(handler=run_play)


def _say(text: str) -> None:
    print(text, flush=True)


def run_play(args: argparse.Namespace) -> int:
    from app.clock import ClockFollower, ClockIn, check_bpm
    from app.commands.sound import audio_synth, check_sound_options, load_live_morph, sound_name
    from app.devices import Devices
    from app.transport import Transport
    from models.music_files import read_sequence

    sync = parse_sync(args.sync)
    if args.tempo is not None:
        check_bpm(args.tempo)
    if args.wait < 0:
        raise CadenzaError("--wait must be 0 or more seconds")
    seq = read_sequence(args.file)
    if not seq.notes:
        raise CadenzaError(f"{args.file} has no notes to play")
    file_bpm = check_bpm(seq.qpm)
    bpm = args.tempo or file_bpm
    to_audio = args.output.strip().lower() == AUDIO
    check_sound_options(args, to_audio)
    devices = Devices(audio_device=args.audio_device)
    closers: list[Any] = []
    transport: Transport | None = None
    try:
        sinks: list[Any] = []
        if to_audio:
            live = load_live_morph(args)
            synth = audio_synth(devices.audio(), soundfont=args.soundfont, live=live)
            closers.append(synth)
            sinks.append(synth)
            out_name = f"audio ({sound_name(args, live)}{synth.sample_rate} Hz)"
        else:
            output = devices.open_midi_output(args.output)
            closers.append(output)
            sinks.append(output)
            out_name = output.name
        clock_out = devices.open_clock_out(args.clock_out, bpm=bpm) if args.clock_out else None
        if clock_out is not None:
            closers.insert(0, clock_out)
        transport = Transport(sinks)
        finished = threading.Event()
        transport.on_finished = finished.set
        ended = threading.Event()
        clock_names = ", ".join(o.name for o in clock_out.outputs) if clock_out else ""
        if sync.kind == "internal":
            at = time.perf_counter() + 0.05
            transport.play(seq, tempo=bpm / file_bpm, at=at)
            if clock_out is not None:
                clock_out.start(at=at)
            _say(f"playing {args.file.name} ({len(seq.notes)} notes) at {bpm:g} BPM on "
                 f"{out_name}" + (f"; MIDI clock to {clock_names}" if clock_names else ""))
            waiting = finished
        elif sync.kind == "midi-clock":
            started = threading.Event()

            def on_event(event: str, clock: ClockIn) -> None:
                if event in ("start", "continue"):
                    started.set()
                    _say(f"clock {event}: playing from beat {clock.pulse / 24:g}")
                    if clock_out is not None:
                        clock_out.start(beats=clock.pulse / 24)
                elif event in ("stop", "lost"):
                    _say("clock stopped" if event == "stop" else
                         "the clock went away: stopped")
                    if clock_out is not None:
                        clock_out.stop()
                    if started.is_set():
                        ended.set()
                elif event == "beat" and clock_out is not None and clock.bpm:
                    clock_out.set_tempo(max(20.0, min(400.0, clock.bpm)))
                    at = clock.time_of(clock.beat)
                    if at is not None:
                        clock_out.locate(clock.beat, at)

            follower = ClockFollower(transport, seq, file_bpm=file_bpm, on_event=on_event)
            clock_in = devices.open_clock_in(sync.port, ClockIn(follower.on_clock))
            closers.insert(0, clock_in)
            _say(f"waiting for MIDI clock on {clock_in.name} to play {args.file.name} on "
                 f"{out_name}")
            if args.wait and not _wait_any([started], args.wait, devices):
                raise CadenzaError(f"no MIDI clock start on {clock_in.name} within "
                                   f"{args.wait:g} s")
            waiting = finished
        else:
            from app.link import LinkSync  # type: ignore[import-not-found]

            link = LinkSync(bpm=bpm)
            closers.insert(0, link)
            if args.wait:  # wait for another member of the session
                deadline = time.monotonic() + args.wait
                while link.peers < 1 and time.monotonic() < deadline:
                    time.sleep(0.01)
                if link.peers < 1:
                    raise CadenzaError(f"no other Link peer joined within {args.wait:g} s")
                time.sleep(0.1)  # the session's tempo and beat settle
            _say(f"joined Ableton Link at {link.bpm:.2f} BPM ({link.peers} peers); "
                 "starting on the next bar")
            at, bar_beat = link.next_bar_time()
            tempo = link.bpm
            transport.play(seq, tempo=tempo / file_bpm, at=at)
            if clock_out is not None:
                clock_out.set_tempo(tempo)
                clock_out.start(at=at)
            link.follow(transport, file_bpm=file_bpm, origin_beat=bar_beat, clock_out=clock_out)
            waiting = finished
        _wait_any([waiting, ended], 0.0, devices)
        if transport.is_playing:
            transport.stop()
        _say("done")
    except KeyboardInterrupt:
        _say("stopping")
    finally:
        if transport is not None:
            transport.stop()
        for obj in closers:
            try:
                obj.close()
            except Exception as exc:  # noqa: BLE001 - closing must finish
                print(f"closing: {exc}", file=sys.stderr)
        devices.close()
    return 0


def start_sync(devices: Any, sync: SyncChoice, clock_ports: list[str], bpm: float,
               say: Any = _say) -> list[Any]:
    """Sync for a session without a file (``cadenza duet``): MIDI clock to ``clock_ports`` in
    Cadenza's own time from now (internal), or following a MIDI clock input (its Start, Stop,
    tempo and beat forwarded), or on a Link session's beat (started on the next bar). Returns
    what to close, in order."""
    from app.clock import PPQN, ClockIn, check_bpm

    check_bpm(bpm)
    closers: list[Any] = []
    clock_out = devices.open_clock_out(clock_ports, bpm=bpm) if clock_ports else None
    if sync.kind == "internal":
        if clock_out is not None:
            clock_out.start()
            say(f"MIDI clock at {bpm:g} BPM to "
                + ", ".join(o.name for o in clock_out.outputs))
    elif sync.kind == "midi-clock":
        def on_event(event: str, clock: ClockIn) -> None:
            if event in ("start", "continue"):
                say(f"clock {event}")
                if clock_out is not None:
                    clock_out.start(beats=clock.pulse / PPQN)
            elif event in ("stop", "lost"):
                say("clock stopped" if event == "stop" else "the clock went away")
                if clock_out is not None:
                    clock_out.stop()
            elif event == "beat" and clock.bpm:
                if clock_out is not None:
                    clock_out.set_tempo(max(20.0, min(400.0, clock.bpm)))
                    at = clock.time_of(clock.beat)
                    if at is not None:
                        clock_out.locate(clock.beat, at)

        closers.append(devices.open_clock_in(sync.port, ClockIn(on_event)))
        say(f"following the MIDI clock on {closers[-1].name}")
    else:
        from app.link import LinkSync

        link = LinkSync(bpm=bpm)
        closers.append(link)
        say(f"joined Ableton Link at {link.bpm:.2f} BPM ({link.peers} peers)")
        if clock_out is not None:
            at, bar = link.next_bar_time()
            clock_out.set_tempo(link.bpm)
            clock_out.start(at=at)
            link.follow(None, file_bpm=120.0, origin_beat=bar, clock_out=clock_out)
    if clock_out is not None:
        closers.append(clock_out)
    return closers


def grid_of(closers: list[Any]) -> Any:
    """``grid(t, every)`` for the duet's answer on the beat or bar, from what
    :func:`start_sync` opened: the next multiple of ``every`` beats at or after ``t`` (``t``
    itself while no time runs)."""
    import math

    from app.clock import ClockInput, ClockOut

    def beat_and_bpm(t: float) -> tuple[float | None, float | None]:
        for obj in closers:
            if isinstance(obj, ClockInput):
                clock = obj.clock
                return (clock.position(t) if clock.running else None), clock.bpm
            if isinstance(obj, ClockOut):
                return (obj.position(t) if obj.running else None), obj.bpm
            if hasattr(obj, "beat_at"):  # a Link session
                return obj.beat_at(t), obj.bpm
        return None, None

    def grid(t: float, every: float) -> float:
        beat, bpm = beat_and_bpm(t)
        if beat is None or not bpm:
            return t
        target = math.ceil(beat / every - 1e-9) * every
        return t + (target - beat) * 60.0 / bpm

    return grid


def _wait_any(events: list[threading.Event], timeout: float, devices: Any) -> bool:
    """Wait until one of ``events`` is set (True), ``timeout`` passed (False; 0: no limit) or
    a device went away (a one-line error)."""
    from app.devices import describe_losses

    deadline = time.monotonic() + timeout if timeout else None
    while not any(e.is_set() for e in events):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        for e in events:
            if e.wait(0.05):
                return True
        losses = devices.check()
        if losses:
            raise CadenzaError(describe_losses(losses))
    return True
