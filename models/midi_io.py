"""Standard MIDI files to and from :class:`~models.sequence.NoteSequence`.

Reading uses ``mido`` for the byte-level parsing and does the rest here: absolute ticks, seconds
through the tempo map (or SMPTE time code), note pairing, programs, controllers. Every problem with
the input becomes a one-line :class:`~models.errors.CadenzaError` that names the file.

Choices, where the standard leaves room:

* Format 0 and 1 share one tempo map, merged from the tempo events of every track.
* Format 2 tracks are independent patterns played one after another: each track starts where the
  previous one ended (its end-of-track event), with the tempo in force at that point; its own
  tempo events apply to it alone.
* SMPTE division (negative): a tick lasts ``1 / (frames_per_second * ticks_per_frame)`` seconds
  and tempo events do not affect timing (29 means 29.97 fps drop-frame).
* A note-off (or note-on with velocity 0) closes the oldest open note of that pitch on that
  channel and track (first in, first out), preferring notes that began at an earlier tick; a
  note-on followed by its note-off at the same tick gives a zero-length note.
* A note never closed ends at the end of the file (its track's end for format 2), and lasts at
  least :data:`HANGING_NOTE_MIN_SECONDS`.
* ``tempos`` always starts at 0 s: 120 qpm when the file sets none (or sets its first later).
* One ``instrument`` index per (track, channel) pair that sounds (notes, controllers or bends), in
  order of appearance; its name is the track's ``track_name``. Programs are per track and channel,
  and each note takes the program in force at its note-on. Channel 10 (index 9) is drums.
* A file longer than :data:`MAX_SECONDS` is rejected as corrupt (absurd delta times).
"""

from __future__ import annotations

import bisect
import io
import math
import struct
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from models import files, limits
from models.errors import CadenzaError
from models.sequence import (
    DEFAULT_QPM,
    DRUM_CHANNEL,
    ControlChange,
    Note,
    NoteSequence,
    PitchBend,
    TempoChange,
    TimeSignature,
)

MAX_SECONDS = 6 * 3600.0
"""Files whose events reach past this time are rejected (corrupt delta times)."""
HANGING_NOTE_MIN_SECONDS = 0.25
"""The shortest length given to a note that is never switched off."""
DEFAULT_TICKS_PER_QUARTER = 480
_DEFAULT_TEMPO = 500_000  # microseconds per quarter note (120 qpm)
_MAX_MIDI_TEMPO = 0xFFFFFF
_MIDI_CHANNELS = [c for c in range(16) if c != DRUM_CHANNEL]

Source = str | Path | bytes | bytearray


# ---------------------------------------------------------------------------------- tempo map
@dataclass
class _Segment:
    tick: int
    seconds: float
    seconds_per_tick: float


class _TempoMap:
    """Piecewise-linear ticks <-> seconds."""

    def __init__(self, segments: list[_Segment]) -> None:
        self.segments = segments
        self._ticks = [s.tick for s in segments]
        self._seconds = [s.seconds for s in segments]

    @classmethod
    def from_tempos(
        cls, changes: list[tuple[int, int]], ticks_per_quarter: int, initial: int = _DEFAULT_TEMPO
    ) -> _TempoMap:
        """``changes``: (tick, microseconds per quarter) sorted by tick; the last at a tick wins."""
        segments = [_Segment(0, 0.0, initial / 1e6 / ticks_per_quarter)]
        for tick, tempo in changes:
            last = segments[-1]
            spt = tempo / 1e6 / ticks_per_quarter
            if tick == last.tick:
                last.seconds_per_tick = spt
            elif spt != last.seconds_per_tick:
                seconds = last.seconds + (tick - last.tick) * last.seconds_per_tick
                segments.append(_Segment(tick, seconds, spt))
        return cls(segments)

    def to_seconds(self, tick: int) -> float:
        seg = self.segments[bisect.bisect_right(self._ticks, tick) - 1]
        return seg.seconds + (tick - seg.tick) * seg.seconds_per_tick

    def to_seconds_array(self, ticks: np.ndarray) -> np.ndarray:
        """:meth:`to_seconds` of many ticks at once, with the same arithmetic (bit for bit)."""
        starts = np.asarray(self._ticks, dtype=np.int64)
        index = np.searchsorted(starts, ticks, side="right") - 1
        seconds = np.asarray(self._seconds, dtype=np.float64)[index]
        per_tick = np.asarray([s.seconds_per_tick for s in self.segments], np.float64)[index]
        return seconds + (ticks - starts[index]) * per_tick

    def to_ticks(self, seconds: float) -> int:
        seg = self.segments[max(bisect.bisect_right(self._seconds, seconds) - 1, 0)]
        return seg.tick + round((seconds - seg.seconds) / seg.seconds_per_tick)


