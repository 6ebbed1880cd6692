"""Sampler voices: a morph instrument played note by note and mixed block by block (numpy only).

A voice reads the rendered note of the nearest key center (resampled once to the output rate)
with a fractional step of ``2 ** (semitones / 12)`` and linear interpolation, as a hardware
sampler does, under the instrument's ADSR envelope scaled by velocity. A note with a sustain
loop (the SFZ's ``loop_mode``/``loop_start``/``loop_end``) wraps from the loop's end back to its
start: ``loop_continuous`` for as long as the voice sounds (so a held key sustains, and the
release fades the loop), ``loop_sustain`` only until the key (or pedal) lets go. The sustain pedal
(CC 64), all-notes-off (CC 123), all-sound-off (CC 120) and pitch bend (+-2 semitones) work per
channel; drum-channel notes are ignored. When every voice is busy the oldest one (a released one
first) is taken over.

:class:`SamplerVoices` has no threads and no locks: ``render(frames)`` is called by whoever owns
the timing, the live wrapper (:class:`app.sampler.SamplerSynth`, a render thread feeding the
audio engine) or :func:`render_sequence` (a whole :class:`NoteSequence` offline, every event at
its exact sample).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models import limits
from models.audio_io import Audio
from models.errors import CadenzaError
from models.nsynth.instrument import MorphInstrument, shift_pitch
from models.sequence import DRUM_CHANNEL, NoteSequence

BEND_RANGE = 2.0  # semitones at full pitch-bend
DEFAULT_VOICES = 32
_QUICK_RELEASE = 0.01  # seconds: a re-struck or stolen voice fades this fast, without a click


class SamplerVoices:
    """Polyphonic playing of one :class:`MorphInstrument` at ``sample_rate``."""

    def __init__(self, instrument: MorphInstrument, sample_rate: int,
                 max_voices: int = DEFAULT_VOICES, gain: float = 0.5) -> None:
        if not 8000 <= int(sample_rate) <= 192000:
            raise CadenzaError(f"sample rate must be 8000..192000 Hz, not {sample_rate}")
        if not instrument.samples:
            raise CadenzaError("the instrument has no notes")
        if max_voices < 1:
            raise CadenzaError("max_voices must be >= 1")
        self.instrument = instrument
        self.sample_rate = int(sample_rate)
        self.gain = float(gain)
        keys = sorted(instrument.samples)
        # One table per key center at the output rate, with a zero after the end so that the
        # interpolation's right neighbour always exists.
        self._tables = [np.concatenate([shift_pitch(instrument.samples[k], 0.0,
                                                    instrument.sample_rate, self.sample_rate),
                                        np.zeros(1, np.float32)]) for k in keys]
        # Each table's loop at the output rate: (start, end, continuous), or None.
        ratio = self.sample_rate / instrument.sample_rate
        self._loops: list[tuple[int, int, bool] | None] = []
        for k, table in zip(keys, self._tables, strict=True):
            loop = instrument.loops.get(k)
            if loop is not None and loop.mode in ("loop_continuous", "loop_sustain"):
                loop = loop.scaled(ratio)
                end = min(loop.end, table.shape[0] - 1)
                if end - loop.start >= 2:
                    self._loops.append((loop.start, end, loop.mode == "loop_continuous"))
                    continue
            self._loops.append(None)
        self._key_of = np.array([keys.index(instrument.key_center(p)) for p in range(128)])
        self._center = np.array(keys, dtype=np.float64)
        n = int(max_voices)
        self._active = np.zeros(n, bool)
        self._channel = np.zeros(n, np.int64)
        self._pitch = np.zeros(n, np.int64)
        self._table = np.zeros(n, np.int64)
        self._pos = np.zeros(n, np.float64)
        self._step = np.zeros(n, np.float64)
        self._amp = np.zeros(n, np.float32)
        self._age = np.zeros(n, np.int64)  # samples since the note-on
        self._released = np.zeros(n, bool)
        self._rel_age = np.zeros(n, np.int64)  # samples since the release began
        self._rel_len = np.ones(n, np.int64)
        self._rel_level = np.zeros(n, np.float32)
        self._pedal_held = np.zeros(n, bool)  # key up, held by the sustain pedal
        self._serial = np.zeros(n, np.int64)
        self._count = 0
        self._bend = np.ones(16, np.float64)
        self._pedal = np.zeros(16, bool)
        self._ramp = np.arange(1 << 12, dtype=np.float64)

    # ------------------------------------------------------------------ state
    @property
    def max_voices(self) -> int:
        return int(self._active.shape[0])

    @property
    def active_voices(self) -> int:
        return int(self._active.sum())

    def sounding(self) -> set[tuple[int, int]]:
        """``(channel, pitch)`` of the voices whose key (or pedal) still holds them."""
        held = self._active & ~self._released
        return {(int(c), int(p)) for c, p in zip(self._channel[held], self._pitch[held],
                                                  strict=True)}

    # ------------------------------------------------------------------ events
    def note_on(self, channel: int, pitch: int, velocity: int) -> None:
        if velocity <= 0:
            self.note_off(channel, pitch)
            return
        if channel == DRUM_CHANNEL or not 0 <= pitch <= 127:
            return
        same = self._active & ~self._released & (self._channel == channel) & (self._pitch == pitch)
        for v in np.flatnonzero(same):
            self._release(v, _QUICK_RELEASE)
        free = np.flatnonzero(~self._active)
        if free.size:
            v = int(free[0])
        else:  # steal: the oldest released voice, else the oldest
            released = np.flatnonzero(self._released)
            pool = released if released.size else np.arange(self.max_voices)
            v = int(pool[np.argmin(self._serial[pool])])
        key = int(self._key_of[pitch])
        self._active[v] = True
        self._channel[v] = channel
        self._pitch[v] = pitch
        self._table[v] = key
        self._pos[v] = 0.0
        self._step[v] = 2.0 ** ((pitch - self._center[key]) / 12.0)
        self._amp[v] = (min(int(velocity), 127) / 127.0) ** 2
        self._age[v] = 0
        self._released[v] = False
        self._pedal_held[v] = False
        self._count += 1
        self._serial[v] = self._count

    def note_off(self, channel: int, pitch: int) -> None:
        hit = self._active & ~self._released & ~self._pedal_held & (self._channel == channel) \
            & (self._pitch == pitch)
        for v in np.flatnonzero(hit):
            if self._pedal[channel]:
                self._pedal_held[v] = True
            else:
                self._release(v)

    def control(self, channel: int, number: int, value: int) -> None:
        if number == 64:
            down = value >= 64
            self._pedal[channel] = down
            if not down:
                for v in np.flatnonzero(self._active & self._pedal_held
                                        & (self._channel == channel)):
                    self._release(v)
        elif number == 123:  # all notes off: releases
            self._pedal[channel] = False
            for v in np.flatnonzero(self._active & ~self._released & (self._channel == channel)):
                self._release(v)
        elif number == 120:  # all sound off: at once
            self._active[self._channel == channel] = False

    def pitch_bend(self, channel: int, value: int) -> None:
        """``value`` is the 14-bit bend, 8192 at rest."""
        self._bend[channel] = 2.0 ** (BEND_RANGE * (int(value) - 8192) / 8192.0 / 12.0)

    def send(self, data: list[int]) -> None:
        """A raw MIDI message."""
        if not data:
            return
        status, channel = data[0] & 0xF0, data[0] & 0x0F
        if status == 0x90 and len(data) >= 3:
            self.note_on(channel, data[1], data[2])
        elif status == 0x80 and len(data) >= 3:
            self.note_off(channel, data[1])
        elif status == 0xB0 and len(data) >= 3:
            self.control(channel, data[1], data[2])
        elif status == 0xE0 and len(data) >= 3:
            self.pitch_bend(channel, (data[2] << 7) | data[1])

    def release_all(self) -> None:
        """Every voice into its release (the pedal lifted on every channel)."""
        self._pedal[:] = False
        for v in np.flatnonzero(self._active & ~self._released):
            self._release(v)

    def silence(self) -> None:
        self._active[:] = False
        self._pedal[:] = False

    def _level(self, v: int, age: np.ndarray) -> np.ndarray:
        """The envelope (attack, decay to sustain) at ``age`` samples of voice ``v``."""
        inst = self.instrument
        t = age / self.sample_rate
        a = max(inst.attack, 1e-4)
        decay = inst.sustain + (1 - inst.sustain) * np.exp(-(t - a) / max(inst.decay, 1e-4))
        return np.where(t < a, t / a, decay)

    def _release(self, v: int, seconds: float | None = None) -> None:
        seconds = self.instrument.release if seconds is None else seconds
        self._rel_level[v] = float(self._level(v, np.array([self._age[v]], np.float64))[0])
        self._released[v] = True
        self._pedal_held[v] = False
        self._rel_age[v] = 0
        self._rel_len[v] = max(1, int(round(seconds * self.sample_rate)))

    # ------------------------------------------------------------------ audio
    def render(self, frames: int, out: np.ndarray | None = None) -> np.ndarray:
        """Mix the next ``frames`` samples of every voice into ``out`` (mono float32)."""
        if out is None:
            out = np.zeros(frames, np.float32)
        else:
            out[:frames] = 0.0
        if frames > self._ramp.shape[0]:
            self._ramp = np.arange(frames, dtype=np.float64)
        ramp = self._ramp[:frames]
        for v in np.flatnonzero(self._active):
            table = self._tables[self._table[v]]
            step = self._step[v] * self._bend[self._channel[v]]
            loop = self._loops[self._table[v]]
            if loop is not None and not loop[2] and self._released[v]:
                loop = None  # a loop_sustain voice, let go: on to the sample's end
            idx = self._pos[v] + step * ramp
            if loop is not None:
                start, end = loop[0], loop[1]
                idx = np.where(idx >= end, start + np.mod(idx - start, end - start), idx)
            i0 = idx.astype(np.int64)
            last = table.shape[0] - 1
            inside = i0 < last
            i0 = np.minimum(i0, last - 1)
            frac = idx - i0
            i1 = i0 + 1
            if loop is not None:  # the sample after the loop's last is its first
                i1 = np.where(i1 >= end, i1 - (end - start), i1)
            s = table[i0] * (1.0 - frac) + table[i1] * frac
            s[~inside] = 0.0
            if self._released[v]:
                rel = self._rel_age[v] + ramp
                env = self._rel_level[v] * np.maximum(0.0, 1.0 - rel / self._rel_len[v])
                self._rel_age[v] += frames
                done = self._rel_age[v] >= self._rel_len[v]
            else:
                env = self._level(v, self._age[v] + ramp)
                done = False
            out[:frames] += (s * env * (self._amp[v] * self.gain)).astype(np.float32)
            self._pos[v] += step * frames
            if loop is not None and self._pos[v] >= loop[1]:
                self._pos[v] = loop[0] + (self._pos[v] - loop[0]) % (loop[1] - loop[0])
            self._age[v] += frames
            if done or not inside[-1]:
                self._active[v] = False
        return out


def render_sequence(instrument: MorphInstrument, seq: NoteSequence, sample_rate: int = 44100,
                    tail: float = 1.0, max_voices: int = 64, gain: float = 0.5) -> Audio:
    """``seq`` played on ``instrument`` (every event at its exact sample), stereo, with
    ``tail`` seconds after the last note-off for the releases. Drum notes are left out."""
    voices = SamplerVoices(instrument, sample_rate, max_voices=max_voices, gain=gain)
    return play_sequence(voices, seq, tail)


def play_sequence(voices: SamplerVoices | Any, seq: NoteSequence, tail: float = 1.0) -> Audio:
    """``seq`` played on ``voices`` (:class:`SamplerVoices` or any with its event API and a
    ``sample_rate``: :class:`models.ddsp.voices.DDSPVoices`), every event at its exact sample;
    stereo, with ``tail`` seconds after the last note-off, peaks above 0.99 scaled down."""
    if not 0 <= tail <= 30:
        raise CadenzaError(f"the tail is 0..30 s, not {tail}")
    times = [t for n in seq.notes for t in (n.start, n.end)]
    if times and not all(math.isfinite(t) and t >= 0 for t in times):
        raise CadenzaError("the sequence has NaN, infinite or negative times; cannot render it")
    limits.sequence_length(max(times, default=0.0) + tail, "the rendering",
                           limits.RENDER_MAX_SECONDS)
    sample_rate = int(voices.sample_rate)
    events: list[tuple[int, int, list[int]]] = []  # (sample, order, message)
    for n in seq.notes:
        if n.is_drum:
            continue
        ch = n.instrument % 16
        if ch == DRUM_CHANNEL:
            ch = (ch + 1) % 16
        events.append((int(round(n.start * sample_rate)), 2, [0x90 | ch, n.pitch, n.velocity]))
        events.append((int(round(n.end * sample_rate)), 0, [0x80 | ch, n.pitch, 0]))
    for c in getattr(seq, "control_changes", []):
        if not c.is_drum and c.number in (64, 123):
            events.append((int(round(c.time * sample_rate)), 1,
                           [0xB0 | (c.instrument % 16), c.number, c.value]))
    events.sort(key=lambda e: (e[0], e[1]))
    end = max((e[0] for e in events), default=0) + int(round(tail * sample_rate))
    out = np.zeros(end, np.float32)
    pos = 0
    for when, _order, msg in events:
        if when > pos:
            voices.render(when - pos, out[pos:when])
            pos = when
        voices.send(msg)
    if end > pos:
        voices.render(end - pos, out[pos:end])
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > 0.99:
        out *= np.float32(0.99 / peak)
    return Audio(np.repeat(out[:, None], 2, axis=1), int(sample_rate))
