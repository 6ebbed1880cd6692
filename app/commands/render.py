"""``cadenza render IN.mid -o OUT.wav``: MIDI to audio through FluidSynth."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.errors import CadenzaError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="render a MIDI file to WAV/FLAC with FluidSynth and a General MIDI soundfont",
        description="Render a MIDI file to audio with FluidSynth and a General MIDI soundfont.",
    )
    p.add_argument("input", type=Path, help="MIDI file")
    p.add_argument("-o", "--output", type=Path, required=True, help="WAV or FLAC file to write")
    p.add_argument("--sample-rate", type=int, default=44100, help="default 44100")
    p.add_argument("--soundfont", type=Path, default=None, help="a .sf2/.sf3 file (default: GM)")
    p.add_argument("--tail", type=float, default=1.0, help="seconds of release after the end")
    p.add_argument(
        "--bits", choices=["16", "24", "float"], default="16", help="sample format (default 16)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from models.audio_io import write_audio
    from models.midi_io import read_midi
    from models.render import Renderer

    if not 8000 <= args.sample_rate <= 192000:
        raise CadenzaError(f"--sample-rate must be between 8000 and 192000, not {args.sample_rate}")
    if args.output.suffix.lower() not in (".wav", ".flac"):
        raise CadenzaError(f"output must end in .wav or .flac: {args.output}")
    started = time.perf_counter()
    seq = read_midi(args.input)
    with Renderer(soundfont=args.soundfont, sample_rate=args.sample_rate) as renderer:
        audio = renderer.render(seq, tail=args.tail)
    subtype = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}[args.bits]
    write_audio(args.output, audio, subtype=subtype)
    took = time.perf_counter() - started
    print(
        f"{args.output}: {audio.duration:.1f} s at {audio.sample_rate} Hz "
        f"rendered in {took:.2f} s"
    )
    return 0
