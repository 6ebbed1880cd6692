"""What a MusicVAE model takes from any MIDI clip, and which model a pair of clips calls for.

No Keras here: the CLI and the app check clips (and pick the model) before a model loads.

* **Melody models** take one line. A track named like a melody (``MELODY`` as in POP909, or a
  name holding melody, melodie, melodia, lead, vocal or tune) is that line; otherwise it is the
  top voice (skyline) of the busiest pitched part (the instrument with the most distinct note
  onsets): at each onset the highest note, and a note starting under a higher note that is
  still held (by more than half a sixteenth) is left out. Then the converter's melody rules
  apply (see :mod:`models.music_vae.converters`).
* **Drum models** take the notes of the GM drum channel (``is_drum``).
* **Every metre**: clips are read with ``Converter(any_meter=True)`` (sixteenth-note windows
  that start on the clip's bar lines and ignore them after).
* **The model for a pair** (:func:`pick_model`): drums when a clip holds drums only and the
  other holds drums too (a groove with a song: the song's drums); a melody otherwise (a clip
  with drums and pitched notes is read for its tune); the 16-bar melody model when every clip's
  line (its melody track, or its busiest part) spans at least :data:`LONG_STEPS` sixteenths (8
  bars of 4/4, first onset to last), the 2-bar one otherwise.

A clip that gives nothing raises one :class:`CadenzaError` line that says why.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from models.errors import CadenzaError
from models.music_vae import converters as conv
from models.sequence import NoteSequence, TimeSignature

MELODY_NAME = re.compile(r"melod|lead|vocal|\btune\b", re.IGNORECASE)
LONG_STEPS = 128  # a line this long (8 bars of 4/4) calls for the 16-bar melody model
MODEL_FOR = {("melody", 2): "melody-2bar", ("melody", 16): "melody-16bar",
             ("drums", 2): "drums-2bar"}


def melody_tracks(seq: NoteSequence) -> list[int]:
    """The instruments whose track names read like a melody (``MELODY``, ``Lead vocal``...),
    holding pitched notes."""
    pitched = {n.instrument for n in seq.notes if not n.is_drum}
    return sorted(i for i, name in seq.instrument_names.items()
                  if i in pitched and MELODY_NAME.search(name or ""))


def busiest_part(seq: NoteSequence) -> int | None:
    """The pitched instrument with the most distinct onsets (a sixteenth apart), or None."""
    step = 60.0 / seq.qpm / conv.STEPS_PER_QUARTER
    onsets: dict[int, set[int]] = {}
    for n in seq.notes:
        if not n.is_drum:
            onsets.setdefault(n.instrument, set()).add(round(n.start / step))
    if not onsets:
        return None
    return max(sorted(onsets), key=lambda i: len(onsets[i]))


def skyline(seq: NoteSequence, instrument: int) -> NoteSequence:
    """The top voice of ``instrument``'s notes (see the module notes), as its own sequence."""
    step = 60.0 / seq.qpm / conv.STEPS_PER_QUARTER
    notes = sorted((n for n in seq.notes if n.instrument == instrument and not n.is_drum),
                   key=lambda n: (n.start, -n.pitch))
    top: list = []
    for n in notes:
        if top:
            last = top[-1]
            if n.start - last.start < step / 2:
                continue  # the same onset: the highest is in already
            if last.end - n.start > step / 2 and last.pitch > n.pitch:
                continue  # under a higher note still held
            if last.end > n.start:
                top[-1] = replace(last, end=n.start)
        top.append(n)
    out = seq.copy()
    out.notes = top
    return out


def line_of(seq: NoteSequence, kind: str) -> tuple[NoteSequence, list[int] | None, str]:
    """(the notes the model reads, the instruments to read, what they are in words)."""
    if kind == "drums":
        out = seq.copy()
        out.notes = [n for n in seq.notes if n.is_drum]
        return out, None, "drums"
    named = melody_tracks(seq)
    if named:
        names = ", ".join(seq.instrument_names[i] for i in named)
        return seq, named, f"the {names} track"
    part = busiest_part(seq)
    if part is None:
        return seq, None, "no part"
    return skyline(seq, part), [part], "the top voice"


def _as_four_four(seq: NoteSequence) -> NoteSequence:
    """POP909 marks most songs 1/4: read them as 4/4."""
    if seq.time_signatures and all((t.numerator, t.denominator) == (1, 4)
                                   for t in seq.time_signatures):
        seq = seq.copy()
        seq.time_signatures = [TimeSignature(t.time, 4, 4) for t in seq.time_signatures]
    return seq


def line_steps(seq: NoteSequence) -> int:
    """How many sixteenths a clip's melody line spans (first onset to last)."""
    line, instruments, _ = line_of(_as_four_four(seq), "melody")
    starts = [n.start for n in line.notes
              if not n.is_drum and (instruments is None or n.instrument in instruments)]
    if not starts:
        return 0
    return round((max(starts) - min(starts)) * seq.qpm / 60.0 * conv.STEPS_PER_QUARTER) + 1