# ---------------------------------------------------------------------------------- reading
def read_midi(source: Source) -> NoteSequence:
    """Read a Standard MIDI File (a path, or the file's bytes) into a NoteSequence.

    Raises CadenzaError, naming the file, for anything that is not a readable MIDI file.
    """
    if isinstance(source, bytes | bytearray):
        label, data, name = "MIDI data", bytes(source), ""
    else:
        path = Path(source)
        label, name = path.name or str(path), path.stem
        try:
            if path.is_file():
                limits.midi_data(path.stat().st_size, label)  # before reading it all
            data = path.read_bytes()
        except OSError as exc:
            raise CadenzaError(f"{label}: cannot read the file ({exc.strerror or exc})") from exc
    limits.midi_data(len(data), label)
    midi = _parse(data, label)
    seq = _convert(midi, label)
    if name:
        seq.name = name
    return seq


def read_midi_fast(source: str | Path) -> NoteSequence:
    """:func:`read_midi` for the training data pipelines, parsed by symusic (C++); the files it
    could read differently go to :func:`read_midi`.

    symusic gives the notes per track (and channel and program), paired first in, first out as
    :func:`read_midi` pairs them, in ticks; they are turned into seconds through the same tempo
    map as :func:`read_midi`, so the times are the same to the bit. Read by :func:`read_midi`
    instead: format 2 files and SMPTE time (where :func:`read_midi` has rules of its own), and
    anything symusic refuses (RIFF, junk, truncation: the careful reader's messages). What still
    differs: a note never switched off is dropped here (:func:`read_midi` ends it at the end of
    the file), controllers and pitch bends of a channel that plays no note are left out, and
    ``instrument`` numbers one symusic track (track, channel and program) here, one (track,
    channel) there. ``benchmarks/bench_midi_read.py`` counts the corpus files whose
    training data differs. Use :func:`read_midi` wherever the exact reading matters (the app,
    the CLI, evaluation, the tests that compare with note_seq).
    """
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError:
        return read_midi(path)  # its message
    if (len(data) < 14 or data[:4] != b"MThd" or struct.unpack(">H", data[8:10])[0] == 2
            or data[12] & 0x80):
        return read_midi(path)
    try:
        import symusic

        score = symusic.Score.from_midi(data)
    except Exception:  # noqa: BLE001 - anything symusic refuses, the careful reader explains
        return read_midi(path)
    seq = _from_score(score)
    if seq is None:
        return read_midi(path)
    seq.name = path.stem
    return seq


