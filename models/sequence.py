"""The music data type every part of Cadenza speaks: a sequence of notes in seconds.

It follows the shape of Magenta's ``NoteSequence`` (notes with pitch, velocity, start and end in
seconds, program, instrument and drum flag; tempos; time signatures; control changes such as the
sustain pedal) as plain dataclasses, so that models, file I/O, rendering and the GUI share it
without protobuf.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

SUSTAIN_CC = 64
DRUM_CHANNEL = 9  # channel 10 in musicians' numbering
DEFAULT_QPM = 120.0

# The one table of pitch names: pitch classes spelled with sharps, C first; flats and the rare
# enharmonic spellings are read too. Keys are spelled as musicians usually write them.
PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_OTHER_SPELLINGS = {"Db": 1, "Eb": 3, "Gb": 6, "Ab": 8, "Bb": 10, "Cb": 11, "Fb": 4, "E#": 5,
                    "B#": 0}
MAJOR_KEY_TONICS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_KEY_TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
KEY_NAMES = (tuple(f"{k} major" for k in MAJOR_KEY_TONICS)
             + tuple(f"{k} minor" for k in MINOR_KEY_TONICS))


def pitch_name(pitch: int, sharp: str = "#") -> str:
    """``C4`` for MIDI pitch 60 (middle C is C4); ``sharp`` spells the accidental (e.g. "♯")."""
    return f"{PITCH_CLASS_NAMES[pitch % 12].replace('#', sharp)}{pitch // 12 - 1}"


def pitch_class(name: str) -> int:
    """0..11 for a pitch-class name such as "C", "F#" or "Bb" (ValueError for anything else)."""
    if name in PITCH_CLASS_NAMES:
        return PITCH_CLASS_NAMES.index(name)
    if name in _OTHER_SPELLINGS:
        return _OTHER_SPELLINGS[name]
    raise ValueError(f"not a pitch class: {name!r}")


@dataclass
class Note:
    """One sounding note. ``instrument`` groups notes that came from one track/channel."""

    pitch: int
    velocity: int
    start: float
    end: float
    program: int = 0
    is_drum: bool = False
    instrument: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class TempoChange:
    time: float
    qpm: float


@dataclass
class TimeSignature:
    time: float
    numerator: int = 4
    denominator: int = 4


@dataclass
class ControlChange:
    time: float
    number: int
    value: int
    instrument: int = 0
    program: int = 0
    is_drum: bool = False


@dataclass
class PitchBend:
    time: float
    bend: int
    instrument: int = 0
    program: int = 0
    is_drum: bool = False


@dataclass
class NoteSequence:
    """A piece of music: notes plus the tempo map, metre and controllers that go with it."""

    notes: list[Note] = field(default_factory=list)
    tempos: list[TempoChange] = field(default_factory=list)
    time_signatures: list[TimeSignature] = field(default_factory=list)
    control_changes: list[ControlChange] = field(default_factory=list)
    pitch_bends: list[PitchBend] = field(default_factory=list)
    instrument_names: dict[int, str] = field(default_factory=dict)
    ticks_per_quarter: int = 480
    name: str = ""

    # ------------------------------------------------------------------ queries
    @property
    def total_time(self) -> float:
        """End of the last note or event, in seconds."""
        ends = [n.end for n in self.notes]
        ends += [c.time for c in self.control_changes]
        return max(ends, default=0.0)

    @property
    def qpm(self) -> float:
        """The first tempo, quarter notes per minute (120 when the file names none)."""
        return self.tempos[0].qpm if self.tempos else DEFAULT_QPM

    @property
    def time_signature(self) -> TimeSignature:
        return self.time_signatures[0] if self.time_signatures else TimeSignature(0.0, 4, 4)

    @property
    def is_empty(self) -> bool:
        return not self.notes

    def instruments(self) -> list[int]:
        return sorted({n.instrument for n in self.notes})

    def pitch_range(self) -> tuple[int, int]:
        if not self.notes:
            return (60, 72)
        pitches = [n.pitch for n in self.notes]
        return (min(pitches), max(pitches))

    # ------------------------------------------------------------------ transforms
    def copy(self) -> NoteSequence:
        return copy.deepcopy(self)

    def sorted(self) -> NoteSequence:
        """A copy with notes ordered by start, then pitch; events ordered by time."""
        out = self.copy()
        out.sort()
        return out

    def sort(self) -> None:
        """Put this sequence in :meth:`sorted`'s order, in place (no copy: a reader sorts what
        it has just built)."""
        self.notes.sort(key=lambda n: (n.start, n.pitch, n.end))
        self.tempos.sort(key=lambda t: t.time)
        self.time_signatures.sort(key=lambda t: t.time)
        self.control_changes.sort(key=lambda c: c.time)
        self.pitch_bends.sort(key=lambda b: b.time)

    def transpose(self, semitones: int, min_pitch: int = 0, max_pitch: int = 127) -> NoteSequence:
        """Shift every pitched (non-drum) note; notes that fall outside the range are dropped."""
        out = self.copy()
        kept = []
        for n in out.notes:
            if not n.is_drum:
                n.pitch += semitones
                if not min_pitch <= n.pitch <= max_pitch:
                    continue
            kept.append(n)
        out.notes = kept
        return out

    def stretch(self, factor: float) -> NoteSequence:
        """Scale time by ``factor`` (>1 is slower); tempos scale inversely."""
        if factor <= 0:
            raise ValueError("stretch factor must be positive")
        out = self.copy()
        for n in out.notes:
            n.start *= factor
            n.end *= factor
        for t in out.tempos:
            t.time *= factor
            t.qpm /= factor
        for ts in out.time_signatures:
            ts.time *= factor
        for c in out.control_changes:
            c.time *= factor
        for b in out.pitch_bends:
            b.time *= factor
        return out

    def with_tempo(self, qpm: float) -> NoteSequence:
        """A copy whose tempo map is one tempo, ``qpm``, from 0 s: the notes, controllers and
        time signatures keep their times in seconds (they sound the same; a MIDI file of it
        places them against the new tempo's beats). The session tempo a take is given."""
        value = float(qpm)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"tempo must be a positive number of quarter notes per minute, "
                             f"not {qpm!r}")
        out = self.copy()
        out.tempos = [TempoChange(0.0, value)]
        return out

    def shift(self, seconds: float) -> NoteSequence:
        """Move everything later by ``seconds`` (earlier when negative)."""
        out = self.copy()
        for n in out.notes:
            n.start += seconds
            n.end += seconds
        for c in out.control_changes:
            c.time += seconds
        for b in out.pitch_bends:
            b.time += seconds
        for t in out.tempos[1:]:
            t.time += seconds
        for ts in out.time_signatures[1:]:
            ts.time += seconds
        return out

    def trim(self, start: float, end: float) -> NoteSequence:
        """The part between ``start`` and ``end`` seconds, re-based to 0.

        Notes that begin inside the window are kept (and cut at ``end``); notes that begin
        before it are dropped, as in Magenta's ``extract_subsequence``.
        """
        out = self.copy()
        out.notes = [
            replace(n, start=n.start - start, end=min(n.end, end) - start)
            for n in self.notes
            if start <= n.start < end
        ]
        out.control_changes = [
            replace(c, time=c.time - start) for c in self.control_changes if start <= c.time < end
        ]
        out.pitch_bends = [
            replace(b, time=b.time - start) for b in self.pitch_bends if start <= b.time < end
        ]
        out.tempos = _rebase_map(self.tempos, start, end, lambda t, x: replace(t, time=x))
        out.time_signatures = _rebase_map(
            self.time_signatures, start, end, lambda t, x: replace(t, time=x)
        )
        return out

    def concatenate(self, other: NoteSequence, gap: float = 0.0) -> NoteSequence:
        """This sequence followed by ``other`` starting ``gap`` seconds after this one ends."""
        offset = self.total_time + gap
        moved = other.shift(offset)
        out = self.copy()
        out.notes += moved.notes
        out.control_changes += moved.control_changes
        out.pitch_bends += moved.pitch_bends
        return out

    def apply_sustain(self) -> NoteSequence:
        """Lengthen notes held by the sustain pedal (CC 64 >= 64), exactly as Magenta does.

        Follows note_seq's ``sequences_lib.apply_sustain_control_changes`` step for step: note
        on/off and pedal events are processed in time order (pedal down, pedal up, note-on,
        note-off at equal times), per instrument. A note released while the pedal is down
        sounds until the pedal comes up or the same pitch is struck again, whichever is first;
        a re-strike at the very start time of a held note deletes the held note; notes still
        held at the end last until the last event. Drum notes are left alone.
        """
        out = replace(  # a copy, without deepcopy's cost on long performances
            self,
            notes=[copy.copy(n) for n in self.notes],
            tempos=[copy.copy(t) for t in self.tempos],
            time_signatures=[copy.copy(t) for t in self.time_signatures],
            control_changes=[copy.copy(c) for c in self.control_changes],
            pitch_bends=[copy.copy(b) for b in self.pitch_bends],
            instrument_names=dict(self.instrument_names),
        )
        sustain_on, sustain_off, note_on, note_off = 0, 1, 2, 3
        events: list[tuple[float, int, object]] = []
        events += [(n.start, note_on, n) for n in out.notes if not n.is_drum]
        events += [(n.end, note_off, n) for n in out.notes if not n.is_drum]
        for c in out.control_changes:
            if c.number != SUSTAIN_CC:
                continue
            events.append((c.time, sustain_on if c.value >= 64 else sustain_off, c))
        events.sort(key=lambda e: (e[0], e[1]))
        active: dict[int, list[Note]] = {}
        pedal: dict[int, bool] = {}
        time = 0.0
        for time, kind, item in events:
            inst = item.instrument  # type: ignore[attr-defined]
            if kind == sustain_on:
                pedal[inst] = True
            elif kind == sustain_off:
                pedal[inst] = False
                still = []
                for n in active.get(inst, []):
                    if n.end < time:
                        n.end = time  # was held by the pedal
                    else:
                        still.append(n)
                active[inst] = still
            elif kind == note_on:
                assert isinstance(item, Note)
                if pedal.get(inst, False):
                    still = []
                    for n in active.get(inst, []):
                        if n.pitch == item.pitch:
                            n.end = time
                            if n.start == n.end:
                                out.notes.remove(n)
                        else:
                            still.append(n)
                    active[inst] = still
                active.setdefault(inst, []).append(item)
            else:
                if not pedal.get(inst, False) and item in active.get(inst, []):
                    active[inst].remove(item)  # type: ignore[arg-type]
        for held in active.values():
            for n in held:
                n.end = time
        return out

    def sustain_intervals(self, instrument: int = 0) -> list[tuple[float, float]]:
        changes = sorted(
            (c for c in self.control_changes
             if c.number == SUSTAIN_CC and c.instrument == instrument),
            key=lambda c: c.time,
        )
        return _pedal_intervals(changes)


