"""Where a command's MIDI or audio result goes: a file (written atomically by ``models``), or the
standard output for pipes when the command is given ``-o -``.

A MIDI result goes to a MusicXML file instead when the name ends in ``.musicxml``, ``.xml`` or
``.mxl`` (compressed): notation, quantized to sixteenths (``models.musicxml``). With ``-o -``
the file's bytes are the only thing on stdout; the command's own report goes to stderr. Audio
commands take ``--format`` (wav, flac, ogg, mp3, aiff): the container for stdout (WAV when not
given), or for a file whose name has none of those extensions.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from models.errors import CadenzaError

if TYPE_CHECKING:
    from models.audio_io import Audio
    from models.sequence import NoteSequence

STDOUT = "-"
AUDIO_FORMAT_CHOICES = ("wav", "flac", "ogg", "mp3", "aiff")
AUDIO_OUTPUT_HELP = ("audio file to write: .wav, .flac, .ogg, .mp3 or .aiff; '-' writes it to "
                     "stdout (WAV unless --format)")
MIDI_OUTPUT_HELP = ("MIDI file to write, or MusicXML when the name ends in .musicxml, .xml or .mxl "
                    "(quantized to sixteenths); '-' writes MIDI to stdout (for a pipe)")


def add_format_option(parser: argparse.ArgumentParser) -> None:
    """``--format``, for commands that write audio."""
    parser.add_argument(
        "--format", choices=AUDIO_FORMAT_CHOICES, default=None, type=str.lower,
        help="audio container: with '-o -' what goes to stdout (default wav); with a file, "
             "overrides its extension")


class StdoutTarget(str):
    """``-`` holding the process's real standard output, taken before the command runs (see
    :func:`claim_stdout`)."""

    stream: BinaryIO


def claim_stdout() -> StdoutTarget:
    """Keep file descriptor 1 for the result alone: a duplicate of it becomes the result's
    stream, and descriptor 1 itself (so ``print`` and whatever a C library writes there) goes to
    stderr from now on."""
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    target = StdoutTarget(STDOUT)
    target.stream = os.fdopen(fd, "wb")
    return target


def is_stdout(path: str | Path) -> bool:
    return str(path) == STDOUT


def report(text: str, output: str | Path) -> None:
    """A line about the result: on stdout, unless the result itself goes there."""
    print(text, file=sys.stderr if is_stdout(output) else sys.stdout)


def check_audio_output(output: str | Path, format: str | None) -> str:
    """The container the output will have (checked before any long work); a one-line
    :class:`CadenzaError` for an unknown extension or a missing folder."""
    from models.audio_io import audio_format

    if is_stdout(output):
        return audio_format("", format or "wav")
    path = Path(output)
    container = audio_format(path, format)
    _check_folder(path)
    return container


def check_midi_output(output: str | Path) -> None:
    """The folder of a MIDI or MusicXML output, and for MusicXML the music21 package that writes
    it: checked before any long work."""
    if is_stdout(output):
        return
    _check_folder(Path(output))
    from models.musicxml import MUSIC21_MISSING, is_musicxml

    if is_musicxml(output):
        import importlib.util

        if importlib.util.find_spec("music21") is None:
            raise CadenzaError(MUSIC21_MISSING)


def check_notation_output(output: str | Path, drums: bool) -> None:
    """Drums cannot go to MusicXML (``models.musicxml`` says why): refused before the model
    runs, not after."""
    from models.musicxml import is_musicxml

    if drums and not is_stdout(output) and is_musicxml(output):
        raise CadenzaError(f"{Path(output).name}: drum patterns cannot be written as MusicXML "
                           f"(a kit would come back as one sound); write a .mid file")


def write_audio_output(output: str | Path, audio: Audio, subtype: str = "PCM_16",
                       format: str | None = None) -> None:
    """``audio`` to the file ``output`` (atomically), or to stdout when it is ``-``."""
    from models.audio_io import audio_bytes, write_audio

    if is_stdout(output):
        _to_stdout(audio_bytes(audio, format or "wav", subtype), output)
    else:
        write_audio(output, audio, subtype=subtype, format=format)


def write_midi_output(output: str | Path, seq: NoteSequence) -> None:
    """``seq`` as a MIDI file at ``output`` (MusicXML when its name ends in ``.musicxml``,
    ``.xml`` or ``.mxl``), or as MIDI to stdout when it is ``-``."""
    if is_stdout(output):
        from models.midi_io import midi_bytes

        _to_stdout(midi_bytes(seq), output)
    else:
        from models.music_files import write_sequence

        write_sequence(seq, output)


def _check_folder(path: Path) -> None:
    from app.commands import output_file

    output_file(path)


def _to_stdout(data: bytes, output: str | Path) -> None:
    stream = output.stream if isinstance(output, StdoutTarget) else sys.stdout.buffer
    try:
        stream.write(data)
        stream.flush()
    except BrokenPipeError as exc:
        # Nothing more can reach the reader; keep the interpreter's last flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        raise CadenzaError("the pipe closed before the whole file was written") from exc