def clip_windows(seq: NoteSequence, converter: conv.Converter, label: str = "",
                 first: bool = True) -> np.ndarray:
    """Windows [n, steps] of ``seq`` for a model with ``converter``. ``first``: only the first
    window (a shorter line padded with rests).

    Raises a one-line CadenzaError saying why a clip gives nothing.
    """
    return np.stack([labels for labels, _ in _windows(seq, converter, label, first)])


def clip_meters(seq: NoteSequence, converter: conv.Converter, label: str = "") -> conv.Meters:
    """The time signatures of ``seq`` over its first window for ``converter`` (the window
    :func:`clip_windows` gives), as ``(step, numerator, denominator)`` from the window's first
    step: what a window decoded in its place is marked with, metre changes included."""
    return _windows(seq, converter, label, True)[0][1]


def _windows(seq: NoteSequence, converter: conv.Converter, label: str,
             first: bool) -> list[tuple[np.ndarray, conv.Meters]]:
    label = label or seq.name or "the clip"
    converter = replace(converter, any_meter=True)
    seq = _as_four_four(seq)
    kind = converter.kind
    if not seq.notes:
        raise CadenzaError(f"{label} has no notes")
    pitched = any(not n.is_drum for n in seq.notes)
    drums = any(n.is_drum for n in seq.notes)
    if kind == "melody" and not pitched:
        raise CadenzaError(f"{label} holds drums only: a melody model needs pitched notes "
                           f"(use drums-2bar)")
    if kind == "drums" and not drums:
        raise CadenzaError(f"{label} has no drums (GM channel 10): the drum model reads "
                           f"drums only (use a melody model)")
    line, instruments, what = line_of(seq, kind)
    if kind == "drums" and not any(n.pitch in conv.DRUM_PITCH_TO_CLASS for n in line.notes):
        raise CadenzaError(f"{label}: none of its drum notes is a GM drum the model knows "
                           f"(kick, snare, hi-hats, toms, crash, ride)")
    steps = converter.num_steps
    windows: list[tuple[np.ndarray, conv.Meters]] = []
    out_of_range = False
    for events, _, meters in converter.event_parts(line, instruments=instruments):
        labels = converter.encode_events(events)
        if labels is None:
            out_of_range = True
            continue
        hop = converter.steps_per_bar if first else 1
        for end in range(steps, max(len(labels), steps) + 1, hop):
            window = np.array((labels + [0] * steps)[end - steps:end], np.int64)
            if converter.has_onset(window):
                windows.append((window, conv.meters_at(meters, end - steps, steps)))
                if first:
                    return windows
    if windows:
        return windows
    if out_of_range:
        raise CadenzaError(f"{label}: {what} lies outside the melody model's pitches 21-108")
    noun = "drum pattern" if kind == "drums" else "melody"
    raise CadenzaError(f"no {noun} found in {label} ({what} has no note the model can place "
                       f"on a sixteenth-note grid)")


def clip_kinds(seq: NoteSequence) -> set[str]:
    """``{"melody", "drums"}``: what a clip holds (pitched notes, drum-channel notes)."""
    out = set()
    if any(not n.is_drum for n in seq.notes):
        out.add("melody")
    if any(n.is_drum for n in seq.notes):
        out.add("drums")
    return out


def pick_family(seqs: list[NoteSequence | None]) -> str:
    """``"drums"`` or ``"melody"`` for clips (``None``: a sample, no say), as in the notes."""
    kinds = [clip_kinds(s) for s in seqs if s is not None and s.notes]
    if kinds and all("drums" in k for k in kinds) and any(k == {"drums"} for k in kinds):
        return "drums"
    return "melody"


def pick_model(seqs: list[NoteSequence | None], labels: list[str] | None = None) -> str:
    """The shipped model name a set of clips calls for (melody-2bar, melody-16bar or
    drums-2bar); raises a one-line CadenzaError when a clip gives nothing to it."""
    family = pick_family(seqs)
    if family == "drums":
        return MODEL_FOR[("drums", 2)]
    labels = labels or [s.name if s is not None else "" for s in seqs]
    kinds = [clip_kinds(s) if s is not None else set() for s in seqs]
    drums = next((i for i, k in enumerate(kinds) if k == {"drums"}), None)
    tune = next((i for i, k in enumerate(kinds) if k and "drums" not in k), None)
    if drums is not None and tune is not None:
        raise CadenzaError(f"{labels[tune] or 'one clip'} is a melody and "
                           f"{labels[drums] or 'another'} drums only: one model takes two "
                           f"melodies or two drum grooves")
    long = True
    given = 0
    for seq, label in zip(seqs, labels, strict=True):
        if seq is None:
            continue
        given += 1
        clip_windows(seq, conv.Converter("melody", slice_bars=2), label)
        long = long and line_steps(seq) >= LONG_STEPS
    return MODEL_FOR[("melody", 16 if given and long else 2)]
