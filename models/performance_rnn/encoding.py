"""Magenta's ``performance_with_dynamics`` event encoding and its control signals, in numpy.

The vocabulary is Magenta's (note_seq ``PerformanceOneHotEncoding(num_velocity_bins=32)``), in
its order::

    0..127    NOTE_ON  pitch 0..127
    128..255  NOTE_OFF pitch 0..127
    256..355  TIME_SHIFT of 1..100 steps (10 ms each)
    356..387  VELOCITY bin 1..32 (applies to the following note-ons)

A sequence is encoded like ``note_seq``: sustain pedal applied to note lengths
(:meth:`NoteSequence.apply_sustain`, which follows ``apply_sustain_control_changes``), absolute
quantization at 100 steps per second (``int(seconds * 100 + 0.5)``, a note at least one step
long), notes ordered by (unquantized start, pitch), on/off events ordered by (step, note index,
off-after-on), a velocity event before a note-on whose bin differs from the last one, and gaps
longer than one second split into 1 s shifts.

The control signals are Magenta's ``multiconditioned_performance_with_dynamics`` ones: note
density over a 3 s window (one-hot over the bins ``[0,1) [1,2) [2,4) ... [64, inf)`` notes per
second) and a 12-bin pitch-class histogram over a 5 s window. Like Magenta's, both look at the
window that *starts* at each event (they describe the music to come), so they are only a
generation control: evaluation switches them off with the optional-conditioning flag.
"""

from __future__ import annotations

import math

import numpy as np

from models.sequence import Note, NoteSequence, pitch_class

ENCODING_VERSION = 1

STEPS_PER_SECOND = 100
MAX_SHIFT_STEPS = 100
NUM_VELOCITY_BINS = 32
MIN_PITCH, MAX_PITCH = 0, 127

NOTE_ON = 0
NOTE_OFF = 128
TIME_SHIFT = 256  # TIME_SHIFT + (steps - 1)
VELOCITY = 356  # VELOCITY + (bin - 1)
NUM_CLASSES = 388

# Conditioning (Magenta's multiconditioned config).
DENSITY_WINDOW_SECONDS = 3.0
DENSITY_BIN_RANGES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
NUM_DENSITY_BINS = len(DENSITY_BIN_RANGES) + 1
HISTOGRAM_WINDOW_SECONDS = 5.0
HISTOGRAM_PRIOR = 0.01
NOTES_PER_OCTAVE = 12
# flag (1 = conditioning off) + density one-hot + pitch-class histogram
CONTROL_SIZE = 1 + NUM_DENSITY_BINS + NOTES_PER_OCTAVE

_VELOCITY_BIN_SIZE = int(math.ceil(127 / NUM_VELOCITY_BINS))  # 4, as note_seq


# ------------------------------------------------------------------------------ events
def velocity_to_bin(velocity: int) -> int:
    return (int(velocity) - 1) // _VELOCITY_BIN_SIZE + 1


def bin_to_velocity(velocity_bin: int) -> int:
    return 1 + (int(velocity_bin) - 1) * _VELOCITY_BIN_SIZE


def quantize(seconds: float) -> int:
    """note_seq's ``quantize_to_step`` at 100 steps per second (cutoff 0.5)."""
    return int(seconds * STEPS_PER_SECOND + 0.5)


def is_time_shift(events: np.ndarray) -> np.ndarray:
    return (events >= TIME_SHIFT) & (events < VELOCITY)


def shift_steps(events: np.ndarray) -> np.ndarray:
    """Steps each event moves time forward (0 for anything but a time shift)."""
    ev = np.asarray(events, dtype=np.int64)
    return np.where(is_time_shift(ev), ev - TIME_SHIFT + 1, 0)


