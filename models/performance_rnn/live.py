"""PerformanceRNN for live playing: the player's notes in as they are played, the answer out one
event at a time, as timed note-ons and note-offs.

:class:`Continuer` primes on a whole sequence and returns finished continuations; live playing
needs (a) feeding the player's notes as they come (:class:`LiveEncoder` turns them into
performance events, :class:`StreamingContinuer` steps the LSTM on each at once, so the state is
warm when the player pauses) and (b) sampling the answer one event at a time so that it can
start before it is complete (:meth:`StreamingContinuer.answer` gives an :class:`AnswerStream`).

The answer is decoded by :class:`StreamDecoder`, by the batch decoder's rules
(:func:`models.performance_rnn.generate.decode`: a note-off closes the oldest sounding note of
its pitch and means nothing for a silent one, zero-length notes are dropped, a note is cut at
:data:`~models.performance_rnn.generate.MAX_NOTE_SECONDS`, velocity events set the following
note-ons' velocity, the answer starts at the velocity the phrase left), so a streamed answer
has the notes the batch decoder would give its events. It uses the same step engines and
:func:`~models.performance_rnn.generate.sample` as :class:`Continuer`. Conditioning follows a
reference when one is given (:func:`models.performance_rnn.follow.follow_control`: in the duet,
the player's recent phrases), and is off otherwise.

No threads and no clock here: times are seconds from the start of a phrase (the encoder) or of
the answer (the decoder); :mod:`app.duet` runs this on its model thread and schedules the notes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.performance_rnn import encoding as enc
from models.performance_rnn.follow import Following, follow_control
from models.performance_rnn.generate import (
    EMPTY_PRIMER,
    MAX_NOTE_SECONDS,
    conditioned_release,
    make_engine,
    sample,
)
from models.sequence import NoteSequence


@dataclass(frozen=True)
class NoteEvent:
    """A note-on (``velocity`` > 0) or note-off (``velocity`` 0) of the answer, ``time`` seconds
    from its start; ``note`` numbers the answer's notes and pairs a note-off with its note-on."""

    time: float
    pitch: int
    velocity: int
    note: int

    @property
    def is_on(self) -> bool:
        return self.velocity > 0


class _Note:
    __slots__ = ("begun", "ended", "id", "pitch", "velocity")

    def __init__(self, note_id: int, pitch: int, begun: int, velocity: int) -> None:
        self.id = note_id
        self.pitch = pitch
        self.begun = begun
        self.velocity = velocity
        self.ended = False


