"""Music files of every kind Cadenza reads and writes as a NoteSequence, chosen by extension:
MIDI (:mod:`models.midi_io`) and MusicXML (:mod:`models.musicxml`).

The command line's input clips (``interpolate A B``, ``continue PRIMER``, ``render``, ``play``)
and the app's clip library read through :func:`read_sequence`; ``-o`` and the export dialogs
write through :func:`write_sequence`. This module imports neither mido nor music21 until a file
is read or written.
"""

from __future__ import annotations

from pathlib import Path

from models.musicxml import MUSICXML_SUFFIXES, is_musicxml
from models.sequence import NoteSequence

MIDI_SUFFIXES = (".mid", ".midi")
SEQUENCE_SUFFIXES = MIDI_SUFFIXES + MUSICXML_SUFFIXES
"""Every extension read and written as a NoteSequence."""

__all__ = ["MIDI_SUFFIXES", "MUSICXML_SUFFIXES", "SEQUENCE_SUFFIXES", "is_musicxml",
           "read_sequence", "write_sequence"]


def read_sequence(path: str | Path) -> NoteSequence:
    """A MusicXML file (``.musicxml``, ``.xml``, ``.mxl``) or a MIDI file (any other name) as a
    NoteSequence; a one-line CadenzaError naming the file for anything unreadable."""
    if is_musicxml(path):
        from models.musicxml import read_musicxml

        return read_musicxml(path)
    from models.midi_io import read_midi

    return read_midi(path)


def write_sequence(seq: NoteSequence, path: str | Path) -> None:
    """``seq`` as MusicXML when ``path`` ends in ``.musicxml``, ``.xml`` or ``.mxl`` (compressed),
    else as a MIDI file; written beside ``path`` and renamed over it (the old file is kept on any
    failure)."""
    if is_musicxml(path):
        from models.musicxml import write_musicxml

        write_musicxml(seq, path)
    else:
        from models.midi_io import write_midi

        write_midi(seq, path)