def encode_notes(notes: list[Note]) -> np.ndarray:
    """Notes (already sustained) to event indices, exactly as note_seq's ``Performance``."""
    quantized = []
    for n in notes:
        start, end = quantize(n.start), quantize(n.end)
        if end == start:
            end += 1
        if start < 0 or end < 0:
            raise ValueError("negative note time")
        quantized.append((n.start, n.pitch, start, end, n.velocity))
    quantized.sort(key=lambda q: (q[0], q[1]))  # stable, like note_seq's sort
    marks = [(q[2], i, False) for i, q in enumerate(quantized)]
    marks += [(q[3], i, True) for i, q in enumerate(quantized)]
    marks.sort()
    out: list[int] = []
    step = 0
    velocity_bin = 0
    for at, idx, is_off in marks:
        if at > step:
            while at > step + MAX_SHIFT_STEPS:
                out.append(TIME_SHIFT + MAX_SHIFT_STEPS - 1)
                step += MAX_SHIFT_STEPS
            out.append(TIME_SHIFT + at - step - 1)
            step = at
        _, pitch, _, _, velocity = quantized[idx]
        if is_off:
            out.append(NOTE_OFF + pitch)
        else:
            vbin = velocity_to_bin(velocity)
            if vbin != velocity_bin:
                velocity_bin = vbin
                out.append(VELOCITY + vbin - 1)
            out.append(NOTE_ON + pitch)
    return np.asarray(out, dtype=np.int16)


def encode(seq: NoteSequence, sustain: bool = True) -> np.ndarray:
    """A NoteSequence to Magenta performance events (sustain applied first unless told not to)."""
    if sustain:
        seq = seq.apply_sustain()
    return encode_notes(seq.notes)


def decode(
    events: np.ndarray | list[int],
    velocity: int = 64,
    start_time: float = 0.0,
    instrument: int = 0,
    program: int = 0,
    max_note_duration: float | None = None,
) -> NoteSequence:
    """Events back to notes, as note_seq's ``Performance.to_sequence``.

    A note-off closes the oldest open note of its pitch; zero-length notes are dropped; notes
    still sounding at the end are closed at the final step; with ``max_note_duration`` (seconds)
    longer notes are cut to it, as Magenta's generator does (5 s).
    """
    spq = 1.0 / STEPS_PER_SECOND
    notes: list[Note] = []
    open_notes: dict[int, list[tuple[int, int]]] = {}
    step = 0
    for ev in np.asarray(events, dtype=np.int64).tolist():
        if ev < NOTE_OFF:
            open_notes.setdefault(ev, []).append((step, velocity))
        elif ev < TIME_SHIFT:
            pitch = ev - NOTE_OFF
            pending = open_notes.get(pitch)
            if not pending:
                continue
            begun, vel = pending.pop(0)
            if begun == step:
                continue
            notes.append(Note(pitch, vel, start_time + begun * spq, start_time + step * spq,
                              program=program, instrument=instrument))
        elif ev < VELOCITY:
            step += ev - TIME_SHIFT + 1
        elif ev < NUM_CLASSES:
            velocity = bin_to_velocity(ev - VELOCITY + 1)
        else:
            raise ValueError(f"event {ev} is outside the vocabulary")
    for pitch, pending in open_notes.items():
        for begun, vel in pending:
            if begun != step:
                notes.append(Note(pitch, vel, start_time + begun * spq, start_time + step * spq,
                                  program=program, instrument=instrument))
    if max_note_duration is not None:
        for n in notes:
            n.end = min(n.end, n.start + max_note_duration)
    notes.sort(key=lambda n: (n.start, n.pitch))
    return NoteSequence(notes=notes)


def events_duration_steps(events: np.ndarray) -> int:
    return int(shift_steps(events).sum())


# ------------------------------------------------------------------------------ augmentation
def transpose_events(events: np.ndarray, semitones: int) -> np.ndarray:
    """Shift every note-on/off; notes pushed outside 0..127 are dropped (as Magenta)."""
    ev = np.asarray(events, dtype=np.int16)
    if semitones == 0:
        return ev.copy()
    out = ev.astype(np.int32)
    is_note = out < TIME_SHIFT
    base = np.where(out < NOTE_OFF, NOTE_ON, NOTE_OFF)
    pitch = out - base + semitones
    keep = ~is_note | ((pitch >= MIN_PITCH) & (pitch <= MAX_PITCH))
    out = np.where(is_note, base + pitch, out)
    return out[keep].astype(np.int16)


