"""The streaming form (``models.performance_rnn.live``) against the batch generator and decoder,
with the shipped model and with event streams made to hit every decoding rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.errors import Cancelled
from models.midi_io import read_midi
from models.performance_rnn import encoding as enc
from models.performance_rnn.generate import MAX_NOTE_SECONDS, _trim_to, decode, last_velocity
from models.performance_rnn.live import NoteEvent, StreamDecoder
from models.sequence import Note

ROOT = Path(__file__).resolve().parents[3]
PHRASE = ROOT / "assets" / "examples" / "piano-phrase.mid"


@pytest.fixture(scope="module", params=["performance-small", "performance-transformer"])
def shipped(request):  # noqa: ANN001, ANN201 - the PerformanceRNN façade: the LSTM, the Transformer
    from models.registry import SHIPPED_DIR, ModelRegistry

    return ModelRegistry([SHIPPED_DIR]).load(request.param, "performance")


def _notes(events: list[NoteEvent]) -> list[tuple[int, int, float, float]]:
    """Pair the note-ons and note-offs by note number, as (pitch, velocity, start, end)."""
    starts: dict[int, NoteEvent] = {}
    out = []
    last = -1.0
    for e in events:
        assert e.time >= last - 1e-9, "events come in time order"
        last = e.time
        if e.is_on:
            assert e.note not in starts
            starts[e.note] = e
        else:
            on = starts.pop(e.note)
            assert on.pitch == e.pitch and e.time > on.time
            out.append((on.pitch, on.velocity, on.time, e.time))
    assert not starts, "every note-on has its note-off"
    return sorted(out, key=lambda n: (n[2], n[0], n[3]))


def _batch(notes: list[Note]) -> list[tuple[int, int, float, float]]:
    return sorted(((n.pitch, n.velocity, n.start, n.end) for n in notes),
                  key=lambda n: (n[2], n[0], n[3]))


def _same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x[:2] == y[:2]
        assert x[2:] == pytest.approx(y[2:], abs=1e-9)


def _stream(events: np.ndarray, velocity: int = 64, target: int | None = None
            ) -> list[NoteEvent]:
    decoder = StreamDecoder(velocity, target)
    out: list[NoteEvent] = []
    for ev in events.tolist():
        out += decoder.push(ev)
    return out + decoder.finish()


def _rule_hitting_events(rng: np.random.Generator, n: int) -> np.ndarray:
    """Few pitches (so notes overlap and are re-struck), note-offs of silent pitches, notes
    ended in the step they began, velocity changes, and long shifts (notes past 5 s)."""
    pitches = [60, 62, 64]
    kinds = rng.choice(5, size=n, p=[0.3, 0.3, 0.25, 0.1, 0.05])
    out = []
    for kind in kinds.tolist():
        p = int(rng.choice(pitches))
        if kind == 0:
            out.append(enc.NOTE_ON + p)
        elif kind == 1:
            out.append(enc.NOTE_OFF + p)
        elif kind == 2:
            out.append(enc.TIME_SHIFT + int(rng.integers(0, 100)))
        elif kind == 3:
            out.append(enc.VELOCITY + int(rng.integers(0, enc.NUM_VELOCITY_BINS)))
        else:
            out += [enc.TIME_SHIFT + 99] * int(rng.integers(3, 8))  # 3 to 7 s of silence
    return np.asarray(out, np.int16)


def test_streaming_and_batch_decoders_agree_on_every_rule() -> None:
    rng = np.random.default_rng(0)
    capped = zero_length = silent_offs = 0
    for _ in range(200):
        events = _rule_hitting_events(rng, 120)
        velocity = int(rng.integers(1, 128))
        batch = _batch(decode(events, velocity).notes)
        _same(_notes(_stream(events, velocity)), batch)
        # with a target the stream ends where the batch generator trims the events
        target = int(rng.integers(50, 1500))
        trimmed = np.asarray(_trim_to(events.tolist(), target), np.int16)
        _same(_notes(_stream(events, velocity, target)),
              _batch(decode(trimmed, velocity).notes))
        uncapped = enc.decode(events, velocity)
        capped += sum(n.end - n.start > MAX_NOTE_SECONDS for n in uncapped.notes)
        zero_length += sum(1 for a, b in zip(events[:-1], events[1:], strict=False)
                           if a < enc.NOTE_OFF and b == a + enc.NOTE_OFF)
        silent_offs += int(((events >= enc.NOTE_OFF) & (events < enc.TIME_SHIFT)).sum())
    assert capped > 50 and zero_length > 50 and silent_offs > 1000  # the rules were hit


def test_streaming_decoder_agrees_with_the_shipped_models_continuations(shipped) -> None:  # noqa: ANN001
    primer = read_midi(PHRASE)
    session = shipped.session()
    session.prime(primer)
    velocity = last_velocity(session.primer_events)
    for take in shipped.generate(primer, 20.0, variations=3, seed=4):
        streamed = _notes(_stream(take.events, velocity, 2000))
        _same(streamed, _batch(take.continuation.notes))
        assert all(end - start <= MAX_NOTE_SECONDS + 1e-9 for _, _, start, end in streamed)


def test_a_streamed_answer_decodes_as_its_events(shipped) -> None:  # noqa: ANN001
    from models.performance_rnn.generate import Continuer

    stream = shipped.stream()
    primer = read_midi(PHRASE)
    marks = sorted([(n.start, 1, n) for n in primer.notes] + [(n.end, 0, n) for n in primer.notes],
                   key=lambda m: (m[0], m[1]))
    stream.start_phrase(100.0)
    for t, is_on, n in marks:
        if is_on:
            stream.note_on(n.pitch, n.velocity, 100.0 + t)
        else:
            stream.note_off(n.pitch, 100.0 + t)
    session = Continuer(shipped)
    session.prime(primer)
    assert stream.velocity == last_velocity(session.primer_events)  # the phrase's last velocity
    for seed in range(3):
        answer = stream.answer(8.0, rng=seed)
        out: list[NoteEvent] = []
        while not answer.done:
            out += answer.next()
        assert answer.time == pytest.approx(8.0)
        notes = _notes(out)
        assert notes and notes == sorted(notes, key=lambda n: (n[2], n[0], n[3]))
        trimmed = np.asarray(_trim_to(list(answer.events), 800), np.int16)  # as the batch trims
        _same(notes, _batch(decode(trimmed, stream.velocity).notes))
        assert max(end for *_, end in notes) <= 8.0 + 1e-9
    # The phrase's state is not moved by answering: the same seed gives the same answer.
    first = stream.answer(2.0, rng=7)
    again = stream.answer(2.0, rng=7)
    while not first.done:
        first.next()
    while not again.done:
        again.next()
    assert first.events == again.events


def _answers(stream, follow: bool | None, seeds: int, reference) -> list[int]:  # noqa: ANN001
    pitches: list[int] = []
    for seed in range(seeds):
        answer = stream.answer(6.0, rng=seed, reference=reference if follow else None)
        while not answer.done:
            pitches += [e.pitch for e in answer.next() if e.is_on]
    return pitches


def test_a_followed_answer_takes_the_players_pace_and_key(shipped) -> None:  # noqa: ANN001
    # A slow phrase in B major (one note a second): unconditioned, the model plays about 2.6
    # notes/s after it; following the phrase, about 0.5 (measured, 6 seeds of 6 s).
    from models.sequence import NoteSequence

    b_major = {11, 1, 3, 4, 6, 8, 10}
    played = [Note(p, 70, 1.0 * i, 1.0 * i + 0.9)
              for i, p in enumerate([59, 63, 66, 71, 66, 63, 59, 61])]
    stream = shipped.stream()
    stream.start_phrase(0.0)
    for n in played:
        stream.note_on(n.pitch, n.velocity, n.start)
        stream.note_off(n.pitch, n.end)
    reference = NoteSequence(notes=played)
    free = _answers(stream, None, 12, reference)
    followed = _answers(stream, True, 12, reference)
    assert free and followed
    assert len(followed) < 0.6 * len(free), (len(followed), len(free))
    in_key = sum(p % 12 in b_major for p in followed) / len(followed)
    free_in_key = sum(p % 12 in b_major for p in free) / len(free)
    # following keeps the key (a model's "follow" may flatten the histogram a little): no
    # lower than unconditioned answers by more than two standard errors of the few notes
    margin = 2 * np.sqrt(free_in_key * (1 - free_in_key) / len(followed))
    assert in_key >= free_in_key - 0.02 - margin, (in_key, free_in_key, len(followed))
    # A phrase that starts after a followed one is primed under its controls.
    stream.start_phrase(20.0, reference)
    assert not np.array_equal(stream.bias0, shipped.stream().bias0)


def test_lead_seconds_caps_the_silence_before_the_first_note() -> None:
    events = [enc.TIME_SHIFT + 99, enc.TIME_SHIFT + 49, enc.NOTE_ON + 60, enc.TIME_SHIFT + 9,
              enc.NOTE_OFF + 60]
    kept = _stream(np.asarray(events, np.int16))
    assert [(e.time, e.is_on) for e in kept] == [(1.5, True), (pytest.approx(1.6), False)]
    decoder = StreamDecoder(lead_steps=20)
    out = [e for ev in events for e in decoder.push(ev)]
    assert [(e.time, e.is_on) for e in out] == [(0.2, True), (pytest.approx(0.3), False)]


def test_generation_reports_progress_and_stops_when_cancelled(shipped) -> None:  # noqa: ANN001
    primer = read_midi(PHRASE)
    seen: list[float] = []
    takes = shipped.generate(primer, 5.0, variations=2, seed=1, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 20
    beam: list[float] = []
    shipped.generate(primer, 2.0, seed=1, beam_size=2, branch_factor=2, progress=beam.append)
    assert beam == sorted(beam) and beam[-1] == 1.0 and len(beam) >= 5
    asked: list[int] = []

    def cancel() -> bool:
        asked.append(1)
        return len(asked) >= 3

    with pytest.raises(Cancelled):
        shipped.generate(primer, 60.0, seed=1, cancel=cancel)
    assert len(asked) == 3  # asked every few dozen events, stopped at the first yes
    # progress and cancel change nothing about the music
    again = shipped.generate(primer, 5.0, variations=2, seed=1, cancel=lambda: False)
    assert [t.continuation.notes for t in again] == [t.continuation.notes for t in takes]
    assert all(np.array_equal(a.events, b.events) for a, b in zip(again, takes, strict=True))
    joined = takes[0].joined
    assert len(joined.notes) == len(primer.notes) + len(takes[0].continuation.notes)
    assert takes[0].boundary == pytest.approx(primer.total_time, abs=0.011)