def _from_score(score: object) -> NoteSequence | None:
    """A symusic score (in ticks) as a NoteSequence, or None for a file past the length cap."""
    tpq = int(score.ticks_per_quarter)  # type: ignore[attr-defined]
    tempo_rows = score.tempos.numpy()  # type: ignore[attr-defined]
    changes = sorted(
        ((int(t), int(m)) for t, m in zip(tempo_rows["time"], tempo_rows["mspq"], strict=True)
         if m > 0),
        key=lambda c: c[0],
    )
    tmap = _TempoMap.from_tempos(changes, tpq)
    seq = NoteSequence(ticks_per_quarter=tpq)
    seq.tempos = _tempo_list(changes, tmap, 0.0) or [TempoChange(0.0, DEFAULT_QPM)]
    sigs = score.time_signatures.numpy()  # type: ignore[attr-defined]
    if len(sigs["time"]):
        times = tmap.to_seconds_array(sigs["time"].astype(np.int64)).tolist()
        seq.time_signatures = _dedupe_signatures([
            TimeSignature(t, int(n), int(d))
            for t, n, d in zip(times, sigs["numerator"], sigs["denominator"], strict=True)])
    end = 0.0
    for index, track in enumerate(score.tracks):  # type: ignore[attr-defined]
        program, drum = int(track.program), bool(track.is_drum)
        if track.name.strip():
            seq.instrument_names[index] = _text(track.name).strip()
        notes = track.notes.numpy()
        if len(notes["time"]):
            on = notes["time"].astype(np.int64)
            off = on + notes["duration"].astype(np.int64)
            pitch = notes["pitch"].astype(np.int64)
            starts = tmap.to_seconds_array(on).tolist()
            ends = tmap.to_seconds_array(off).tolist()
            end = max(end, max(ends))
            seq.notes += [
                Note(p, v, a, b, program, drum, index)
                for p, v, a, b in zip(pitch.tolist(), notes["velocity"].astype(np.int64).tolist(),
                                      starts, ends, strict=True)
            ]
        controls = track.controls.numpy()
        if len(controls["time"]):
            times = tmap.to_seconds_array(controls["time"].astype(np.int64)).tolist()
            seq.control_changes += [
                ControlChange(t, int(n), int(v), index, program, drum)
                for t, n, v in zip(times, controls["number"], controls["value"], strict=True)]
        bends = track.pitch_bends.numpy()
        if len(bends["time"]):
            times = tmap.to_seconds_array(bends["time"].astype(np.int64)).tolist()
            seq.pitch_bends += [PitchBend(t, int(v), index, program, drum)
                                for t, v in zip(times, bends["value"], strict=True)]
    if not math.isfinite(end) or end > MAX_SECONDS:
        return None  # read_midi names the corruption
    seq.sort()
    return seq


def _parse(data: bytes, label: str) -> mido.MidiFile:
    """Check the chunk structure, then let mido parse the header and the MTrk chunks."""
    if not data:
        raise CadenzaError(f"{label}: empty file, not a MIDI file")
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":  # RIFF-wrapped MIDI (.rmi)
        start = data.find(b"MThd", 12)
        data = data[start:] if start >= 0 else b""
    if data[:4] != b"MThd":
        raise CadenzaError(f"{label}: not a MIDI file (no MThd header)")
    if len(data) < 14:
        raise CadenzaError(f"{label}: truncated MIDI file (incomplete header)")
    header_len, fmt, ntracks, division = struct.unpack(">LHHh", data[4:14])
    if header_len < 6:
        raise CadenzaError(f"{label}: corrupt MIDI file (header length {header_len})")
    if fmt not in (0, 1, 2):
        raise CadenzaError(f"{label}: unknown MIDI format {fmt} (expected 0, 1 or 2)")
    if division == 0:
        raise CadenzaError(f"{label}: corrupt MIDI file (zero ticks per quarter note)")
    if division < 0 and (-(division >> 8) not in (24, 25, 29, 30) or division & 0xFF == 0):
        raise CadenzaError(f"{label}: corrupt MIDI file (bad SMPTE division)")
    # Keep the MTrk chunks only (unknown chunks are skipped, as the standard asks).
    pos, tracks = 8 + header_len, []
    while pos < len(data) and len(tracks) < ntracks:
        if len(data) - pos < 8:
            break
        kind, size = struct.unpack(">4sL", data[pos:pos + 8])
        if pos + 8 + size > len(data):
            raise CadenzaError(
                f"{label}: truncated MIDI file (track {len(tracks) + 1} of {ntracks} is cut off)"
            )
        if kind == b"MTrk":
            tracks.append(data[pos:pos + 8 + size])
        pos += 8 + size
    if len(tracks) < ntracks:
        raise CadenzaError(
            f"{label}: truncated MIDI file (found {len(tracks)} of {ntracks} tracks)"
        )
    # Tempo events are easy to count in the bytes (FF 51 03 can only be one, or text inside a
    # meta or system exclusive event): a file with far too many is refused before parsing.
    limits.midi_counts(0, data.count(b"\xff\x51\x03"), label)
    clean = struct.pack(">4sLHHh", b"MThd", 6, fmt, len(tracks), division) + b"".join(tracks)
    try:
        return mido.MidiFile(file=io.BytesIO(clean), charset="latin1")
    except EOFError as exc:
        raise CadenzaError(f"{label}: truncated MIDI file (a track ends mid-event)") from exc
    except Exception as exc:  # mido raises OSError, ValueError, KeyError, ... for bad bytes
        raise CadenzaError(f"{label}: corrupt MIDI file ({_describe(exc)})") from exc


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _text(value: str) -> str:
    """Meta text is read as latin-1; most writers today use UTF-8, so try that first."""
    try:
        return value.encode("latin1").decode("utf-8")
    except UnicodeError:
        return value


