"""The morph played live: sampler voices, or DDSP voices straight from the model, rendered onto
a bus of the audio engine.

:class:`SamplerSynth` is a sink like :class:`app.transport.LiveSynth` (``send``, ``panic``,
``note_on``/``note_off``), so the MIDI keyboard, the :class:`~app.transport.Transport`, the
scheduler and the duet play a morph instrument exactly as they play FluidSynth. The voices are
:class:`models.nsynth.voices.SamplerVoices` (numpy); this class adds the render thread and the
lock. ``set_instrument`` swaps in a newly rendered instrument while it plays.

:class:`DDSPSynth` is the same sink on :class:`models.ddsp.voices.DDSPVoices`: no instrument is
rendered, every voice runs the DDSP decoder on this class's render thread (the voices are made
there too), and ``set_xy`` moves the timbre of the notes that sound (the Morph pad while it is
dragged).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.transport import LiveVoices
from models.ddsp.voices import DEFAULT_VOICES as DDSP_VOICES
from models.ddsp.voices import DDSPVoices
from models.nsynth.instrument import MorphInstrument
from models.nsynth.voices import DEFAULT_VOICES, SamplerVoices

__all__ = ["DDSPSynth", "SamplerSynth"]


class SamplerSynth(LiveVoices):
    """A :class:`MorphInstrument` on a started :class:`~app.audio_engine.AudioEngine`."""

    thread_name = "cadenza-sampler"
    plays_drums = False  # one instrument: channel 10 is ignored

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
    def _voice_set(self) -> SamplerVoices | None:
        return self._voices

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


class DDSPSynth(LiveVoices):
    """A :class:`models.ddsp.voices.LiveMorph` played on a started
    :class:`~app.audio_engine.AudioEngine`. Messages sent before the render thread has made the
    voices (the first block) are played then. ``queue_blocks``: the bus's depth (the engine's
    live depth by default; see ``benchmarks/bench_morph_live.py`` for what 1 to 3 give)."""

    thread_name = "cadenza-live-morph"
    plays_drums = False

    def __init__(self, engine: Any, live: Any, gain: float = 0.5,
                 max_voices: int = DDSP_VOICES, queue_blocks: int | None = None) -> None:
        super().__init__(engine, queue_blocks)
        self.gain = float(gain)
        self.max_voices = int(max_voices)
        self.live = live
        self._next: Any = live  # made into voices by the render thread
        self._xy = tuple(live.xy)
        self._voices: DDSPVoices | None = None
        self._pending: list[list[int]] = []
        self._open = True
        self._mono = np.zeros(engine.blocksize, np.float32)
        self._start()

    @property
    def active_voices(self) -> int:
        with self._lock:
            return self._voices.active_voices if self._voices is not None else 0

    @property
    def weights(self) -> np.ndarray | None:
        """The mix the voices play (or glide to); None before the first block."""
        with self._lock:
            return self._voices.weights if self._voices is not None else None

    def set_xy(self, x: float, y: float = 0.0) -> None:
        """The pad's position: the sounding notes glide to that mix (cheap: no inference)."""
        with self._lock:
            self._xy = (float(x), float(y))
            if self._voices is not None:
                self._voices.set_xy(x, y)

    def set_live(self, live: Any) -> None:
        """Play other sources from the next block on (what sounds now is cut)."""
        with self._lock:
            if not self._open:
                return
            self.live = self._next = live
            self._xy = tuple(live.xy)
            self._held.clear()

    # ------------------------------------------------------------------ sink
    def _voice_set(self) -> DDSPVoices | None:
        return self._voices if self._next is None else None  # not voices about to go

    def _apply(self, data: list[int]) -> bool:
        if not self._open:
            return False
        if self._voices is None:
            self._pending.append(list(data))
        else:
            self._voices.send(data)
        return True

    def panic(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._pending.clear()
            if self._voices is not None:
                self._voices.release_all()
            self._held.clear()

    # ------------------------------------------------------------------ render thread
    def _render(self, buf: np.ndarray) -> bool:
        if not self._open:
            return False
        if self._next is not None:
            live, self._next = self._next, None
            self._voices = live.voices(self.sample_rate, max_voices=self.max_voices,
                                       gain=self.gain)
            self._voices.set_xy(*self._xy)
            pending, self._pending = self._pending, []
            for message in pending:
                self._voices.send(message)
        assert self._voices is not None
        mono = self._voices.render(buf.shape[0], self._mono)
        buf[:, 0] = mono
        buf[:, 1] = mono
        return True

    def _closed(self) -> None:
        self._open = False
        self._voices = None
        self._pending.clear()
