"""MIDI voicing shared by the instruments played note by note (numpy only).

:class:`Voices` is the event side of a polyphonic instrument: ``note_on``, ``note_off``,
``control`` (the sustain pedal, CC 64; all-notes-off, CC 123; all-sound-off, CC 120),
``pitch_bend`` (+-2 semitones), ``send`` (a raw MIDI message), ``release_all`` and ``silence``,
per channel; drum-channel notes are ignored. A re-struck key's old voice fades in
:data:`QUICK_RELEASE_S`; when every voice is busy the oldest one (a released one first) is taken
over. A subclass makes the sound: :meth:`Voices._start` sets up a new voice, :meth:`Voices._release`
begins its release, ``render(frames, out, only=None)`` mixes the voices (or only some: those
that :meth:`Voices.take_fresh` names, for a live player that adds a new note to audio it has
queued already)
(:class:`models.nsynth.voices.SamplerVoices`, :class:`models.ddsp.voices.DDSPVoices`).
"""

from __future__ import annotations

import numpy as np

from models.errors import CadenzaError
from models.sequence import DRUM_CHANNEL

BEND_RANGE = 2.0  # semitones at full pitch-bend
QUICK_RELEASE_S = 0.01  # a re-struck or stolen voice fades this fast, without a click


class Voices:
    """The per-voice note state (channel, pitch, held by key or pedal, age in samples) and the
    per-channel pedal and bend of ``max_voices`` voices at ``sample_rate``; no sound."""

    def __init__(self, sample_rate: int, max_voices: int, gain: float) -> None:
        if not 8000 <= int(sample_rate) <= 192000:
            raise CadenzaError(f"sample rate must be 8000..192000 Hz, not {sample_rate}")
        if max_voices < 1:
            raise CadenzaError("max_voices must be >= 1")
        self.sample_rate = int(sample_rate)
        self.gain = float(gain)
        n = int(max_voices)
        self._active = np.zeros(n, bool)
        self._channel = np.zeros(n, np.int64)
        self._pitch = np.zeros(n, np.int64)
        self._serial = np.zeros(n, np.int64)
        self._released = np.zeros(n, bool)
        self._pedal_held = np.zeros(n, bool)  # key up, held by the sustain pedal
        self._age = np.zeros(n, np.int64)  # samples since the note-on
        self._fresh = np.zeros(n, bool)  # begun since the last full render (take_fresh)
        self._count = 0
        self._bend = np.ones(16, np.float64)
        self._pedal = np.zeros(16, bool)

    # ------------------------------------------------------------------ the sound (subclasses)
    def _start(self, v: int, channel: int, pitch: int, velocity: int) -> None:
        """Voice ``v`` begins ``pitch`` at ``velocity`` (its note state is set already)."""
        raise NotImplementedError

    def _release(self, v: int, seconds: float | None = None) -> None:
        """Voice ``v`` into its release: the instrument's own, or ``seconds`` long."""
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    @property
    def max_voices(self) -> int:
        return int(self._active.shape[0])

    @property
    def active_voices(self) -> int:
        return int(self._active.sum())

    def take_fresh(self) -> np.ndarray:
        """The voices begun since the last full ``render`` (and since the last call): a live
        player renders them alone (``render(..., only=)``) into audio it has queued already, so
        a key sounds from the next block the device takes rather than after the queue."""
        fresh = np.flatnonzero(self._fresh & self._active)
        self._fresh[:] = False
        return fresh

    def _rendering(self, only: np.ndarray | None) -> np.ndarray:
        """The voices a render mixes: every active one (and none is fresh any more), or the
        active ones of ``only``."""
        if only is None:
            self._fresh[:] = False
            return np.flatnonzero(self._active)
        only = np.asarray(only, np.int64)
        return only[self._active[only]]

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
            self._release(int(v), QUICK_RELEASE_S)
        free = np.flatnonzero(~self._active)
        if free.size:
            v = int(free[0])
        else:  # steal: the oldest released voice, else the oldest
            released = np.flatnonzero(self._released)
            pool = released if released.size else np.arange(self.max_voices)
            v = int(pool[np.argmin(self._serial[pool])])
        self._active[v] = True
        self._channel[v] = channel
        self._pitch[v] = pitch
        self._released[v] = False
        self._pedal_held[v] = False
        self._age[v] = 0
        self._fresh[v] = True
        self._start(v, channel, pitch, velocity)
        self._count += 1
        self._serial[v] = self._count

    def note_off(self, channel: int, pitch: int) -> None:
        hit = self._active & ~self._released & ~self._pedal_held & (self._channel == channel) \
            & (self._pitch == pitch)
        for v in np.flatnonzero(hit):
            if self._pedal[channel]:
                self._pedal_held[v] = True
            else:
                self._release(int(v))

    def control(self, channel: int, number: int, value: int) -> None:
        if number == 64:
            down = value >= 64
            self._pedal[channel] = down
            if not down:
                for v in np.flatnonzero(self._active & self._pedal_held
                                        & (self._channel == channel)):
                    self._release(int(v))
        elif number == 123:  # all notes off: releases
            self._pedal[channel] = False
            for v in np.flatnonzero(self._active & ~self._released & (self._channel == channel)):
                self._release(int(v))
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
            self._release(int(v))

    def silence(self) -> None:
        self._active[:] = False
        self._pedal[:] = False