@dataclass
class _Open:
    tick: int
    start: float
    velocity: int
    program: int


def _convert(midi: mido.MidiFile, label: str) -> NoteSequence:
    division = midi.ticks_per_beat
    smpte = division < 0
    if smpte:
        fps = -(division >> 8)
        ticks_per_second = (29.97 if fps == 29 else fps) * (division & 0xFF)
        tpq = max(24, min(32767, round(ticks_per_second * 60.0 / DEFAULT_QPM)))
    else:
        ticks_per_second = 0.0
        tpq = division

    # Absolute ticks per track.
    tracks: list[list[tuple[int, mido.Message]]] = []
    note_ons = tempo_events = 0
    for track in midi.tracks:
        tick, events = 0, []
        for msg in track:
            tick += msg.time
            events.append((tick, msg))
            if msg.type == "note_on":
                note_ons += msg.velocity > 0
            elif msg.type == "set_tempo":
                tempo_events += 1
        tracks.append(events)
    limits.midi_counts(note_ons, tempo_events, label)  # bounded work from here on
    track_end_ticks = [events[-1][0] if events else 0 for events in tracks]

    def tempos_of(events: list[tuple[int, mido.Message]]) -> list[tuple[int, int]]:
        return [(t, m.tempo) for t, m in events if m.type == "set_tempo" and m.tempo > 0]

    # One (tempo map, offset in seconds) per track.
    seq = NoteSequence(ticks_per_quarter=tpq)
    timings: list[tuple[_TempoMap, float]] = []
    if smpte:  # tempo events do not change the length of a tick
        shared = _TempoMap([_Segment(0, 0.0, 1.0 / ticks_per_second)])
        offset = 0.0
        for end in track_end_ticks:
            timings.append((shared, offset))
            if midi.type == 2:
                offset += shared.to_seconds(end)
    elif midi.type != 2:
        changes = sorted((c for events in tracks for c in tempos_of(events)), key=lambda c: c[0])
        shared = _TempoMap.from_tempos(changes, tpq)
        timings = [(shared, 0.0)] * len(tracks)
        seq.tempos = _tempo_list(changes, shared, 0.0)
    else:
        offset, tempo = 0.0, _DEFAULT_TEMPO
        for events, end in zip(tracks, track_end_ticks, strict=True):
            changes = tempos_of(events)
            tmap = _TempoMap.from_tempos(changes, tpq, initial=tempo)
            timings.append((tmap, offset))
            seq.tempos += _tempo_list([(0, tempo), *changes], tmap, offset)
            offset += tmap.to_seconds(end)
            tempo = changes[-1][1] if changes else tempo
        seq.tempos = _dedupe_tempos(seq.tempos)

    # The file's length: everything must fit under the cap.
    track_end_seconds = [
        tmap.to_seconds(end) + off
        for (tmap, off), end in zip(timings, track_end_ticks, strict=True)
    ]
    file_end = max(track_end_seconds, default=0.0)
    if not math.isfinite(file_end) or file_end > MAX_SECONDS:
        raise CadenzaError(
            f"{label}: corrupt MIDI file (events {file_end / 3600:.1f} hours in, "
            f"more than the {MAX_SECONDS / 3600:.0f}-hour limit)"
        )

    instrument_of: dict[tuple[int, int], int] = {}

    def instrument(track: int, channel: int) -> int:
        key = (track, channel)
        if key not in instrument_of:
            instrument_of[key] = len(instrument_of)
        return instrument_of[key]

    track_names: dict[int, str] = {}
    for index, events in enumerate(tracks):
        tmap, offset = timings[index]
        close_at = track_end_seconds[index] if midi.type == 2 else file_end
        programs = [0] * 16
        open_notes: dict[tuple[int, int], deque[_Open]] = {}
        for tick, msg in events:
            kind = msg.type
            if kind == "track_name" and index not in track_names:
                track_names[index] = _text(msg.name).strip()
            elif kind == "time_signature":
                seconds = tmap.to_seconds(tick) + offset
                seq.time_signatures.append(
                    TimeSignature(seconds, msg.numerator, msg.denominator)
                )
            elif kind == "program_change":
                programs[msg.channel] = msg.program
            elif kind == "note_on" and msg.velocity > 0:
                seconds = tmap.to_seconds(tick) + offset
                open_notes.setdefault((msg.channel, msg.note), deque()).append(
                    _Open(tick, seconds, msg.velocity, programs[msg.channel])
                )
                instrument(index, msg.channel)
            elif kind in ("note_off", "note_on"):
                queue = open_notes.get((msg.channel, msg.note))
                if not queue:
                    continue  # a note-off with no note-on: ignore
                opened = queue.popleft()  # the oldest: struck before this tick if any was
                seq.notes.append(
                    _note(msg.channel, msg.note, opened, tmap.to_seconds(tick) + offset,
                          instrument(index, msg.channel))
                )
            elif kind == "control_change":
                seq.control_changes.append(ControlChange(
                    tmap.to_seconds(tick) + offset, msg.control, msg.value,
                    instrument(index, msg.channel), programs[msg.channel],
                    msg.channel == DRUM_CHANNEL,
                ))
            elif kind == "pitchwheel":
                seq.pitch_bends.append(PitchBend(
                    tmap.to_seconds(tick) + offset, msg.pitch,
                    instrument(index, msg.channel), programs[msg.channel],
                    msg.channel == DRUM_CHANNEL,
                ))
        for (channel, pitch), queue in open_notes.items():  # hanging notes
            for opened in queue:
                end = max(close_at, opened.start + HANGING_NOTE_MIN_SECONDS)
                seq.notes.append(
                    _note(channel, pitch, opened, end, instrument(index, channel))
                )

    for key, number in instrument_of.items():
        if track_names.get(key[0]):
            seq.instrument_names[number] = track_names[key[0]]
    seq.time_signatures = _dedupe_signatures(seq.time_signatures)
    if not seq.tempos:  # no tempo event (or SMPTE time): the standard's 120 qpm, made explicit
        seq.tempos = [TempoChange(0.0, DEFAULT_QPM)]
    if not seq.name and len(tracks) > 1 and track_names.get(0) and not any(
        track == 0 for track, _ in instrument_of
    ):
        seq.name = track_names[0]  # the conductor track's name is the song's
    seq.sort()
    return seq


