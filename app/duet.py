"""Call and response with PerformanceRNN: the player plays a phrase, pauses, the model answers.

No Qt here: ``cadenza duet`` (headless) and the live panel share this core.

Threads:

* the MIDI callback thread only calls :meth:`Duet.feed`, which stamps the message with
  ``perf_counter()`` and puts it on a queue;
* one *model thread* runs :meth:`Duet.run` (headless: :meth:`Duet.start` makes it; in the app it
  is the worker's thread, as a long job). It owns the model's live stream
  (:class:`models.performance_rnn.live.StreamingContinuer`): it hands it the player's notes as
  they arrive (the stream encodes them and steps the LSTM at once, so the state is warm when the
  pause comes), detects the pause (``silence_ms`` without notes and no key down) or the end of
  the longest phrase, and then pulls the answer from the stream event by event, scheduling each
  note-on and note-off the stream decodes (by the batch generator's rules: the 5 s cap, offs
  only for sounding notes, the phrase's velocity) as soon as it is sampled: the first note goes
  out while the rest is still being generated. Leading silence before the answer's first note
  is dropped (``lead_seconds`` caps it), so the answer starts at once;
* the :class:`app.transport.Scheduler` thread sends the answer's messages on time.

The answers follow the player (``follow``, on by default): the note density and pitch classes of
what was played in the last :data:`FOLLOW_SECONDS` (the latest bars weighing most) condition
the model, so an answer stays in the player's key and near their pace.

When the player starts again the answer is cut (note-offs for what sounds), unless ``layer``.
This module keeps the threads, the pause detection, the MIDI scheduling and the rounds; the
encoding, sampling and decoding are the model's (``models.performance_rnn.live``).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from app.transport import Scheduler, Sink, normal_thread, percentile, realtime_thread
from models.errors import CadenzaError
from models.sequence import SUSTAIN_CC, ControlChange, Note, NoteSequence

if TYPE_CHECKING:
    from models.performance_rnn.live import AnswerStream, NoteEvent, StreamingContinuer

log = logging.getLogger(__name__)

LOOKAHEAD_SECONDS = 0.5  # generate at most this far ahead of the answer's playback
FOLLOW_SECONDS = 30.0  # the answers follow the player's notes of this long before the pause
GRID_MARGIN = 0.004  # an answer on the beat takes the next beat at least this far away
ANSWER_ON = ("pause", "beat", "bar")
_LOST = "lost"


@dataclass
class DuetSettings:
    silence_ms: float = 600.0  # a pause this long (no key down) ends the call
    seconds: float = 4.0  # answer length
    temperature: float = 1.0
    max_phrase_seconds: float = 8.0  # the call ends after this long even without a pause
    layer: bool = False  # keep answering while the player plays again
    lead_seconds: float = 0.0  # longest silence kept before the answer's first note
    channel: int = 0  # MIDI channel of the answer
    top_p: float | None = None
    seed: int | None = None
    follow: bool = True  # condition the answers on the player's recent phrases
    answer_on: str = "pause"  # "beat" or "bar": the first note waits for the shared grid
    quantize: float = 0.0  # 0 (off) .. 1: how far each answer note moves to the shared grid
    quantize_every: float = 0.25  # the grid's step in beats (0.25: sixteenth notes)

    def check(self) -> DuetSettings:
        if self.answer_on not in ANSWER_ON:
            raise CadenzaError(f"answer on must be one of {', '.join(ANSWER_ON)}")
        if not 0.0 <= self.quantize <= 1.0:  # (NaN fails too)
            raise CadenzaError("the quantize strength must be 0..1 (0: off, 1: on the grid)")
        if not 1 / 32 <= self.quantize_every <= 4.0:
            raise CadenzaError("the quantize grid must be 1/32..4 beats")
        if not 50 <= self.silence_ms <= 10000:
            raise CadenzaError("the silence before an answer must be 50..10000 ms")
        if not 0.1 <= self.seconds <= 120:
            raise CadenzaError("the answer length must be 0.1..120 seconds")
        if not 0 < self.temperature <= 5:
            raise CadenzaError("the temperature must be in (0, 5]")
        if not 0.2 <= self.max_phrase_seconds <= 600:
            raise CadenzaError("the longest phrase must be 0.2..600 seconds")
        if not 0 <= self.channel <= 15:
            raise CadenzaError("the answer's MIDI channel must be 0..15")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise CadenzaError("top-p must be in (0, 1]")
        return self


@dataclass
class Round:
    """One call and its answer. Times are ``perf_counter`` seconds."""

    index: int
    reason: str  # "pause" or "max-phrase"
    call: NoteSequence
    call_started: float
    detected_at: float
    answer: NoteSequence = field(default_factory=NoteSequence)
    first_note_at: float | None = None
    finished_at: float | None = None
    interrupted: bool = False
    notes_sent: int = 0
    events_sampled: int = 0
    followed: NoteSequence | None = None  # the player's recent notes the answer followed

    @property
    def tag(self) -> str:
        return f"answer-{self.index}"

    @property
    def latency(self) -> float | None:
        """Pause detected -> first answer note sent, seconds."""
        return None if self.first_note_at is None else self.first_note_at - self.detected_at


class _Phrase:
    """The call being played: its notes (for the round) and when it began and last moved."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.last_event = t0
        self.notes: list[Note] = []
        self.open: dict[int, list[Note]] = {}
        self.ccs: list[ControlChange] = []

    def sequence(self, end: float) -> NoteSequence:
        notes = [Note(n.pitch, n.velocity, n.start, n.end if n.end >= 0 else end - self.t0)
                 for n in self.notes]
        return NoteSequence(notes=sorted(notes, key=lambda n: (n.start, n.pitch)),
                            control_changes=list(self.ccs))


