"""Which notes are sounding, and for how long: the note-state input and the note-off rule.

Magenta's PerformanceRNN sees only the last event and must remember in its LSTM state which of
128 pitches are held and since when. A small LSTM forgets, so it both wastes probability on
note-offs of silent pitches and holds notes too long when it generates. Models with
``note_features > 0`` are also given, at each position, the state after the event just read:

* ``sounding[p]`` (128): 1 while pitch ``p`` has more note-ons than note-offs so far;
* ``recency[p]`` (128): ``exp(-age / 1 s)`` of a sounding pitch, ``age`` being the time since
  it began sounding (its count went from 0 to 1); 0 for a silent pitch.

and their output allows a note-off only for a sounding pitch (a note-off of a silent pitch
means nothing: decoding drops it). Both are computed from past events only, so they change
nothing about what is predicted, only how much the network has to remember.

A state carried from one stretch of events to the next is :class:`NoteState`: the count of
each pitch and the step (10 ms) at which it began sounding, relative to the end of what was
read (so <= 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.performance_rnn import encoding as enc

NUM_PITCHES = 128
NOTE_FEATURE_SIZE = 2 * NUM_PITCHES
AGE_SCALE_STEPS = 100.0  # recency = exp(-age / 1 s)
MASKED_LOGIT = -1e9


@dataclass
class NoteState:
    """Sounding notes after some events: counts per pitch, onset steps relative to now (<= 0)."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(NUM_PITCHES, np.int32))
    onsets: np.ndarray = field(default_factory=lambda: np.zeros(NUM_PITCHES, np.float64))

    def copy(self) -> NoteState:
        return NoteState(self.counts.copy(), self.onsets.copy())

    def transposed(self, semitones: int) -> NoteState:
        """The state of the transposed events (pitches pushed outside 0..127 are dropped, as
        :func:`encoding.transpose_events` drops their events)."""
        out = NoteState()
        if semitones >= 0:
            out.counts[semitones:] = self.counts[:NUM_PITCHES - semitones]
            out.onsets[semitones:] = self.onsets[:NUM_PITCHES - semitones]
        else:
            out.counts[:semitones] = self.counts[-semitones:]
            out.onsets[:semitones] = self.onsets[-semitones:]
        return out

    def stretched(self, factor: float) -> NoteState:
        return NoteState(self.counts.copy(), self.onsets * factor)


def _scan(events: np.ndarray, state: NoteState | None
          ) -> tuple[np.ndarray, list[tuple[int, int, int, float]], list[int], dict[int, tuple]]:
    """Clock after each event, the closed sounding spans (pitch, first, end, onset step), the
    final counts and the spans still open."""
    ev = np.asarray(events, dtype=np.int64)
    clock = np.cumsum(enc.shift_steps(ev)).astype(np.float64)
    counts = [0] * NUM_PITCHES if state is None else [int(c) for c in state.counts]
    open_spans: dict[int, tuple[int, float]] = {}
    if state is not None:
        for p in np.nonzero(state.counts > 0)[0].tolist():
            open_spans[p] = (0, float(state.onsets[p]))
    spans: list[tuple[int, int, int, float]] = []
    for t, e in enumerate(ev.tolist()):
        if e < enc.NOTE_OFF:
            if counts[e] == 0:
                open_spans[e] = (t, float(clock[t]))
            counts[e] += 1
        elif e < enc.TIME_SHIFT:
            p = e - enc.NOTE_OFF
            if counts[p] > 0:
                counts[p] -= 1
                if counts[p] == 0:
                    first, onset = open_spans.pop(p)
                    spans.append((p, first, t, onset))
    return clock, spans, counts, open_spans


def note_features(events: np.ndarray, state: NoteState | None = None
                  ) -> tuple[np.ndarray, NoteState]:
    """[T, 256] note-state features after each of ``events`` (read from ``state``, default
    silence) and the state after the last one."""
    ev = np.asarray(events, dtype=np.int64)
    clock, spans, counts, open_spans = _scan(ev, state)
    n = ev.size
    feats = np.zeros((n, NOTE_FEATURE_SIZE), np.float32)
    end_clock = float(clock[-1]) if n else 0.0
    final = NoteState()
    for p, (first, onset) in open_spans.items():
        spans.append((p, first, n, onset))
        final.counts[p] = counts[p]
        final.onsets[p] = onset - end_clock
    for p, first, end, onset in spans:
        if end > first:
            feats[first:end, p] = 1.0
            feats[first:end, NUM_PITCHES + p] = np.exp((onset - clock[first:end])
                                                       / AGE_SCALE_STEPS)
    return feats, final