class StreamDecoder:
    """Performance events to timed note-ons and note-offs, one event at a time.

    The rules are the batch decoder's (``enc.decode(events, velocity, max_note_duration=5)``):

    * a note-on begins a note of its pitch at the current step with the current velocity; it
      is sent when time moves on, since a note that ends in the step it began is dropped;
    * a note-off ends the oldest begun note of its pitch (none: it is ignored);
    * a note that has sounded ``max_note_seconds`` is ended then (its own note-off, when it
      comes, only closes it);
    * a velocity event sets the velocity of the note-ons after it;
    * a time shift moves the clock on. With ``target_steps`` the last shift is shortened to
      reach it exactly and the answer ends there (as the batch generator trims its events); with
      ``lead_steps`` the silence before the first note-on counts at most that long (the live
      duet starts its answers at once);
    * at the end (:meth:`finish`) the notes still sounding end at the final step.

    So the notes that :meth:`push` and :meth:`finish` give for some events are the notes the
    batch decoder gives for them.
    """

    def __init__(self, velocity: int = 64, target_steps: int | None = None,
                 lead_steps: int | None = None,
                 max_note_seconds: float = MAX_NOTE_SECONDS) -> None:
        self.velocity = int(velocity)
        self.target = target_steps
        self.lead = lead_steps
        self.max_note_seconds = float(max_note_seconds)
        self._max_steps = int(round(max_note_seconds * enc.STEPS_PER_SECOND))
        self.step = 0
        self.done = False
        self._count = 0
        self._open: dict[int, list[_Note]] = {}  # pitch -> begun, not yet closed (oldest first)
        self._pending: list[_Note] = []  # begun at this step, not sent yet
        self._sounding: list[_Note] = []  # sent, not ended (in order of their start)
        self._begun = False  # a note-on was read: the leading silence is over

    @property
    def time(self) -> float:
        """The clock: seconds from the answer's start."""
        return self.step / enc.STEPS_PER_SECOND

    @staticmethod
    def _seconds(step: int) -> float:
        return step * (1.0 / enc.STEPS_PER_SECOND)  # as the batch decoder computes times

    def _on(self, note: _Note) -> NoteEvent:
        return NoteEvent(self._seconds(note.begun), note.pitch, note.velocity, note.id)

    def _off(self, note: _Note, seconds: float) -> NoteEvent:
        note.ended = True
        return NoteEvent(seconds, note.pitch, 0, note.id)

    def push(self, event: int) -> list[NoteEvent]:
        """Read one event; the note-ons and note-offs it makes due, in time order."""
        if self.done:
            return []
        ev = int(event)
        out: list[NoteEvent] = []
        if ev < enc.NOTE_OFF:
            note = _Note(self._count, ev, self.step, self.velocity)
            self._count += 1
            self._open.setdefault(ev, []).append(note)
            self._pending.append(note)
            self._begun = True
        elif ev < enc.TIME_SHIFT:
            begun = self._open.get(ev - enc.NOTE_OFF)
            if begun:
                note = begun.pop(0)
                if note.begun == self.step:  # zero length: dropped, never sent
                    self._pending.remove(note)
                elif not note.ended:
                    self._sounding.remove(note)
                    out.append(self._off(note, self._seconds(self.step)))
        elif ev < enc.VELOCITY:
            steps = ev - enc.TIME_SHIFT + 1
            if self.lead is not None and not self._begun:
                steps = min(steps, self.lead)
                self.lead -= steps
            if self.target is not None:
                steps = min(steps, self.target - self.step)
            if steps > 0:
                out += self._advance(self.step + steps)
            if self.target is not None and self.step >= self.target:
                out += self.finish()
        elif ev < enc.NUM_CLASSES:
            self.velocity = enc.bin_to_velocity(ev - enc.VELOCITY + 1)
        else:
            raise ValueError(f"event {ev} is outside the vocabulary")
        return out

    def _advance(self, step: int) -> list[NoteEvent]:
        out = [self._on(n) for n in self._pending]
        self._sounding += self._pending
        self._pending = []
        capped = [n for n in self._sounding if n.begun + self._max_steps <= step]
        for n in capped:
            out.append(self._off(n, self._seconds(n.begun) + self.max_note_seconds))
        if capped:
            self._sounding = [n for n in self._sounding if not n.ended]
        self.step = step
        return out

    def finish(self) -> list[NoteEvent]:
        """End the answer here: note-offs for what sounds (notes begun at this very step are
        dropped, as zero-length notes)."""
        if self.done:
            return []
        self.done = True
        for note in self._pending:
            self._open[note.pitch].remove(note)
        self._pending = []
        out = [self._off(n, self._seconds(self.step)) for n in self._sounding]
        self._sounding = []
        return out


