"""Sampler voices: a morph instrument played note by note and mixed block by block (numpy only).

A voice reads the rendered note of the nearest key center (resampled once to the output rate)
with a fractional step of ``2 ** (semitones / 12)`` and linear interpolation, as a hardware
sampler does, under the instrument's ADSR envelope scaled by velocity. A note with a sustain
loop (the SFZ's ``loop_mode``/``loop_start``/``loop_end``) wraps from the loop's end back to its
start: ``loop_continuous`` for as long as the voice sounds (so a held key sustains, and the
release fades the loop), ``loop_sustain`` only until the key (or pedal) lets go. The sustain pedal
(CC 64), all-notes-off (CC 123), all-sound-off (CC 120) and pitch bend (+-2 semitones) work per
channel; drum-channel notes are ignored. When every voice is busy the oldest one (a released one
first) is taken over. (The events are :class:`models.voicing.Voices`'s, which
:class:`models.ddsp.voices.DDSPVoices` shares.)

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
from models.voicing import Voices

DEFAULT_VOICES = 32


class SamplerVoices(Voices):
    """Polyphonic playing of one :class:`MorphInstrument` at ``sample_rate`` (the MIDI events
    are :class:`models.voicing.Voices`'s)."""

    def __init__(self, instrument: MorphInstrument, sample_rate: int,
                 max_voices: int = DEFAULT_VOICES, gain: float = 0.5) -> None:
        super().__init__(sample_rate, max_voices, gain)
        if not instrument.samples:
            raise CadenzaError("the instrument has no notes")
        self.instrument = instrument
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
        n = self.max_voices
        self._table = np.zeros(n, np.int64)
        self._pos = np.zeros(n, np.float64)
        self._step = np.zeros(n, np.float64)
        self._amp = np.zeros(n, np.float32)
        self._rel_age = np.zeros(n, np.int64)  # samples since the release began
        self._rel_len = np.ones(n, np.int64)
        self._rel_level = np.zeros(n, np.float32)
        self._ramp = np.arange(1 << 12, dtype=np.float64)

    # ------------------------------------------------------------------ the sound
    def _start(self, v: int, channel: int, pitch: int, velocity: int) -> None:
        key = int(self._key_of[pitch])
        self._table[v] = key
        self._pos[v] = 0.0
        self._step[v] = 2.0 ** ((pitch - self._center[key]) / 12.0)
        self._amp[v] = (min(int(velocity), 127) / 127.0) ** 2

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
    def render(self, frames: int, out: np.ndarray | None = None,
               only: np.ndarray | None = None) -> np.ndarray:
        """Mix the next ``frames`` samples of every voice (or of the voices ``only``) into
        ``out`` (mono float32)."""
        if out is None:
            out = np.zeros(frames, np.float32)
        else:
            out[:frames] = 0.0
        voices = self._rendering(only)
        if frames <= 0:
            return out
        if frames > self._ramp.shape[0]:
            self._ramp = np.arange(frames, dtype=np.float64)
        ramp = self._ramp[:frames]
        for v in voices:
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