def stretch_events(events: np.ndarray, factor: float) -> np.ndarray:
    """Scale time by ``factor``: every event's step becomes ``round(step * factor)``.

    Within 10 ms of Magenta's stretch-then-quantize; the order of events within a step is kept.
    """
    ev = np.asarray(events, dtype=np.int64)
    if factor == 1.0 or ev.size == 0:
        return ev.astype(np.int16)
    shifts = shift_steps(ev)
    steps = np.cumsum(shifts)  # the step at (after) each event
    keep = ~is_time_shift(ev)
    kept = ev[keep]
    new_steps = np.floor(steps[keep] * factor + 0.5).astype(np.int64)
    gaps = np.diff(np.concatenate([[0], new_steps]))
    # Shift events before each kept event: ceil(gap / 100) of them.
    n_shift = (gaps + MAX_SHIFT_STEPS - 1) // MAX_SHIFT_STEPS
    total = int(n_shift.sum()) + kept.size
    out = np.empty(total, dtype=np.int64)
    pos_event = np.cumsum(n_shift + 1) - 1  # index of each kept event in out
    out[pos_event] = kept
    # Fill the shift slots: full 1 s shifts then the remainder.
    owner = np.repeat(np.arange(kept.size), n_shift)
    first = np.repeat(pos_event - n_shift, n_shift)
    k = np.arange(owner.size) - np.repeat(np.cumsum(n_shift) - n_shift, n_shift)
    remainder = gaps[owner] - MAX_SHIFT_STEPS * (n_shift[owner] - 1)
    vals = np.where(k == n_shift[owner] - 1, remainder, MAX_SHIFT_STEPS)
    out[first + k] = TIME_SHIFT + vals - 1
    return out.astype(np.int16)


# ------------------------------------------------------------------------------ controls
def _signal_positions(ev: np.ndarray) -> np.ndarray:
    """For each event, the index whose value it takes: Magenta recomputes a control only at the
    first event and after a time shift, and repeats the previous value otherwise."""
    n = ev.size
    recompute = np.ones(n, dtype=bool)
    if n > 1:
        recompute[1:] = is_time_shift(ev[:-1])
    idx = np.where(recompute, np.arange(n), 0)
    return np.maximum.accumulate(idx) if n else idx


def note_density(events: np.ndarray, window_seconds: float = DENSITY_WINDOW_SECONDS
                 ) -> np.ndarray:
    """Notes per second in the window starting at each event (note_seq's NoteDensity signal)."""
    ev = np.asarray(events, dtype=np.int64)
    n = ev.size
    if n == 0:
        return np.zeros(0)
    window = int(round(window_seconds * STEPS_PER_SECOND))
    cum = np.concatenate([[0], np.cumsum(shift_steps(ev))])  # steps before event j
    ons = np.concatenate([[0], np.cumsum(ev < NOTE_OFF)])
    idx = np.arange(n)
    jmax = np.searchsorted(cum[:n], cum[:n] + window, side="left")
    jmax = np.maximum(jmax, idx)
    count = ons[jmax] - ons[idx]
    actual = np.minimum(cum[n] - cum[:n], window)
    density = np.where(actual > 0, count * STEPS_PER_SECOND / np.maximum(actual, 1), 0.0)
    return density[_signal_positions(ev)]


def pitch_histogram(events: np.ndarray, window_seconds: float = HISTOGRAM_WINDOW_SECONDS,
                    prior: float = HISTOGRAM_PRIOR) -> np.ndarray:
    """[n, 12] pitch-class weights (seconds sounding, plus the prior) in the window starting at
    each event (note_seq's PitchHistogram signal, before normalisation)."""
    ev = np.asarray(events, dtype=np.int64)
    n = ev.size
    if n == 0:
        return np.zeros((0, NOTES_PER_OCTAVE))
    window = int(round(window_seconds * STEPS_PER_SECOND))
    shifts = shift_steps(ev)
    cum = np.concatenate([[0], np.cumsum(shifts)])
    # Set semantics per pitch: state after each event = last on/off of that pitch so far.
    is_on, is_off = ev < NOTE_OFF, (ev >= NOTE_OFF) & (ev < TIME_SHIFT)
    pitch = np.where(is_on, ev, ev - NOTE_OFF)
    state = np.zeros((n, 128), dtype=np.int8)  # +1 on, -1 off, 0 nothing at that event
    rows = np.nonzero(is_on | is_off)[0]
    state[rows, pitch[rows]] = np.where(is_on[rows], 1, -1)
    last = np.where(state != 0, np.arange(n)[:, None], -1)
    last = np.maximum.accumulate(last, axis=0)
    active = np.take_along_axis(state, np.maximum(last, 0), axis=0) == 1
    active &= last >= 0  # [n, 128]: sounding after event j (so during a shift at j)
    counts = np.zeros((n, NOTES_PER_OCTAVE))
    for pc in range(NOTES_PER_OCTAVE):
        counts[:, pc] = active[:, pc::NOTES_PER_OCTAVE].sum(axis=1)
    weighted = counts * (shifts / STEPS_PER_SECOND)[:, None]
    prefix = np.concatenate([np.zeros((1, NOTES_PER_OCTAVE)), np.cumsum(weighted, axis=0)])
    idx = np.arange(n)
    jmax = np.maximum(np.searchsorted(cum[:n], cum[:n] + window, side="left"), idx)
    hist = prior + prefix[jmax] - prefix[idx]
    return hist[_signal_positions(ev)]