def advance(events: np.ndarray, state: NoteState | None = None) -> NoteState:
    """The state after ``events`` (read from ``state``), without the per-position features."""
    ev = np.asarray(events, dtype=np.int64)
    clock, _, counts, open_spans = _scan(ev, state)
    end_clock = float(clock[-1]) if ev.size else 0.0
    final = NoteState()
    for p, (_, onset) in open_spans.items():
        final.counts[p] = counts[p]
        final.onsets[p] = onset - end_clock
    return final


def checkpoints(events: np.ndarray, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Note states before events 0, every, 2*every, ...: counts [K, 128] int16 and onsets
    [K, 128] float32 (relative to that position), for starting windows anywhere in a file."""
    ev = np.asarray(events, dtype=np.int64)
    k = (ev.size + every - 1) // every
    counts = np.zeros((max(k, 1), NUM_PITCHES), np.int16)
    onsets = np.zeros((max(k, 1), NUM_PITCHES), np.float32)
    state = NoteState()
    for i in range(1, k):
        state = advance(ev[(i - 1) * every:i * every], state)
        counts[i] = state.counts
        onsets[i] = state.onsets
    return counts, onsets


def mask_note_offs(logits: np.ndarray, sounding: np.ndarray) -> np.ndarray:
    """``logits`` [..., 388] with note-offs of silent pitches (``sounding`` [..., 128] false)
    set to :data:`MASKED_LOGIT`, in place; returns ``logits``."""
    off = logits[..., enc.NOTE_OFF:enc.TIME_SHIFT]
    off[...] = np.where(sounding, off, MASKED_LOGIT)
    return logits


class NoteTracker:
    """The note state of a batch of generated rows, one event per row per step.

    Kept as a pair of arrays so that the engines' state lists can tile, select and copy it like
    an LSTM's (h, c): ``onsets`` [B, 128] (the step each sounding pitch began, relative to now;
    0 for a silent pitch, as in :class:`NoteState`) and ``counts`` [B, 128].
    """

    @staticmethod
    def from_state(state: NoteState, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
        counts = np.repeat(state.counts.astype(np.int32)[None], batch, axis=0)
        onsets = np.repeat(np.where(state.counts > 0, state.onsets, 0.0)[None], batch, axis=0)
        return onsets.astype(np.float64), counts

    @staticmethod
    def to_state(pair: tuple[np.ndarray, np.ndarray], row: int = 0) -> NoteState:
        onsets, counts = (np.asarray(a) for a in pair)
        return NoteState(counts[row].astype(np.int32).copy(),
                         onsets[row].astype(np.float64).copy())

    @staticmethod
    def update(pair: tuple[np.ndarray, np.ndarray], events: np.ndarray) -> np.ndarray:
        """Read one event per row (in place) and return the features [B, 256] after it."""
        onsets, counts = pair
        ev = np.asarray(events, dtype=np.int64).reshape(-1)
        rows = np.arange(ev.size)
        onsets -= enc.shift_steps(ev)[:, None]
        on = ev < enc.NOTE_OFF
        if on.any():
            r, p = rows[on], ev[on]
            starts = counts[r, p] == 0
            onsets[r[starts], p[starts]] = 0.0
            counts[r, p] += 1
        off = (ev >= enc.NOTE_OFF) & (ev < enc.TIME_SHIFT)
        if off.any():
            r, p = rows[off], ev[off] - enc.NOTE_OFF
            counts[r, p] = np.maximum(counts[r, p] - 1, 0)
        onsets[counts == 0] = 0.0
        return NoteTracker.features(pair)

    @staticmethod
    def features(pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        onsets, counts = pair
        sounding = counts > 0
        out = np.zeros((counts.shape[0], NOTE_FEATURE_SIZE), np.float32)
        out[:, :NUM_PITCHES] = sounding
        out[:, NUM_PITCHES:] = np.where(sounding, np.exp(onsets / AGE_SCALE_STEPS), 0.0)
        return out


def network_inputs(events: np.ndarray, controls: np.ndarray, notes: np.ndarray | None,
                   uses_notes: bool) -> list[np.ndarray]:
    """The inputs of a performance network for [B, T] events: events, controls and, for a
    network that reads it, the note state (computed from ``events``, from silence, when
    ``notes`` is not given)."""
    ev = np.asarray(events, np.int32)
    out = [ev, np.asarray(controls, np.float32)]
    if uses_notes:
        if notes is None:
            notes = np.stack([note_features(row)[0] for row in ev])
        out.append(np.asarray(notes, np.float32))
    return out
