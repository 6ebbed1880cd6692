"""The morph instrument played live: sampler voices rendered onto a bus of the audio engine.

:class:`SamplerSynth` is a sink like :class:`app.transport.LiveSynth` (``send``, ``panic``,
``note_on``/``note_off``), so the MIDI keyboard, the :class:`~app.transport.Transport`, the
scheduler and the duet play a morph instrument exactly as they play FluidSynth. The voices are
:class:`models.nsynth.voices.SamplerVoices` (numpy); this class adds the render thread and the
lock. ``set_instrument`` swaps in a newly rendered instrument while it plays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.transport import LiveVoices
from models.nsynth.instrument import MorphInstrument
from models.nsynth.voices import DEFAULT_VOICES, SamplerVoices

__all__ = ["SamplerSynth"]


class SamplerSynth(LiveVoices):
    """A :class:`MorphInstrument` on a started :class:`~app.audio_engine.AudioEngine`."""

    thread_name = "cadenza-sampler"

    def __init__(self, engine: Any, instrument: MorphInstrument, gain: float = 0.5,
                 max_voices: int = DEFAULT_VOICES) -> None:
        super().__init__(engine)
        self.gain = float(gain)
        self.max_voices = int(max_voices)
        try:
            self._voices: SamplerVoices | None = SamplerVoices(
                instrument, self.sample_rate, max_voices=self.max_voices, gain=self.gain)
        except BaseException:
            self.bus.close()
            raise
        self._mono = np.zeros(engine.blocksize, np.float32)
        self._start()

    @property
    def instrument(self) -> MorphInstrument | None:
        voices = self._voices
        return voices.instrument if voices is not None else None

    @property
    def active_voices(self) -> int:
        with self._lock:
            return self._voices.active_voices if self._voices is not None else 0

    def set_instrument(self, instrument: MorphInstrument) -> None:
        """Play ``instrument`` from now on (what sounds now is cut)."""
        voices = SamplerVoices(instrument, self.sample_rate, max_voices=self.max_voices,
                               gain=self.gain)  # the resampling happens outside the lock
        with self._lock:
            if self._voices is None:
                return
            self._voices = voices
            self._held.clear()

    # ------------------------------------------------------------------ sink
    def _apply(self, data: list[int]) -> bool:
        if self._voices is None:
            return False
        self._voices.send(data)
        return True

    def panic(self) -> None:
        with self._lock:
            if self._voices is None:
                return
            self._voices.release_all()
            self._held.clear()

    # ------------------------------------------------------------------ render thread
    def _render(self, buf: np.ndarray) -> bool:
        if self._voices is None:
            return False
        mono = self._voices.render(buf.shape[0], self._mono)
        buf[:, 0] = mono
        buf[:, 1] = mono
        return True

    def _closed(self) -> None:
        self._voices = None