def density_one_hot(density: np.ndarray | float) -> np.ndarray:
    d = np.atleast_1d(np.asarray(density, dtype=np.float64))
    bins = np.searchsorted(np.asarray(DENSITY_BIN_RANGES), d, side="right")
    return np.eye(NUM_DENSITY_BINS, dtype=np.float32)[bins]


def normalize_histogram(hist: np.ndarray) -> np.ndarray:
    h = np.atleast_2d(np.asarray(hist, dtype=np.float64))
    total = h.sum(axis=1, keepdims=True)
    out = np.where(total > 0, h / np.where(total > 0, total, 1), 1.0 / NOTES_PER_OCTAVE)
    return out.astype(np.float32)


def controls_from_events(events: np.ndarray, enabled: bool = True) -> np.ndarray:
    """[n, CONTROL_SIZE] control vectors for each event position (flag, density, histogram)."""
    ev = np.asarray(events)
    n = ev.size
    out = np.zeros((n, CONTROL_SIZE), dtype=np.float32)
    if not enabled:
        out[:, 0] = 1.0
        return out
    out[:, 1:1 + NUM_DENSITY_BINS] = density_one_hot(note_density(ev))
    out[:, 1 + NUM_DENSITY_BINS:] = normalize_histogram(pitch_histogram(ev))
    return out


def control_vector(density: float | None = None,
                   histogram: list[float] | np.ndarray | str | None = None) -> np.ndarray:
    """One control vector from user settings; both None switches conditioning off.

    When only one of them is given, the other takes Magenta's default (density 0 is not a
    useful default, so it becomes the density bin of 4 notes per second; the histogram a flat
    one).
    """
    out = np.zeros(CONTROL_SIZE, dtype=np.float32)
    if density is None and histogram is None:
        out[0] = 1.0
        return out
    if density is not None and not (math.isfinite(density) and density >= 0):
        raise ValueError(f"note density must be a number >= 0 notes per second, not {density}")
    out[1:1 + NUM_DENSITY_BINS] = density_one_hot(4.0 if density is None else density)[0]
    if histogram is None:
        hist = np.ones(NOTES_PER_OCTAVE)
    elif isinstance(histogram, str):
        hist = key_histogram(histogram)
    else:
        hist = np.asarray(histogram, dtype=np.float64)
        if (hist.shape != (NOTES_PER_OCTAVE,) or not np.isfinite(hist).all() or (hist < 0).any()
                or hist.sum() <= 0):
            raise ValueError("a pitch histogram is 12 non-negative weights, not all zero")
    out[1 + NUM_DENSITY_BINS:] = normalize_histogram(hist)[0]
    return out


def key_histogram(name: str) -> np.ndarray:
    """A pitch-class histogram for a key name like "C major", "F# minor" or "Bb".

    Scale tones weigh 1 and the tonic 2, like Magenta's example histograms.
    """
    parts = name.replace("_", " ").split()
    if not parts:
        raise ValueError("empty key name")
    tonic_name = parts[0][0].upper() + parts[0][1:]
    mode = parts[1].lower() if len(parts) > 1 else "major"
    try:
        tonic = pitch_class(tonic_name)
    except ValueError:
        raise ValueError(f"unknown key '{name}' (e.g. 'C major', 'F# minor', 'Bb major')"
                         ) from None
    if mode in ("major", "maj", "ionian"):
        degrees = [0, 2, 4, 5, 7, 9, 11]
    elif mode in ("minor", "min", "aeolian"):
        degrees = [0, 2, 3, 5, 7, 8, 10]
    else:
        raise ValueError(f"unknown mode in '{name}' (major or minor)")
    hist = np.zeros(NOTES_PER_OCTAVE)
    for d in degrees:
        hist[(tonic + d) % NOTES_PER_OCTAVE] = 1.0
    hist[tonic] = 2.0
    return hist
