"""A process that writes for the hostile suite's kill, full-disk and two-writer cases.

    python writer.py midi TARGET NOTES [loop]     write_midi of NOTES notes (forever with loop)
    python writer.py folder TARGET TAG [loop]     an instrument-like folder, each file tagged TAG
    python writer.py model TARGET TAG [loop]      save_model_dir: config and card tagged TAG

It prints READY once it has written one whole result, then goes on with ``loop``. An error
prints one line ``cadenza: error: ...`` and exits 2.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.audio_io import Audio
from models.checkpoint import save_model_dir
from models.errors import CadenzaError
from models.midi_io import write_midi
from models.nsynth.instrument import save_instrument
from models.sequence import Note, NoteSequence

PITCHES = (36, 48, 60, 72)
LEVELS = {"old": 0.125, "new": 0.25, "left": 0.375, "right": 0.5, "x": 0.625}
"""Each tag's notes hold this one level (exact in 16-bit), so a note tells whose it is."""


@dataclass
class Config:
    tag: str = ""
    layers: tuple[int, ...] = (8,)


def sequence(count: int) -> NoteSequence:
    notes = [Note(pitch=40 + i % 40, velocity=90, start=i * 0.01, end=i * 0.01 + 0.5)
             for i in range(count)]
    return NoteSequence(notes=notes)


def folder(target: Path, tag: str) -> None:
    """A morph instrument's folder, written as ``build_instrument`` writes it; every file
    tagged (the WAVs by their level, the SFZ by a comment, the JSON by a field)."""
    seconds = 3 if tag == "new" else 1  # "new": past the full-disk case's 64 kB per file
    notes = [Audio(np.full((16000 * seconds, 1), LEVELS[tag], np.float32), 16000)
             for _ in PITCHES]
    save_instrument(target, PITCHES, notes, 0.3, {"tag": tag})


def main() -> int:
    mode, target, arg = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    loop = sys.argv[4:] == ["loop"]
    first = True
    try:
        while first or loop:
            if mode == "midi":
                write_midi(sequence(int(arg)), target)
            elif mode == "folder":
                folder(target, arg)
            else:
                save_model_dir(target, "performance", Config(tag=arg), card=f"# {arg}\n" +
                               f"{arg} " * 20000 + "\n")
            if first:
                print("READY", flush=True)
                first = False
    except CadenzaError as exc:
        print(f"cadenza: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
