"""NoteSequence <-> MusicVAE tensors, with Magenta's semantics.

What follows Magenta (``magenta.models.music_vae.data`` and ``note_seq``) step for step:

* **Splitting** at tempo and time-signature changes (``split_note_sequence_on_time_changes``):
  each part has one tempo and one metre; notes that cross a split are cut there.
* **Quantization** (``quantize_note_sequence``): ``steps_per_quarter`` steps per quarter note at
  the part's tempo; a time ``t`` lands on step ``int(t * steps_per_second + 0.5)``; a note whose
  end lands on its start step is lengthened to one step. Bars are ``steps_per_quarter *
  numerator * 4 / denominator`` steps; a converter only keeps parts with 16 steps per bar (4/4 or
  2/2), unless told to read the file as 4/4 (``meter="4/4"``, for POP909, whose files mark 1/4).
* **Melodies** (``melodies_lib.Melody.from_quantized_sequence`` and Magenta's
  ``extract_melodies`` with ``min_bars=1, gap_bars=1, min_unique_pitches=1,
  ignore_polyphonic_notes=True, pad_end=True``, truncated to ``max_bars``): per instrument, notes
  in start order (highest pitch first on ties); a note starting on the step of the last kept note
  is dropped (the highest wins), a later note cuts a held one, and a silence of ``gap_bars`` bars
  ends the melody; the next one starts at the following bar line.
* **Melody events**: ``-2`` no event (hold or rest), ``-1`` note off, ``0..127`` note on;
  one-hot classes ``0`` no event, ``1`` note off, ``2..89`` pitches 21..108 (90 classes).
* **Drums** (``drums_lib.DrumTrack.from_quantized_sequence`` and ``extract_drum_tracks``): all
  drum notes of the file together, grouped by start step; pitches reduced to Magenta's nine drum
  classes (``DEFAULT_DRUM_TYPE_PITCHES``; unknown pitches dropped before extraction), each step one
  of 2**9 = 512 classes (``MultiDrumOneHotEncoding``: bit ``i`` set when class ``i`` plays).
* **Windows**: ``slice_bars`` bars taken with a hop of one bar, de-duplicated per file. (A
  training run may ask for a shorter hop on its training pieces: ``hop_steps``.)

**Every metre** (``Converter(any_meter=True)``; what the app and the CLI read clips with, and what
``cadenza train --any-meter`` trains on). The models' steps are sixteenth notes and their windows
are 32 (2-bar) or 256 (16-bar) of them, whatever the music's metre: the window ignores bar lines
(a 6/8 jig fills 2 2/3 of its bars in a 32-step window, a 3/4 waltz the same). The part's own
metre still places the windows: melodies and drum tracks start on the part's bar lines, a silence
of ``gap_bars`` of its bars ends them, and windows start on each of its bar lines (12 steps apart
in 6/8 and 3/4, 18 in 9/8, 8 in 2/4). Only tempo changes split a part (they change the step's
length); a metre change inside a part keeps the first metre's bar length for placing windows.
A metre whose bar is not a whole number of sixteenths (3/32) places windows every 16 steps.
Decoded windows are marked with the metres of the clip's window they stand for, changes in their
places (``event_parts`` gives each event list's metres, :func:`meters_at` re-bases them to a
window), and a window that ends inside a bar marks that part bar with a metre of its own
(:func:`whole_bars`), so steps joined one after another keep the source's bar lines.
The alternative, windows of whole bars of the metre with each bar padded to 16 steps, was
measured on the shipped models (``benchmarks/bench_meters.py``; the cards have the figures): it
reconstructs the tune's own steps as well or a little better, but only fits bars of at most 16
steps, and the models, trained on 4/4, put notes in the padding in 15 % (2-bar) to 69 % (16-bar)
of the in-between steps of an interpolation, notes that padding cut away would lose.

Where Cadenza differs (on purpose, and said here): windows with no note onset at all (pure
silence) are dropped, so accuracy is not inflated by empty windows; melody windows holding a pitch
outside 21..108 are dropped; every window is kept (Magenta samples at most 5 per file per epoch);
tempo changes smaller than 0.01 % (MIDI microsecond rounding) do not split.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace

import numpy as np

from models.sequence import DRUM_CHANNEL, Note, NoteSequence, TempoChange, TimeSignature

Meters = tuple[tuple[int, int, int], ...]  # (step, numerator, denominator), from a window's start
STEPS_PER_QUARTER = 4
MELODY_NO_EVENT = -2
MELODY_NOTE_OFF = -1
MIN_MELODY_PITCH = 21
MAX_MELODY_PITCH = 108
NUM_SPECIAL_MELODY_EVENTS = 2
MELODY_CLASSES = MAX_MELODY_PITCH - MIN_MELODY_PITCH + 1 + NUM_SPECIAL_MELODY_EVENTS  # 90

# Magenta's drums_encoder_decoder.DEFAULT_DRUM_TYPE_PITCHES: the first pitch of each class is
# the one written back.
DRUM_TYPE_PITCHES: list[list[int]] = [
    [36, 35],  # bass drum
    [38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85],  # snare
    [42, 44, 54, 68, 69, 70, 71, 73, 78, 80, 22],  # closed hi-hat
    [46, 67, 72, 74, 79, 81, 26],  # open hi-hat
    [45, 29, 41, 43, 61, 64, 84],  # low tom
    [48, 47, 60, 63, 77, 86, 87],  # mid tom
    [50, 30, 62, 76, 83],  # high tom
    [49, 52, 55, 57, 58],  # crash
    [51, 53, 59, 82],  # ride
]
NUM_DRUM_TYPES = len(DRUM_TYPE_PITCHES)
DRUM_CLASSES = 2**NUM_DRUM_TYPES  # 512
DRUM_PITCH_TO_CLASS: dict[int, int] = {
    p: i for i, pitches in enumerate(DRUM_TYPE_PITCHES) for p in pitches
}

OUTPUT_VELOCITY = 80


class ConversionError(ValueError):
    """A sequence (part) that a converter cannot use: bad metre, negative time."""


# ------------------------------------------------------------------------------ quantization
@dataclass
class QNote:
    pitch: int
    velocity: int
    start_step: int
    end_step: int
    instrument: int = 0
    program: int = 0
    is_drum: bool = False


@dataclass
class QuantizedSequence:
    notes: list[QNote]
    steps_per_quarter: int
    steps_per_bar_float: float
    qpm: float
    numerator: int = 4
    denominator: int = 4
    total_steps: int = 0
    instrument_names: dict[int, str] = field(default_factory=dict)

    @property
    def steps_per_bar(self) -> int:
        if self.steps_per_bar_float % 1 != 0:
            raise ConversionError(f"{self.steps_per_bar_float} steps per bar is not whole")
        return int(self.steps_per_bar_float)


def quantize_to_step(seconds: float, steps_per_second: float, cutoff: float = 0.5) -> int:
    """Magenta's ``quantize_to_step``."""
    return int(seconds * steps_per_second + (1 - cutoff))