def _rebase_map(items: list, start: float, end: float, move: Callable) -> list:
    """Keep the map entry in force at ``start`` (moved to 0) and those inside the window."""
    ordered = sorted(items, key=lambda t: t.time)
    before = [t for t in ordered if t.time <= start]
    inside = [move(t, t.time - start) for t in ordered if start < t.time < end]
    head = [move(before[-1], 0.0)] if before else []
    return head + inside


def _pedal_intervals(changes: list[ControlChange]) -> list[tuple[float, float]]:
    intervals: list[tuple[float, float]] = []
    down_at: float | None = None
    for c in changes:
        if c.value >= 64 and down_at is None:
            down_at = c.time
        elif c.value < 64 and down_at is not None:
            intervals.append((down_at, c.time))
            down_at = None
    if down_at is not None:
        intervals.append((down_at, float("inf")))
    return intervals


def join_windows(sequences: Sequence[NoteSequence], seconds_each: float) -> NoteSequence:
    """Windows one after another, ``seconds_each`` apart (bar-exact, rests kept): the steps of
    an interpolation or a set of samples as one sequence, with each window's time signatures
    (a repeated one left out)."""
    if not sequences:
        return NoteSequence()
    out = sequences[0].copy()
    out.notes = []
    out.time_signatures = []
    for i, s in enumerate(sequences):
        out.notes += s.shift(i * seconds_each).notes
        for t in sorted(s.time_signatures, key=lambda t: t.time):
            if t.time >= seconds_each - 1e-9:
                continue
            last = out.time_signatures[-1] if out.time_signatures else None
            if last is None or (last.numerator, last.denominator) != (t.numerator,
                                                                      t.denominator):
                out.time_signatures.append(replace(t, time=t.time + i * seconds_each))
    return out.sorted()