class _Answer:
    """An answer being played: the model's stream and the MIDI notes scheduled from it."""

    def __init__(self, rnd: Round, stream: AnswerStream) -> None:
        self.round = rnd
        self.stream = stream
        self.t0: float | None = None  # perf_counter time of the answer's time 0
        # pitch -> (the model's note number, due time of its note-on, the played Note, how far
        # quantizing moved the note-on: its note-off moves as far, so the note keeps its length)
        self.sounding: dict[int, tuple[int, float, Note, float]] = {}
        self.last_off: dict[int, float] = {}  # pitch -> due time of its last note-off
        self.notes: list[Note] = []

    @property
    def generating(self) -> bool:
        return not self.stream.done

    def due(self) -> float:
        """When the answer's clock (how far it has been sampled) is played."""
        assert self.t0 is not None
        return self.t0 + self.stream.time


class Duet:
    """The duet. ``sinks`` get the answer (MIDI outputs and/or a LiveSynth).

    Listeners (all optional, called on the model or scheduler thread; keep them short):
    ``on_round(round, event)`` with event ``"call"`` (pause detected), ``"first-note"``,
    ``"done"`` or ``"interrupted"``; ``on_answer_message(message, sent_at)`` for every answer
    message sent; ``on_error(exc)`` when the model thread fails.
    """

    def __init__(self, sinks: Sequence[Sink], settings: DuetSettings | None = None,
                 on_round: Callable[[Round, str], None] | None = None,
                 on_answer_message: Callable[[list[int], float], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 history: int = 200,
                 grid: Callable[[float, float], float] | None = None) -> None:
        self.sinks = list(sinks)
        # grid(t, beats): the perf_counter time of the next multiple of ``beats`` beats at or
        # after t on the session's grid (app.sync.SyncSession.next_time); with answer_on
        # "beat" or "bar" the answer's first note goes there
        self.grid = grid
        self.settings = (settings or DuetSettings()).check()
        self.on_round = on_round
        self.on_answer_message = on_answer_message
        self.on_error = on_error
        self.rounds: collections.deque[Round] = collections.deque(maxlen=history)
        self.latencies: collections.deque[float] = collections.deque(maxlen=10000)
        self.rounds_done = 0
        self.error: BaseException | None = None
        self.scheduler: Scheduler | None = None
        self._queue: queue.Queue[tuple[float, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._by_tag: dict[str, Round] = {}
        self._next_index = 1
        self._heard: collections.deque[Note] = collections.deque(maxlen=4096)  # model thread

    # ------------------------------------------------------------------ any thread
    def feed(self, message: list[int], t: float | None = None) -> None:
        """A message from the player's keyboard; call from the MIDI callback (cheap)."""
        self._queue.put((time.perf_counter() if t is None else t, message))

    def input_lost(self) -> None:
        """The input port went away: keys it left down count as released."""
        self._queue.put((time.perf_counter(), _LOST))

    def update(self, **changes: Any) -> None:
        """Change settings while running (silence_ms, seconds, temperature, layer, ...)."""
        from dataclasses import replace

        self.settings = replace(self.settings, **changes).check()

    @property
    def running(self) -> bool:
        return self._running.is_set()

    def wait_running(self, timeout: float = 30.0) -> bool:
        return self._running.wait(timeout)

    def start(self, model: Any, engine: str = "numpy") -> None:
        """Run the model thread (headless use)."""
        if self._thread is not None:
            raise CadenzaError("the duet is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._thread_main, args=(model, engine),
                                        name="cadenza-duet-model", daemon=True)
        self._thread.start()

    def _thread_main(self, model: Any, engine: str) -> None:
        try:
            self.run(model, engine=engine)
        except Exception as exc:  # noqa: BLE001 - reported through on_error / .error
            log.exception("duet model thread")
            self.error = exc
            if self.on_error is not None:
                self.on_error(exc)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and answering: note-offs for what sounds, panic on every sink."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def latency_stats(self) -> dict[str, float]:
        values = list(self.latencies)
        return {"rounds": float(len(values)), "p50_ms": 1000 * percentile(values, 50),
                "p95_ms": 1000 * percentile(values, 95),
                "max_ms": 1000 * max(values) if values else float("nan")}

    # ------------------------------------------------------------------ model thread
    def run(self, model: Any, should_stop: Callable[[], bool] | None = None,
            engine: str = "numpy") -> None:
        """The model thread's loop, until :meth:`stop` (or ``should_stop()``). ``model`` is the
        registry's PerformanceRNN (``ModelRegistry().load(name, "performance")``)."""
        stream = model.stream(engine)
        self.scheduler = Scheduler(self.sinks, on_sent=self._sent)
        # The answer's first note waits for this thread: on a busy machine it must not queue
        # behind other programs (real-time, below the scheduler's priority; its bursts are
        # short: it generates at most LOOKAHEAD_SECONDS ahead of playback).
        realtime = realtime_thread(10)
        phrase: _Phrase | None = None
        answer: _Answer | None = None
        rng = np.random.default_rng(self.settings.seed)
        self._running.set()
        try:
            while not self._stop.is_set() and not (should_stop and should_stop()):
                s = self.settings
                now = time.perf_counter()
                timeout = 0.1
                if phrase is not None and phrase.notes:
                    deadline = phrase.t0 + s.max_phrase_seconds
                    if not stream.keys_down:
                        deadline = min(deadline, phrase.last_event + s.silence_ms / 1000.0)
                    timeout = min(timeout, deadline - now)
                if answer is not None:
                    if answer.generating:
                        ahead = answer.due() - now if answer.t0 is not None else 0.0
                        timeout = min(timeout, ahead - LOOKAHEAD_SECONDS)
                    else:
                        timeout = min(timeout, 0.02)
                items = self._drain(max(0.0, timeout))
                for t, msg in items:
                    phrase, answer = self._handle(stream, phrase, answer, t, msg)
                now = time.perf_counter()
                if phrase is not None and phrase.notes:
                    s = self.settings
                    reason = ""
                    if now >= phrase.t0 + s.max_phrase_seconds:
                        reason = "max-phrase"
                    elif (not stream.keys_down
                          and now >= phrase.last_event + s.silence_ms / 1000.0):
                        reason = "pause"
                    if reason:
                        if answer is not None:
                            self._cut(answer)
                        answer = self._begin_answer(stream, phrase, now, reason, rng)
                        phrase = None
                if answer is not None:
                    if answer.generating:
                        self._generate(answer)
                    elif self.scheduler.pending(answer.round.tag) == 0:
                        self._finish(answer, "done")
                        answer = None
        finally:
            self._running.clear()
            if answer is not None:
                self._cut(answer)
            self.scheduler.stop()
            if realtime:
                normal_thread()  # the app's worker goes on with other jobs

    def _drain(self, timeout: float) -> list[tuple[float, Any]]:
        items = []
        try:
            items.append(self._queue.get(timeout=timeout) if timeout > 0
                         else self._queue.get_nowait())
            while True:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return items

    def _handle(self, stream: StreamingContinuer, phrase: _Phrase | None,
                answer: _Answer | None, t: float, msg: Any
                ) -> tuple[_Phrase | None, _Answer | None]:
        if msg == _LOST:
            if phrase is not None:
                for pitch in sorted(stream.keys_down):
                    phrase = self._note_off(stream, phrase, pitch, t)
            return phrase, answer
        if not msg or len(msg) < 3:
            return phrase, answer
        status = msg[0] & 0xF0
        if status == 0x90 and msg[2] > 0:
            if answer is not None and not self.settings.layer:
                self._cut(answer)
                answer = None
            if phrase is None:
                stream.start_phrase(t, self._reference(t))
                phrase = _Phrase(t)
            stream.note_on(msg[1], msg[2], t)
            note = Note(msg[1], msg[2], t - phrase.t0, -1.0)
            phrase.notes.append(note)
            phrase.open.setdefault(msg[1], []).append(note)
            phrase.last_event = t
        elif status in (0x80, 0x90):
            if phrase is not None:
                phrase = self._note_off(stream, phrase, msg[1], t)
        elif status == 0xB0 and msg[1] == SUSTAIN_CC and phrase is not None:
            stream.sustain(msg[2], t)
            phrase.ccs.append(ControlChange(t - phrase.t0, SUSTAIN_CC, msg[2]))
        return phrase, answer

    @staticmethod
    def _note_off(stream: StreamingContinuer, phrase: _Phrase, pitch: int, t: float) -> _Phrase:
        stream.note_off(pitch, t)
        pending = phrase.open.get(pitch)
        if pending:
            pending.pop(0).end = max(t - phrase.t0, 0.0)
            phrase.last_event = t
        return phrase

    def _begin_answer(self, stream: StreamingContinuer, phrase: _Phrase, now: float,
                      reason: str, rng: np.random.Generator) -> _Answer:
        s = self.settings
        index = self._next_index
        self._next_index += 1
        rnd = Round(index, reason, phrase.sequence(now), phrase.t0, now)
        self._by_tag[rnd.tag] = rnd
        self.rounds.append(rnd)
        self._heard.extend(Note(n.pitch, n.velocity, phrase.t0 + n.start,
                                phrase.t0 + (n.end if n.end >= 0 else now - phrase.t0))
                           for n in phrase.notes)
        rnd.followed = self._reference(now)
        answer = _Answer(rnd, stream.answer(s.seconds, temperature=s.temperature, top_p=s.top_p,
                                            rng=rng, lead_seconds=s.lead_seconds,
                                            reference=rnd.followed))
        self._notify(rnd, "call")
        return answer

    def _reference(self, now: float) -> NoteSequence | None:
        """The player's notes of the last FOLLOW_SECONDS before ``now`` (None when not
        following): what the answers follow."""
        if not self.settings.follow:
            return None
        origin = now - FOLLOW_SECONDS
        notes = [Note(n.pitch, n.velocity, max(n.start - origin, 0.0), n.end - origin)
                 for n in self._heard if n.end > origin and n.start < now]
        return NoteSequence(notes=notes) if notes else None

    def _generate(self, answer: _Answer) -> None:
        """Sample until the answer is LOOKAHEAD_SECONDS ahead of real time (or complete),
        scheduling each note-on and note-off as the stream decodes it."""
        stream = answer.stream
        while not stream.done:
            if answer.t0 is not None and answer.due() - time.perf_counter() > LOOKAHEAD_SECONDS:
                return
            if not self._queue.empty() and answer.t0 is not None:
                return  # the player plays: handle that first
            for event in stream.next():
                if answer.t0 is None:  # the first note: the answer's time 0 is now
                    answer.t0 = self._answer_start(event.time)
                if event.is_on:
                    self._schedule_on(answer, event)
                else:
                    self._schedule_off(answer, event)
            answer.round.events_sampled = len(stream.events)
        answer.round.answer = NoteSequence(
            notes=sorted(answer.notes, key=lambda n: (n.start, n.pitch)))

    def _answer_start(self, first: float) -> float:
        """The answer's time 0: now, or with ``answer_on`` beat/bar and a grid, such that its
        first note (``first`` s in) lands on the next beat or bar."""
        now = time.perf_counter()
        grid, on = self.grid, self.settings.answer_on
        if grid is None or on == "pause":
            return now
        try:
            at = grid(now + GRID_MARGIN + first, 1.0 if on == "beat" else 4.0)
        except Exception:  # noqa: BLE001 - no grid now (sync stopped): answer at once
            log.exception("duet grid")
            return now
        return max(now, at - first)

    def _schedule_on(self, answer: _Answer, event: NoteEvent) -> None:
        """A note-on of the answer. MIDI has one note per key and channel: a note of a pitch
        that still sounds ends the sounding one (a re-strike), or, begun at the same moment,
        goes on as that one."""
        assert self.scheduler is not None and answer.t0 is not None
        played = answer.t0 + event.time
        due = self._quantized(played, answer.last_off.get(event.pitch, 0.0))
        sounding = answer.sounding.get(event.pitch)
        if sounding is not None:
            _, on_due, note, shift = sounding
            if due <= on_due:
                answer.sounding[event.pitch] = (event.note, on_due, note, shift)
                return
            self._send_off(answer, event.pitch, due)
        ch = self.settings.channel
        self.scheduler.schedule(due, [0x90 | ch, event.pitch, max(1, event.velocity)],
                                answer.round.tag)
        note = Note(event.pitch, event.velocity, due - answer.t0, -1.0)
        answer.notes.append(note)
        answer.sounding[event.pitch] = (event.note, due, note, due - played)

    def _schedule_off(self, answer: _Answer, event: NoteEvent) -> None:
        sounding = answer.sounding.get(event.pitch)
        if sounding is None or sounding[0] != event.note:
            return  # that note was already ended by a re-strike of its key
        assert answer.t0 is not None
        _, on_due, _, shift = sounding
        self._send_off(answer, event.pitch, max(answer.t0 + event.time + shift, on_due))

    def _send_off(self, answer: _Answer, pitch: int, due: float) -> None:
        assert self.scheduler is not None and answer.t0 is not None
        _, on_due, note, _ = answer.sounding.pop(pitch)
        self.scheduler.schedule(due, [0x80 | self.settings.channel, pitch, 0], answer.round.tag)
        answer.last_off[pitch] = due
        note.end = due - answer.t0

    def _quantized(self, t: float, not_before: float) -> float:
        """A note-on played at ``t`` moved ``quantize`` of the way to the nearest step of the
        shared grid (``quantize_every`` beats apart, at the session's tempo and phase), or to
        the first step it can still make when that one has passed or comes before
        ``not_before`` (its key's last note-off); never into the past. ``t`` itself when
        quantizing is off or there is no grid."""
        strength, grid = self.settings.quantize, self.grid
        if strength <= 0.0 or grid is None:
            return t
        every = self.settings.quantize_every
        try:
            after = grid(t, every)  # the step at or after t
            step = grid(after + 1e-4, every) - after  # the grid's spacing now, in seconds
        except Exception:  # noqa: BLE001 - no grid now (sync stopped): as played
            log.exception("duet grid")
            return t
        if not 1e-3 < step < 60.0:  # nothing runs: the grid gives t back
            return t
        floor = max(not_before, time.perf_counter())
        before = after - step
        moved = t + strength * ((after if after - t <= t - before else before) - t)
        if moved < floor:  # too late for that step: toward the first one it can still make
            moved = t + strength * (grid(floor, every) - t)
        return max(moved, floor)

    def _cut(self, answer: _Answer) -> None:
        """The player plays again (or a new answer starts): stop this answer now."""
        assert self.scheduler is not None
        self.scheduler.cancel(answer.round.tag)
        answer.stream.finish()
        if not answer.round.answer.notes:
            answer.round.answer = NoteSequence(
                notes=[n for n in answer.notes if n.end >= 0])
        self._finish(answer, "interrupted")

    def _finish(self, answer: _Answer, event: str) -> None:
        rnd = answer.round
        if rnd.finished_at is not None:
            return
        rnd.finished_at = time.perf_counter()
        rnd.interrupted = event == "interrupted"
        self.rounds_done += 1
        self._by_tag.pop(rnd.tag, None)
        if self.scheduler is not None:
            self.scheduler.forget(rnd.tag)
        self._notify(rnd, event)

    def _notify(self, rnd: Round, event: str) -> None:
        if self.on_round is not None:
            try:
                self.on_round(rnd, event)
            except Exception:  # noqa: BLE001 - a listener must not stop the duet
                log.exception("duet listener")

    # ------------------------------------------------------------------ scheduler thread
    def _sent(self, tag: str, message: list[int], sent_at: float, due: float) -> None:
        rnd = self._by_tag.get(tag)
        if rnd is not None and message[0] & 0xF0 == 0x90 and message[2] > 0:
            rnd.notes_sent += 1
            if rnd.first_note_at is None:
                rnd.first_note_at = sent_at
                self.latencies.append(sent_at - rnd.detected_at)
                self._notify(rnd, "first-note")
        if self.on_answer_message is not None:
            try:
                self.on_answer_message(message, sent_at)
            except Exception:  # noqa: BLE001
                log.exception("duet listener")