def _note(channel: int, pitch: int, opened: _Open, end: float, instrument: int) -> Note:
    return Note(
        pitch=pitch, velocity=opened.velocity, start=opened.start, end=end,
        program=opened.program, is_drum=channel == DRUM_CHANNEL, instrument=instrument,
    )


def _tempo_list(changes: list[tuple[int, int]], tmap: _TempoMap, offset: float
                ) -> list[TempoChange]:
    """Tempo changes in seconds; a map whose first change is late starts with 120 qpm at 0."""
    out = [TempoChange(tmap.to_seconds(t) + offset, 6e7 / tempo) for t, tempo in changes]
    if out and out[0].time > offset:
        out.insert(0, TempoChange(offset, DEFAULT_QPM))
    return _dedupe_tempos(out)


def _dedupe_tempos(tempos: list[TempoChange]) -> list[TempoChange]:
    """Drop repeats of the tempo in force; the last change at one instant wins."""
    out: list[TempoChange] = []
    for t in sorted(tempos, key=lambda t: t.time):
        if out and t.time == out[-1].time:
            out[-1] = t
            if len(out) > 1 and out[-2].qpm == t.qpm:
                out.pop()
        elif not out or t.qpm != out[-1].qpm:
            out.append(t)
    return out


def _dedupe_signatures(signatures: list[TimeSignature]) -> list[TimeSignature]:
    out: list[TimeSignature] = []
    for ts in sorted(signatures, key=lambda t: t.time):
        if out and ts.time == out[-1].time:
            out[-1] = ts
        elif not out or (ts.numerator, ts.denominator) != (out[-1].numerator,
                                                           out[-1].denominator):
            out.append(ts)
    return out