# The 128 General MIDI program names (program 0 is the acoustic grand piano), as the GM 1
# specification lists them.
GM_NAMES = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel",
    "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion",
    "Harmonica", "Tango Accordion", "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)",
    "Electric Guitar (jazz)", "Electric Guitar (clean)", "Electric Guitar (muted)",
    "Overdriven Guitar", "Distortion Guitar", "Guitar Harmonics", "Acoustic Bass",
    "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass", "Slap Bass 1",
    "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola", "Cello", "Contrabass",
    "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani", "String Ensemble 1",
    "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs", "Voice Oohs",
    "Synth Choir", "Orchestra Hit", "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn",
    "Brass Section", "Synth Brass 1", "Synth Brass 2", "Soprano Sax", "Alto Sax", "Tenor Sax",
    "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet", "Piccolo", "Flute", "Recorder",
    "Pan Flute", "Blown bottle", "Shakuhachi", "Whistle", "Ocarina", "Lead 1 (square)",
    "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 chiff", "Lead 5 (charang)", "Lead 6 (voice)",
    "Lead 7 (fifths)", "Lead 8 (bass + lead)", "Pad 1 (new age)", "Pad 2 (warm)",
    "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)",
    "Pad 8 (sweep)", "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)",
    "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)", "Sitar", "Banjo",
    "Shamisen", "Koto", "Kalimba", "Bagpipe", "Fiddle", "Shanai", "Tinkle Bell", "Agogo",
    "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter",
    "Applause", "Gunshot",
)