class LiveEncoder:
    """The player's notes to performance events as they arrive, like :func:`encoding.encode`
    would encode the phrase: 10 ms steps from the phrase's start ``t0``, a velocity event when
    the bin changes, notes held by the sustain pedal released when it comes up (like
    ``NoteSequence.apply_sustain``)."""

    def __init__(self, t0: float = 0.0) -> None:
        self.t0 = t0
        self.step = 0
        self.velocity_bin = 0
        self.pedal = False
        self.deferred: set[int] = set()
        self.down: set[int] = set()  # keys held

    def _shifts(self, t: float) -> list[int]:
        target = enc.quantize(max(0.0, t - self.t0))
        out = []
        while target > self.step:
            n = min(enc.MAX_SHIFT_STEPS, target - self.step)
            out.append(enc.TIME_SHIFT + n - 1)
            self.step += n
        return out

    def note_on(self, pitch: int, velocity: int, t: float) -> list[int]:
        out = self._shifts(t)
        if pitch in self.deferred:  # re-struck under the pedal: the old one ends here
            self.deferred.discard(pitch)
            out.append(enc.NOTE_OFF + pitch)
        vbin = enc.velocity_to_bin(max(1, velocity))
        if vbin != self.velocity_bin:
            self.velocity_bin = vbin
            out.append(enc.VELOCITY + vbin - 1)
        out.append(enc.NOTE_ON + pitch)
        self.down.add(pitch)
        return out

    def note_off(self, pitch: int, t: float) -> list[int]:
        if pitch not in self.down:
            return []
        self.down.discard(pitch)
        if self.pedal:
            self.deferred.add(pitch)
            return []
        return self._shifts(t) + [enc.NOTE_OFF + pitch]

    def sustain(self, value: int, t: float) -> list[int]:
        down = value >= 64
        if down == self.pedal:
            return []
        self.pedal = down
        if down or not self.deferred:
            return []
        out = self._shifts(t) + [enc.NOTE_OFF + p for p in sorted(self.deferred)]
        self.deferred.clear()
        return out


class AnswerStream:
    """An answer being sampled: :meth:`next` samples one event and returns the note-ons and
    note-offs it makes due (:class:`StreamDecoder`); :attr:`done` once it has its length (or
    its event budget is spent). Made by :meth:`StreamingContinuer.answer`."""

    def __init__(self, engine: Any, bias0: Any, state: Any, logits: np.ndarray,
                 decoder: StreamDecoder, rng: np.random.Generator, temperature: float,
                 top_p: float | None, limit: int, release: float = 0.0) -> None:
        self._engine = engine
        self._bias0 = bias0
        self._state = state
        self._logits = logits
        self._last: np.ndarray | None = None
        self.decoder = decoder
        self.rng = rng
        self.temperature = temperature
        self.top_p = top_p
        self.limit = limit
        self.release = release
        self.events: list[int] = []

    @property
    def done(self) -> bool:
        return self.decoder.done

    @property
    def time(self) -> float:
        """How far the answer has got: seconds from its start."""
        return self.decoder.time

    def next(self) -> list[NoteEvent]:
        """Sample the next event (the state steps over the previous one first)."""
        if self.decoder.done:
            return []
        if self._last is not None:
            self._logits = np.array(self._engine.step(self._last, self._state, self._bias0),
                                    np.float32)
        ev, _ = sample(self._logits, self.rng, self.temperature, self.top_p, self.release)
        self._last = ev
        self.events.append(int(ev[0]))
        out = self.decoder.push(int(ev[0]))
        if len(self.events) >= self.limit:
            out += self.decoder.finish()
        return out

    def finish(self) -> list[NoteEvent]:
        """Stop here: note-offs for what sounds."""
        return self.decoder.finish()