def _same_qpm(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 * max(a, b)


def split_on_time_changes(seq: NoteSequence, meters: bool = True) -> list[NoteSequence]:
    """Parts of ``seq`` with one tempo and one time signature each (Magenta's presplit).

    ``meters=False`` splits at tempo changes only (a part may change metre).
    """
    events: list[tuple[float, str, object]] = []
    events += [(t.time, "tempo", t.qpm) for t in seq.tempos]
    events += [(t.time, "ts", (t.numerator, t.denominator)) for t in seq.time_signatures]
    events.sort(key=lambda e: e[0])
    qpm, ts = 120.0, (4, 4)
    splits: list[float] = []
    for time, kind, value in events:
        if kind == "tempo":
            changed = not _same_qpm(qpm, float(value))  # type: ignore[arg-type]
            qpm = float(value)  # type: ignore[arg-type]
        else:
            changed = meters and value != ts
            ts = value  # type: ignore[assignment]
        if changed and time > 0 and (not splits or time > splits[-1]):
            splits.append(time)
    if not splits:
        return [seq]
    bounds = [0.0] + splits + [max(seq.total_time, splits[-1]) + 1e-9]
    # Each part is trimmed from only what lies in its window (found by bisection), so a file
    # with thousands of tempo changes splits in time proportional to its size, not its size
    # times its tempo changes.
    notes = sorted(seq.notes, key=lambda n: n.start)
    ccs = sorted(seq.control_changes, key=lambda c: c.time)
    bends = sorted(seq.pitch_bends, key=lambda b: b.time)
    tempos = sorted(seq.tempos, key=lambda t: t.time)
    signatures = sorted(seq.time_signatures, key=lambda t: t.time)
    keys = {"notes": [n.start for n in notes], "ccs": [c.time for c in ccs],
            "bends": [b.time for b in bends], "tempos": [t.time for t in tempos],
            "signatures": [t.time for t in signatures]}

    def window(name: str, items: list, start: float, end: float, head: bool = False) -> list:
        times = keys[name]
        first = bisect.bisect_left(times, start)
        if head:  # the map entry in force at ``start`` too
            first = max(bisect.bisect_right(times, start) - 1, 0)
        return items[first:bisect.bisect_left(times, end)]

    parts = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        inside = window("notes", notes, start, end)
        if end <= start or not inside:
            continue
        sub = replace(seq, notes=inside, control_changes=window("ccs", ccs, start, end),
                      pitch_bends=window("bends", bends, start, end),
                      tempos=window("tempos", tempos, start, end, head=True),
                      time_signatures=window("signatures", signatures, start, end, head=True))
        part = sub.trim(start, end)  # copies only the window
        if part.notes:
            parts.append(part)
    return parts


def quantize(
    seq: NoteSequence, steps_per_quarter: int = STEPS_PER_QUARTER, meter: str = "file"
) -> QuantizedSequence:
    """Quantize a part with one tempo and one metre (raises ConversionError otherwise).

    ``meter="4/4"`` reads the part as 4/4 whatever its time signature says; ``meter="any"``
    takes a part that changes metre, its bars being those of its first time signature (16
    steps when they are not a whole number of steps).
    """
    tempos = sorted(seq.tempos, key=lambda t: t.time)
    if tempos:
        if tempos[0].time > 0 and not _same_qpm(tempos[0].qpm, 120.0):
            raise ConversionError("implicit tempo change from 120 qpm")
        if any(not _same_qpm(t.qpm, tempos[0].qpm) for t in tempos[1:]):
            raise ConversionError("tempo changes inside the part")
        qpm = tempos[0].qpm
    else:
        qpm = 120.0
    sigs = sorted(seq.time_signatures, key=lambda t: t.time)
    if meter == "any":
        sigs = [t for t in sigs if 0 < t.numerator and 0 < t.denominator][:1]
        if sigs and sigs[0].time > 0:
            sigs[0] = replace(sigs[0], time=0.0)
    if sigs:
        if sigs[0].time > 0 and (sigs[0].numerator, sigs[0].denominator) != (4, 4):
            raise ConversionError("implicit time signature change from 4/4")
        if any((t.numerator, t.denominator) != (sigs[0].numerator, sigs[0].denominator)
               for t in sigs[1:]):
            raise ConversionError("time signature changes inside the part")
        num, den = sigs[0].numerator, sigs[0].denominator
    else:
        num, den = 4, 4
    if meter == "4/4" or (meter == "any" and den & (den - 1)):
        num, den = 4, 4
    if num <= 0 or den <= 0 or den & (den - 1):
        raise ConversionError(f"bad time signature {num}/{den}")
    steps_per_bar = steps_per_quarter * num * 4.0 / den
    if meter == "any" and steps_per_bar % 1:
        steps_per_bar = steps_per_quarter * 4.0
    sps = steps_per_quarter * qpm / 60.0
    notes = []
    total = 0
    for n in seq.notes:
        start = quantize_to_step(n.start, sps)
        end = quantize_to_step(n.end, sps)
        if end == start:
            end += 1
        if start < 0 or end < 0:
            raise ConversionError("negative note time")
        total = max(total, end)
        notes.append(QNote(n.pitch, n.velocity, start, end, n.instrument, n.program, n.is_drum))
    return QuantizedSequence(
        notes, steps_per_quarter, steps_per_bar, qpm, num, den, total, dict(seq.instrument_names)
    )


# ------------------------------------------------------------------------------ melodies
class _Melody:
    """Magenta's ``Melody`` event list (only what extraction needs)."""

    def __init__(self) -> None:
        self.events: list[int] = []
        self.start_step = 0
        self.end_step = 0

    def __len__(self) -> int:
        return len(self.events)

    def set_length(self, steps: int) -> None:
        old = len(self.events)
        if steps > old:
            self.events.extend([MELODY_NO_EVENT] * (steps - old))
        else:
            del self.events[steps:]
        self.end_step = self.start_step + steps
        if steps > old:  # extending on the right ends a sustained note
            for i in reversed(range(old)):
                if self.events[i] == MELODY_NOTE_OFF:
                    break
                if self.events[i] != MELODY_NO_EVENT:
                    self.events[old] = MELODY_NOTE_OFF
                    break

    def add_note(self, pitch: int, start: int, end: int) -> None:
        self.set_length(end + 1)
        self.events[start] = pitch
        self.events[end] = MELODY_NOTE_OFF
        for i in range(start + 1, end):
            self.events[i] = MELODY_NO_EVENT

    def last_on_off(self) -> tuple[int, int]:
        last_off = len(self.events)
        for i in range(len(self.events) - 1, -1, -1):
            if self.events[i] == MELODY_NOTE_OFF:
                last_off = i
            if self.events[i] >= 0:
                return i, last_off
        raise ValueError("no events")


def melody_from_quantized(
    q: QuantizedSequence,
    instrument: int,
    search_start_step: int = 0,
    gap_bars: float = 1.0,
    pad_end: bool = True,
) -> _Melody:
    """Magenta's ``Melody.from_quantized_sequence`` with ``ignore_polyphonic_notes=True``."""
    mel = _Melody()
    steps_per_bar = q.steps_per_bar
    notes = sorted(
        (n for n in q.notes if n.instrument == instrument and n.start_step >= search_start_step),
        key=lambda n: (n.start_step, -n.pitch),
    )
    if not notes:
        return mel
    mel_start = notes[0].start_step - (notes[0].start_step - search_start_step) % steps_per_bar
    for n in notes:
        if n.is_drum or not n.velocity:
            continue
        start, end = n.start_step - mel_start, n.end_step - mel_start
        if not mel.events:
            mel.add_note(n.pitch, start, end)
            continue
        last_on, last_off = mel.last_on_off()
        if start == last_on:
            continue  # the highest pitch on this step is already in
        if len(mel.events) and start - last_off >= gap_bars * steps_per_bar:
            break
        mel.add_note(n.pitch, start, end)
    if not mel.events:
        return mel
    mel.start_step = mel_start
    mel.end_step = mel_start + len(mel.events)
    if mel.events[-1] == MELODY_NOTE_OFF:
        del mel.events[-1]
    length = len(mel.events)
    if pad_end:
        length += -length % steps_per_bar
    mel.set_length(length)
    return mel


def extract_melodies(
    q: QuantizedSequence,
    min_bars: int = 1,
    max_steps_truncate: int | None = None,
    gap_bars: float = 1.0,
    min_unique_pitches: int = 1,
    instruments: list[int] | None = None,
    starts: list[int] | None = None,
) -> list[list[int]]:
    """Magenta's ``extract_melodies`` (pad_end=True, polyphony ignored): event lists; the
    step each one begins on is appended to ``starts`` when given."""
    steps_per_bar = q.steps_per_bar
    found: list[list[int]] = []
    chosen = sorted({n.instrument for n in q.notes}) if instruments is None else instruments
    for instrument in chosen:
        search = 0
        while True:
            mel = melody_from_quantized(q, instrument, search, gap_bars, pad_end=True)
            if not mel.events:
                break
            search = mel.end_step + (0 - mel.end_step) % steps_per_bar
            if len(mel.events) < steps_per_bar * min_bars:
                continue
            if max_steps_truncate is not None and len(mel.events) > max_steps_truncate:
                mel.set_length(max_steps_truncate - max_steps_truncate % steps_per_bar)
            if len({e for e in mel.events if e >= 0}) < min_unique_pitches:
                continue
            found.append(list(mel.events))
            if starts is not None:
                starts.append(mel.start_step)
    return found


def melody_event_to_class(event: int) -> int:
    if event < 0:
        return event + NUM_SPECIAL_MELODY_EVENTS
    return event - MIN_MELODY_PITCH + NUM_SPECIAL_MELODY_EVENTS


def melody_class_to_event(index: int) -> int:
    if index < NUM_SPECIAL_MELODY_EVENTS:
        return index - NUM_SPECIAL_MELODY_EVENTS
    return index - NUM_SPECIAL_MELODY_EVENTS + MIN_MELODY_PITCH


# ------------------------------------------------------------------------------ drums
def drum_track_from_quantized(
    q: QuantizedSequence, search_start_step: int = 0, gap_bars: float = 1.0, pad_end: bool = True
) -> tuple[list[frozenset[int]], int, int]:
    """Magenta's ``DrumTrack.from_quantized_sequence``: (events, start_step, end_step)."""
    steps_per_bar = q.steps_per_bar
    grouped: dict[int, set[int]] = {}
    for n in q.notes:
        if n.is_drum and n.velocity and n.start_step >= search_start_step:
            grouped.setdefault(n.start_step, set()).add(n.pitch)
    if not grouped:
        return [], search_start_step, search_start_step
    steps = sorted(grouped)
    track_start = steps[0] - (steps[0] - search_start_step) % steps_per_bar
    events: list[frozenset[int]] = []
    gap_start = 0
    for step in steps:
        index = step - track_start
        if events and index - gap_start >= gap_bars * steps_per_bar:
            break
        events.extend([frozenset()] * (index + 1 - len(events)))
        events[index] = frozenset(grouped[step])
        gap_start = index + 1
    if pad_end:
        events.extend([frozenset()] * (-len(events) % steps_per_bar))
    return events, track_start, track_start + len(events)


def extract_drum_tracks(
    q: QuantizedSequence,
    min_bars: int = 1,
    max_steps_truncate: int | None = None,
    gap_bars: float = 1.0,
    starts: list[int] | None = None,
) -> list[list[frozenset[int]]]:
    """Magenta's ``extract_drum_tracks`` (pad_end=True); the step each track begins on is
    appended to ``starts`` when given."""
    steps_per_bar = q.steps_per_bar
    found = []
    search = 0
    while True:
        events, begin, end = drum_track_from_quantized(q, search, gap_bars, pad_end=True)
        search = end + (search - end) % steps_per_bar
        if not events:
            break
        if len(events) < steps_per_bar * min_bars:
            continue
        if max_steps_truncate is not None and len(events) > max_steps_truncate:
            events = events[: max_steps_truncate - max_steps_truncate % steps_per_bar]
        found.append(events)
        if starts is not None:
            starts.append(begin)
    return found


def drum_event_to_class(pitches: frozenset[int] | set[int]) -> int:
    """``MultiDrumOneHotEncoding.encode_event`` (unknown pitches ignored)."""
    classes = {DRUM_PITCH_TO_CLASS[p] for p in pitches if p in DRUM_PITCH_TO_CLASS}
    return sum(2**i for i in classes)


def drum_class_to_event(index: int) -> frozenset[int]:
    return frozenset(DRUM_TYPE_PITCHES[i][0] for i in range(NUM_DRUM_TYPES) if index >> i & 1)


def drum_roll_table() -> np.ndarray:
    """[512, 10] float32: the nine drum bits of each class plus a 'nothing plays' bit.

    This is Magenta's ``roll_input`` encoder input for drums.
    """
    table = np.zeros((DRUM_CLASSES, NUM_DRUM_TYPES + 1), np.float32)
    for c in range(DRUM_CLASSES):
        for i in range(NUM_DRUM_TYPES):
            table[c, i] = c >> i & 1
        table[c, NUM_DRUM_TYPES] = float(c == 0)
    return table


# ------------------------------------------------------------------------------ converters
@dataclass
class Converter:
    """Turns NoteSequences into fixed-length windows of class indices and back."""

    kind: str = "melody"  # "melody" | "drums"
    slice_bars: int = 2
    steps_per_quarter: int = STEPS_PER_QUARTER
    max_bars: int = 100
    gap_bars: float = 1.0
    valid_programs: tuple[int, ...] | None = None
    hop_steps: int = 0  # window hop in steps; 0 = one bar (Magenta's; the part's with any_meter)
    any_meter: bool = False  # every metre on the sixteenth grid (see the module notes)

    @property
    def steps_per_bar(self) -> int:
        return self.steps_per_quarter * 4

    @property
    def num_steps(self) -> int:
        return self.slice_bars * self.steps_per_bar

    @property
    def num_classes(self) -> int:
        return MELODY_CLASSES if self.kind == "melody" else DRUM_CLASSES

    # -------------------------------------------------------------- to tensors
    def event_lists(
        self, seq: NoteSequence, meter: str = "file", instruments: list[int] | None = None
    ) -> list[list]:
        """The melodies (or drum tracks) Magenta would extract from ``seq``, as event lists."""
        return [events for events, _, _ in self.event_parts(seq, meter, instruments)]

    def event_parts(
        self, seq: NoteSequence, meter: str = "file", instruments: list[int] | None = None
    ) -> list[tuple[list, int, Meters]]:
        """(event list, steps per bar of its part, its metres) of each melody (or drum track)
        in ``seq``; the metres are the time signatures of ``seq`` over the event list, as
        ``(step, numerator, denominator)`` from its first step (:func:`meters_at`).

        Without ``any_meter`` only parts with 16 steps per bar give any (Magenta's rule).
        """
        out: list[tuple[list, int, Meters]] = []
        if self.any_meter and meter == "file":
            meter = "any"
        for part in split_on_time_changes(seq, meters=not self.any_meter):
            try:
                q = quantize(part, self.steps_per_quarter, meter)
                if not self.any_meter and q.steps_per_bar_float != self.steps_per_bar:
                    continue
                bar = q.steps_per_bar
            except ConversionError:
                continue
            truncate = self.max_bars * self.steps_per_bar if self.max_bars else None
            starts: list[int] = []
            if self.kind == "melody":
                if self.valid_programs is not None:
                    q.notes = [n for n in q.notes if n.program in self.valid_programs]
                q.notes = [n for n in q.notes if not n.is_drum]
                found = extract_melodies(
                    q, min_bars=1, max_steps_truncate=truncate, gap_bars=self.gap_bars,
                    instruments=instruments, starts=starts,
                )
            else:
                kept = []
                for n in q.notes:
                    if n.is_drum and n.pitch in DRUM_PITCH_TO_CLASS:
                        cls = DRUM_PITCH_TO_CLASS[n.pitch]
                        kept.append(QNote(DRUM_TYPE_PITCHES[cls][0], n.velocity, n.start_step,
                                          n.end_step, n.instrument, n.program, True))
                q.notes = kept
                found = extract_drum_tracks(q, min_bars=1, max_steps_truncate=truncate,
                                            gap_bars=self.gap_bars, starts=starts)
            step = 60.0 / q.qpm / self.steps_per_quarter
            marks = step_meters(part.time_signatures, step)
            out += [(events, bar, meters_at(marks, start, len(events)))
                    for events, start in zip(found, starts, strict=True)]
        return out

    def encode_events(self, events: list) -> list[int] | None:
        """Class indices of one event list (None when a pitch is out of range)."""
        if self.kind == "drums":
            return [drum_event_to_class(e) for e in events]
        labels = []
        for e in events:
            if e >= 0 and not MIN_MELODY_PITCH <= e <= MAX_MELODY_PITCH:
                return None
            labels.append(melody_event_to_class(e))
        return labels

    def to_windows(
        self, seq: NoteSequence, meter: str = "file", instruments: list[int] | None = None
    ) -> np.ndarray:
        """[n, num_steps] int16: the distinct windows of ``seq``, sliced every ``hop_steps``
        steps (one bar by default)."""
        windows: set[tuple[int, ...]] = set()
        n = self.num_steps
        for events, bar, _ in self.event_parts(seq, meter, instruments):
            hop = self.hop_steps or bar
            labels = self.encode_events(events)
            if labels is None:
                continue
            for end in range(n, len(labels) + 1, hop):
                window = tuple(labels[end - n:end])
                if self.has_onset(window):
                    windows.add(window)
        if not windows:
            return np.zeros((0, n), np.int16)
        return np.array(sorted(windows), np.int16)

    def has_onset(self, labels: tuple[int, ...] | np.ndarray) -> bool:
        if self.kind == "drums":
            return any(int(x) > 0 for x in labels)
        return any(int(x) >= NUM_SPECIAL_MELODY_EVENTS for x in labels)

    # -------------------------------------------------------------- to sequences
    def to_sequence(
        self, labels: np.ndarray | list[int], qpm: float = 120.0, velocity: int = OUTPUT_VELOCITY,
        time_signature: tuple[int, int] | Meters = (4, 4),
    ) -> NoteSequence:
        """One window of class indices as a NoteSequence (drums on channel 10, is_drum), in
        ``time_signature`` (the source's: the steps are sixteenths whatever the metre): one
        ``(numerator, denominator)``, or the source's metres over its window, ``(step,
        numerator, denominator)`` each (a metre that changes on its step)."""
        step = 60.0 / qpm / self.steps_per_quarter
        signatures = [TimeSignature(s * step, num, den)
                      for s, num, den in whole_bars(as_meters(time_signature), len(labels))]
        notes: list[Note] = []
        if self.kind == "drums":
            for i, c in enumerate(labels):
                for p in sorted(drum_class_to_event(int(c))):
                    notes.append(Note(p, velocity, i * step, (i + 1) * step, 0, True,
                                      DRUM_CHANNEL))
        else:
            current: Note | None = None
            for i, c in enumerate(labels):
                e = melody_class_to_event(int(c))
                if e >= 0:
                    if current is not None:
                        current.end = i * step
                    current = Note(e, velocity, i * step, i * step, 0, False, 0)
                    notes.append(current)
                elif e == MELODY_NOTE_OFF and current is not None:
                    current.end = i * step
                    current = None
            if current is not None:
                current.end = len(labels) * step
        return NoteSequence(
            notes=notes,
            tempos=[TempoChange(0.0, qpm)],
            time_signatures=signatures,
            instrument_names={DRUM_CHANNEL: "Drums"} if self.kind == "drums" else {0: "Melody"},
        )


def step_meters(signatures: list[TimeSignature], step_seconds: float) -> Meters:
    """A part's time signatures as ``(step, numerator, denominator)`` on its sixteenth grid
    (4/4 before the first, as a MIDI file without one means)."""
    out: list[tuple[int, int, int]] = [(0, 4, 4)]
    for t in sorted(signatures, key=lambda t: t.time):
        if t.numerator <= 0 or t.denominator <= 0:
            continue
        mark = (max(0, int(round(t.time / step_seconds))), t.numerator, t.denominator)
        while out and out[-1][0] >= mark[0]:
            out.pop()
        out.append(mark)
    return tuple(out)


def meters_at(marks: Meters, start: int, steps: int) -> Meters:
    """The metres of ``marks`` over ``steps`` steps from step ``start``, re-based to it: the
    one in force at ``start`` first (at 0), then each change inside, a repeated one left out."""
    first = next(m for m in reversed(marks) if m[0] <= start) if marks else (0, 4, 4)
    out = [(0, first[1], first[2])]
    for s, num, den in marks:
        if start < s < start + steps and (num, den) != out[-1][1:]:
            out.append((s - start, num, den))
    return tuple(out)


def whole_bars(meters: Meters, steps: int) -> Meters:
    """``meters`` within a window of ``steps`` sixteenths, its last bar marked with a metre of
    its own when the window ends inside it (6/8 over 32 steps: two bars of 6/8, then one of
    4/8), so windows played one after another keep their bar lines where the source had them.
    """
    inside = [m for m in meters if m[0] < steps]
    if not inside:
        return ()
    start, num, den = inside[-1]
    bar = num * 16 / den  # sixteenths a bar
    if bar % 1 or bar <= 0:
        return tuple(inside)
    left = (steps - start) % int(bar)
    if left:
        last = steps - left
        unit = 16 // den if 16 % den == 0 else 0  # sixteenths per beat of this metre
        mark = (last, left // unit, den) if unit and left % unit == 0 else (last, left, 16)
        inside = [m for m in inside if m[0] < last] + [mark]
    return tuple(inside)


def as_meters(time_signature: tuple[int, int] | Meters) -> Meters:
    """``(numerator, denominator)`` or metres ``((step, numerator, denominator), ...)`` as
    metres."""
    items = tuple(time_signature)
    if items and isinstance(items[0], int | np.integer):
        num, den = items  # type: ignore[misc]
        return ((0, int(num), int(den)),)
    return tuple((int(s), int(num), int(den)) for s, num, den in items)  # type: ignore[misc]


def melody_converter(slice_bars: int = 2) -> Converter:
    return Converter("melody", slice_bars=slice_bars)


def drums_converter(slice_bars: int = 2) -> Converter:
    return Converter("drums", slice_bars=slice_bars)