# ---------------------------------------------------------------------------------- writing
def write_midi(seq: NoteSequence, path: str | Path) -> None:
    """Write ``seq`` as a format-1 MIDI file (a conductor track, then one track per instrument).

    Atomic (:mod:`models.files`): a failure or a kill leaves the old file as it was."""
    path = Path(path)
    files.write_bytes(path, _build(seq, path.name))  # beside it, then renamed: old file kept


def midi_bytes(seq: NoteSequence) -> bytes:
    """The bytes of the format-1 MIDI file that :func:`write_midi` would write."""
    return _build(seq, seq.name or "MIDI data")


def _check_time(value: float, what: str, label: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise CadenzaError(f"{label}: cannot write {what} at time {value!r} (must be finite, >= 0)")
    if value > MAX_SECONDS:
        raise CadenzaError(f"{label}: cannot write {what} at {value:.0f} s (over the 6-hour limit)")
    return seconds


def _check_range(value: int, low: int, high: int, what: str, label: str) -> int:
    if not low <= int(value) <= high:
        raise CadenzaError(f"{label}: cannot write {what} {value} (must be {low}..{high})")
    return int(value)


def _build(seq: NoteSequence, label: str) -> bytes:
    tpq = seq.ticks_per_quarter or DEFAULT_TICKS_PER_QUARTER
    _check_range(tpq, 1, 32767, "ticks per quarter note", label)

    # Tempo map in ticks: each change lands on a whole tick, later events are placed against it.
    tempos = sorted(seq.tempos, key=lambda t: t.time)
    for t in tempos:
        _check_time(t.time, "a tempo change", label)
        if not (math.isfinite(t.qpm) and t.qpm > 0) or round(6e7 / t.qpm) > _MAX_MIDI_TEMPO:
            raise CadenzaError(f"{label}: cannot write tempo {t.qpm!r} qpm")
    if not tempos or tempos[0].time > 0:
        tempos.insert(0, TempoChange(0.0, DEFAULT_QPM))  # the tempo before any change
    tempo_events: list[tuple[int, int]] = []
    tmap = _TempoMap.from_tempos([], tpq, initial=round(6e7 / tempos[0].qpm))
    for t in tempos:
        tick = tmap.to_ticks(t.time)
        micro = max(1, round(6e7 / t.qpm))
        tempo_events = [e for e in tempo_events if e[0] != tick] + [(tick, micro)]
        tmap = _TempoMap.from_tempos(tempo_events, tpq, initial=tempo_events[0][1])

    conductor = mido.MidiTrack()
    timed: list[tuple[int, int, mido.Message]] = []
    if seq.name:
        timed.append((0, 0, mido.MetaMessage("track_name", name=_latin1(seq.name))))
    for tick, micro in tempo_events:
        timed.append((tick, 1, mido.MetaMessage("set_tempo", tempo=micro)))
    for ts in sorted(seq.time_signatures, key=lambda t: t.time):
        _check_time(ts.time, "a time signature", label)
        den = int(ts.denominator)
        if den < 1 or den & (den - 1) or den > 128 or not 1 <= int(ts.numerator) <= 255:
            raise CadenzaError(
                f"{label}: cannot write time signature {ts.numerator}/{ts.denominator}"
            )
        timed.append((tmap.to_ticks(ts.time), 2, mido.MetaMessage(
            "time_signature", numerator=int(ts.numerator), denominator=den)))
    _append_sorted(conductor, timed)
    tracks = [conductor]

    # One track per (instrument, drum flag).
    groups: dict[tuple[int, bool], dict[str, list]] = {}
    for n in seq.notes:
        groups.setdefault((n.instrument, n.is_drum), {"notes": [], "cc": [], "pb": []})
        groups[(n.instrument, n.is_drum)]["notes"].append(n)
    for c in seq.control_changes:
        groups.setdefault((c.instrument, c.is_drum), {"notes": [], "cc": [], "pb": []})
        groups[(c.instrument, c.is_drum)]["cc"].append(c)
    for b in seq.pitch_bends:
        groups.setdefault((b.instrument, b.is_drum), {"notes": [], "cc": [], "pb": []})
        groups[(b.instrument, b.is_drum)]["pb"].append(b)

    melodic = 0
    for (number, is_drum), group in sorted(groups.items()):
        if is_drum:
            channel = DRUM_CHANNEL
        else:
            channel = _MIDI_CHANNELS[melodic % len(_MIDI_CHANNELS)]
            melodic += 1
        timed = []
        name = seq.instrument_names.get(number, "")
        if name:
            timed.append((0, 0, mido.MetaMessage("track_name", name=_latin1(name))))
        notes = sorted(group["notes"], key=lambda n: (n.start, n.pitch))
        first = (notes[0].program if notes else
                 (group["cc"] or group["pb"])[0].program)
        program = _check_range(first, 0, 127, "program", label)
        timed.append((0, 1, mido.Message("program_change", channel=channel, program=program)))
        for n in notes:
            start = _check_time(n.start, "a note", label)
            end = _check_time(n.end, "a note end", label)
            if end < start:
                raise CadenzaError(f"{label}: cannot write a note that ends before it starts "
                                   f"({start:.3f} s to {end:.3f} s)")
            pitch = _check_range(n.pitch, 0, 127, "pitch", label)
            velocity = min(127, max(1, int(n.velocity)))
            on, off = tmap.to_ticks(start), tmap.to_ticks(end)
            off = max(off, on + 1)
            if n.program != program:
                program = _check_range(n.program, 0, 127, "program", label)
                timed.append((on, 1, mido.Message(
                    "program_change", channel=channel, program=program)))
            timed.append((on, 4, mido.Message(
                "note_on", channel=channel, note=pitch, velocity=velocity)))
            timed.append((off, 2, mido.Message(
                "note_off", channel=channel, note=pitch, velocity=0)))
        for c in group["cc"]:
            timed.append((tmap.to_ticks(_check_time(c.time, "a control change", label)), 3,
                          mido.Message("control_change", channel=channel,
                                       control=_check_range(c.number, 0, 127, "controller", label),
                                       value=_check_range(c.value, 0, 127, "CC value", label))))
        for b in group["pb"]:
            timed.append((tmap.to_ticks(_check_time(b.time, "a pitch bend", label)), 3,
                          mido.Message("pitchwheel", channel=channel,
                                       pitch=_check_range(b.bend, -8192, 8191, "pitch bend",
                                                          label))))
        track = mido.MidiTrack()
        _append_sorted(track, timed)
        tracks.append(track)

    midi = mido.MidiFile(type=1, ticks_per_beat=tpq, charset="latin1")
    midi.tracks.extend(tracks)
    buffer = io.BytesIO()
    try:
        midi.save(file=buffer)
    except (ValueError, TypeError) as exc:
        raise CadenzaError(f"{label}: cannot write MIDI ({_describe(exc)})") from exc
    return buffer.getvalue()


def _latin1(text: str) -> str:
    """Names are stored as UTF-8 bytes; mido writes meta text as latin-1, so pre-encode."""
    return text.encode("utf-8").decode("latin1")


def _append_sorted(track: mido.MidiTrack, timed: list[tuple[int, int, mido.Message]]) -> None:
    """Add events as delta times: by tick, then program < note-off < controllers < note-on."""
    last = 0
    for tick, _, msg in sorted(timed, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