class StreamingContinuer:
    """The live session: the player's notes fed as they come, answers sampled from the state
    they leave.

    >>> stream = model.stream()                  # the registry's PerformanceRNN
    >>> stream.start_phrase(t0)                  # a new phrase: the state after an empty primer
    >>> stream.note_on(60, 80, t); stream.note_off(60, t2); stream.sustain(127, t3)
    >>> answer = stream.answer(4.0, temperature=1.0, rng=rng)
    >>> while not answer.done: schedule(answer.next())   # list[NoteEvent]
    """

    def __init__(self, model: Any, engine: str = "numpy",
                 following: Following = Following()) -> None:
        self.engine = make_engine(model, engine)
        self.following = following
        self._off = enc.control_vector(None, None)
        self._off_bias, self._empty = self._conditioned(self._off)
        self.control: np.ndarray = self._off  # the phrase's conditioning
        self.bias0: Any = self._off_bias
        self.state: Any = None
        self.logits: np.ndarray = self._empty[1]
        self.encoder = LiveEncoder(0.0)
        self.velocity = 64
        self.reset()

    def _copy(self, state: Any) -> Any:
        """A copy of a (one-row) state, made by its engine: LSTM states, note trackers and a
        Transformer's key/value cache alike."""
        return self.engine.select(state, np.zeros(1, np.int64))

    def _conditioned(self, control: np.ndarray) -> tuple[Any, tuple[Any, np.ndarray]]:
        """The first layer's bias for ``control`` and the state after an empty primer under it."""
        bias = self.engine.first_bias(control[None])
        controls = np.repeat(control[None], EMPTY_PRIMER.size, axis=0)
        state, logits = self.engine.prime(EMPTY_PRIMER, controls)
        return bias, (self._copy(state), np.array(logits, np.float32))

    # ------------------------------------------------------------------ the player
    def reset(self, t0: float = 0.0, reference: NoteSequence | None = None) -> None:
        """Back to the state after an empty primer (a fresh phrase starting at ``t0``),
        conditioned on ``reference`` (see :meth:`start_phrase`)."""
        control = follow_control(reference, self.following)
        self.control = control
        if np.array_equal(control, self._off):
            self.bias0, empty = self._off_bias, self._empty
        else:
            self.bias0, empty = self._conditioned(control)
        self.state = self._copy(empty[0])
        self.logits = empty[1].copy()
        self.encoder = LiveEncoder(t0)
        self.velocity = 64

    def start_phrase(self, t0: float, reference: NoteSequence | None = None) -> None:
        """A new phrase starts at ``t0`` (seconds, the clock of the times passed in).
        ``reference``: what the player played before it, whose note density and pitch classes
        condition the phrase's state (None: conditioning off)."""
        self.reset(t0, reference)

    def note_on(self, pitch: int, velocity: int, t: float) -> None:
        self.feed(self.encoder.note_on(pitch, velocity, t))

    def note_off(self, pitch: int, t: float) -> None:
        self.feed(self.encoder.note_off(pitch, t))

    def sustain(self, value: int, t: float) -> None:
        """The sustain pedal (CC 64) moved to ``value``."""
        self.feed(self.encoder.sustain(value, t))

    @property
    def keys_down(self) -> frozenset[int]:
        """The keys the player holds in this phrase."""
        return frozenset(self.encoder.down)

    def feed(self, events: Iterable[int]) -> None:
        """Advance the state over performance events (what the player played, encoded)."""
        for ev in events:
            ev = int(ev)
            if ev >= enc.VELOCITY:
                self.velocity = enc.bin_to_velocity(ev - enc.VELOCITY + 1)
            self.logits = np.array(self.engine.step(np.asarray([ev]), self.state, self.bias0),
                                   np.float32)

    def fork(self) -> tuple[Any, np.ndarray]:
        """A copy of (state, logits) to generate from while the phrase state moves on."""
        return self._copy(self.state), self.logits.copy()

    # ------------------------------------------------------------------ the answer
    def answer(self, seconds: float, temperature: float = 1.0, top_p: float | None = None,
               rng: np.random.Generator | int | None = None, lead_seconds: float | None = None,
               max_events: int | None = None, reference: NoteSequence | None = None
               ) -> AnswerStream:
        """An answer of ``seconds`` from the state the phrase left (the phrase goes on
        independently). ``lead_seconds``: the longest silence kept before its first note
        (None: all of it, as the batch generator). ``max_events``: the event budget (default
        as the batch generator's, four per 10 ms step and at least 64). ``reference``: the
        playing to follow (its density and pitch classes condition the answer; None: the
        phrase's conditioning)."""
        control = self.control if reference is None else follow_control(reference,
                                                                         self.following)
        bias = self.bias0 if reference is None else self.engine.first_bias(control[None])
        target = int(round(seconds * enc.STEPS_PER_SECOND))
        lead = None if lead_seconds is None else int(round(lead_seconds * enc.STEPS_PER_SECOND))
        decoder = StreamDecoder(self.velocity, target, lead)
        state, logits = self.fork()
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        return AnswerStream(self.engine, bias, state, logits, decoder, generator,
                            temperature, top_p, max_events or max(64, target * 4),
                            conditioned_release(control, self.following))
