"""``cadenza render IN.mid -o OUT.wav``: MIDI to audio through FluidSynth, or with
``--instrument DIR`` through a morph instrument folder (WAVs + ``instrument.sfz``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands.output import (
    AUDIO_OUTPUT_HELP,
    add_format_option,
    check_audio_output,
    report,
    write_audio_output,
)
from models import limits
from models.errors import CadenzaError

if TYPE_CHECKING:
    from models.nsynth.instrument import MorphInstrument
    from models.sequence import NoteSequence


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="render a MIDI file to audio (WAV, FLAC, OGG, MP3, AIFF) with FluidSynth or a "
             "morph instrument",
        description=(
            "Render a MIDI file to audio with FluidSynth and a General MIDI soundfont, or with "
            "a morph instrument folder (--instrument)."
        ),
    )
    p.add_argument("input", type=Path, help="MIDI file")
    p.add_argument("-o", "--output", required=True, help=AUDIO_OUTPUT_HELP)
    add_format_option(p)
    p.add_argument("--sample-rate", type=int, default=44100, help="default 44100")
    p.add_argument("--soundfont", type=Path, default=None, help="a .sf2/.sf3 file (default: GM)")
    p.add_argument(
        "--instrument", type=Path, default=None, metavar="DIR",
        help="a morph instrument folder (WAVs + instrument.sfz) instead of FluidSynth",
    )
    p.add_argument("--tail", type=float, default=1.0, help="seconds of release after the end")
    p.add_argument(
        "--bits", choices=["16", "24", "float"], default="16",
        help="sample format (default 16; OGG and MP3 ignore it)"
    )
    p.set_defaults(handler=run)


def load_instrument(directory: Path) -> MorphInstrument:
    """The morph instrument in ``directory``; a :class:`CadenzaError` naming the folder if it is
    missing or holds no SFZ."""
    from models.nsynth.instrument import MorphInstrument

    if not directory.is_dir():
        raise CadenzaError(f"no instrument folder {directory}")
    return MorphInstrument.load(directory)


def run(args: argparse.Namespace) -> int:
    # Arguments first (nothing heavy imported yet), then the files, then the work.
    limits.sample_rate(args.sample_rate)
    tail = limits.number(args.tail, "--tail", 0.0, limits.RENDER_MAX_TAIL, unit=" s")
    check_audio_output(args.output, args.format)
    instrument: Path | None = args.instrument
    if instrument is not None and args.soundfont is not None:
        raise CadenzaError("--soundfont and --instrument exclude each other: choose one")
    limits.midi_file(args.input)

    started = time.perf_counter()
    if instrument is not None:
        from models.nsynth.voices import render_sequence

        morph = load_instrument(instrument)  # before the MIDI: a bad folder fails first
        seq = _read(args.input, tail)
        audio = render_sequence(morph, seq, sample_rate=args.sample_rate, tail=tail)
    else:
        from models.render import Renderer

        seq = _read(args.input, tail)
        with Renderer(soundfont=args.soundfont, sample_rate=args.sample_rate) as renderer:
            audio = renderer.render(seq, tail=tail)
    subtype = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}[args.bits]
    write_audio_output(args.output, audio, subtype=subtype, format=args.format)
    took = time.perf_counter() - started
    report(
        f"{args.output}: {audio.duration:.1f} s at {audio.sample_rate} Hz "
        f"rendered in {took:.2f} s",
        args.output,
    )
    return 0


def _read(path: Path, tail: float) -> NoteSequence:
    """The MIDI (or MusicXML) file to render, within the input and rendering limits."""
    from models.music_files import read_sequence

    seq = read_sequence(path)
    limits.sequence_length(seq.total_time, path.name)
    limits.sequence_length(seq.total_time + tail, f"{path.name} rendered",
                           limits.RENDER_MAX_SECONDS)
    return seq
