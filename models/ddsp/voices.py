"""Live DDSP voices: a morph played note by note straight from the model (numpy only).

No instrument is rendered beforehand: every voice runs the decoder of a
:class:`models.ddsp.morph.DDSPMorpher` frame by frame with a GRU state of its own, on inputs
made from 2 to 4 source sounds:

* the **timbre** ``z`` is the mix of the sources' embeddings at the note's age (the attack of
  the sources, then held at each source's sustain frame while the key or the pedal holds);
* the **loudness** is the mix of the sources' loudness curves over the note's age (their
  attack, then held at their sustain level), plus a velocity offset in dB; after the note-off it
  follows the sources' own decay (their loudness after their release point), at least
  :data:`MIN_RELEASE_DB_PER_S` dB per second, and the voice fades out over the last part of it.
  Loudness curves mix as :meth:`DDSPMorpher.guide` mixes them
  (:func:`models.ddsp.synth.mix_db`): a mix decays between its sources, and a source that
  falls silent leaves the others sounding, lower, not silent;
* the **pitch** is the key's, times the channel's pitch bend (+-2 semitones).

:meth:`DDSPVoices.set_mix` (or :meth:`~DDSPVoices.set_xy`, the Morph pad's layout) moves the
timbre of the sounding notes: the weights glide there (:data:`MIX_GLIDE_S`) and every new frame
takes them. A voice computes a decoder frame every ``hop * rate / model_rate`` output samples
(8 ms) when its samples need it: all the voices that need one in a block share one
:meth:`~models.ddsp.engine.DDSPEngine.controls` call. Within a frame the controls are
interpolated linearly; the harmonic phase runs on across blocks; the noise comes from the
engine's band-limited bank at the output rate.

The event API (``note_on``, ``note_off``, ``control`` 64/120/123, ``pitch_bend``, ``send``,
``release_all``, ``silence``, ``sounding``, ``active_voices``, ``max_voices``) is
:class:`models.voicing.Voices`'s, which :class:`models.nsynth.voices.SamplerVoices` shares, so
:mod:`app.sampler`'s render thread and :func:`models.nsynth.voices.play_sequence` drive either.
No threads, no locks here.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.compute import blas_controller, single_blas_thread
from models.ddsp.config import F0_MIN_HZ, scale_f0, scale_loudness
from models.ddsp.synth import LOUDNESS_FLOOR_DB, mix_db
from models.errors import CadenzaError
from models.voicing import Voices

DEFAULT_VOICES = 16
MIX_GLIDE_S = 0.03  # the time constant of the weights' glide after set_mix
SUSTAIN_AFTER_PEAK_S = 0.12  # a source's sustain frame: this long after its loudest frame
RELEASE_MAX_S = 1.0
RELEASE_MIN_S = 0.03
MIN_RELEASE_DB_PER_S = 60.0
RELEASE_END_DB = -50.0  # a release ends this far below its starting level
FADE_PART = 0.3  # the last part of a release fades out (the decoder may not go fully silent)
VELOCITY_DB = 40.0  # velocity v plays at VELOCITY_DB * log10(v / 127) dB
VELOCITY_MIN_DB = -30.0
CHUNK = 1024  # the most samples rendered at once (longer renders are split)


def midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((float(pitch) - 69.0) / 12.0)


def envelope_points(loudness: np.ndarray, frame_rate: float) -> tuple[int, int]:
    """``(sustain frame, release frame)`` of a loudness curve (dB per frame): the sustain frame
    is :data:`SUSTAIN_AFTER_PEAK_S` after the loudest frame; the release frame is the last one
    within 6 dB of the sustain level (where the final decay begins)."""
    loud = np.asarray(loudness, np.float64)
    n = loud.shape[0]
    peak = int(np.argmax(loud))
    sustain = min(n - 1, peak + int(round(SUSTAIN_AFTER_PEAK_S * frame_rate)))
    level = loud[sustain]
    after = np.flatnonzero(loud[sustain:] >= level - 6.0)
    release = sustain + (int(after[-1]) if after.size else 0)
    return sustain, release


def release_curve(loudness: np.ndarray, release: int, frames: int, frame_rate: float
                  ) -> np.ndarray:
    """``(frames,)`` dB relative to the release frame's level: the source's own decay after
    ``release`` (never rising), at least :data:`MIN_RELEASE_DB_PER_S` dB a second."""
    loud = np.asarray(loudness, np.float64)
    tail = loud[release:release + frames] - loud[release]
    if tail.shape[0] < frames:
        tail = np.pad(tail, (0, frames - tail.shape[0]), mode="edge")
    tail = np.minimum.accumulate(np.minimum(tail, 0.0))
    floor = -np.arange(frames) * (MIN_RELEASE_DB_PER_S / frame_rate)
    return np.minimum(tail, floor).astype(np.float32)


def pad_weights(count: int, x: float, y: float) -> np.ndarray:
    """The weights of 2 to 4 sources at (x, y) on the Morph pad (two mix along x; with three, D
    is C: the bottom edge is all C; four are the corners A, B top, C, D bottom)."""
    x = min(max(float(x), 0.0), 1.0)
    y = min(max(float(y), 0.0), 1.0)
    if count == 2:
        return np.array([1.0 - x, x])
    corners = [(1 - x) * (1 - y), x * (1 - y), (1 - x) * y, x * y]
    if count == 3:
        return np.array([corners[0], corners[1], corners[2] + corners[3]])
    if count == 4:
        return np.array(corners)
    raise CadenzaError(f"a live morph takes 2 to 4 sounds, not {count}")


class DDSPVoices(Voices):
    """Polyphonic live playing of a DDSP morph at ``sample_rate``.

    ``morpher``: a :class:`models.ddsp.morph.DDSPMorpher` (its ``engine_np`` and ``config``);
    ``embeddings`` ``(sources, frames, latent)`` and ``loudness`` ``(sources, frames)`` (dB) of
    the prepared sources (:meth:`from_sounds` makes them); ``weights``: the mix, one per source.
    """

    def __init__(self, morpher: Any, embeddings: np.ndarray, loudness: np.ndarray,
                 weights: Sequence[float], sample_rate: int,
                 max_voices: int = DEFAULT_VOICES, gain: float = 0.5) -> None:
        super().__init__(sample_rate, max_voices, gain)
        emb = np.asarray(embeddings, np.float32)
        loud = np.asarray(loudness, np.float32)
        if emb.ndim != 3 or not 2 <= emb.shape[0] <= 4:
            raise CadenzaError("a live morph takes the embeddings of 2 to 4 sounds "
                               "(sources, frames, latent)")
        if loud.shape != emb.shape[:2]:
            raise CadenzaError(f"loudness {loud.shape} does not fit embeddings {emb.shape}")
        if not (np.isfinite(emb).all() and np.isfinite(loud).all()):
            raise CadenzaError("the sources' embeddings or loudness are NaN or infinite")
        self.engine = morpher.engine_np
        c = self.config = morpher.config
        if emb.shape[2] != c.latent_dim:
            raise CadenzaError(f"embeddings of size {emb.shape[2]}: the model takes "
                               f"{c.latent_dim}")
        self.hop = c.hop * self.sample_rate / c.sample_rate  # output samples per frame
        frame_rate = c.sample_rate / c.hop
        self._emb = emb
        self._loud = loud
        s = emb.shape[0]
        points = [envelope_points(loud[i], frame_rate) for i in range(s)]
        self._sustain = np.array([p[0] for p in points], np.int64)
        rel_frames = max(2, int(round(RELEASE_MAX_S * frame_rate)))
        self._rel_curve = np.stack([release_curve(loud[i], points[i][1], rel_frames, frame_rate)
                                    for i in range(s)])  # (sources, frames)
        self._rel_min = max(2, int(round(RELEASE_MIN_S * frame_rate)))
        self._src = np.arange(s)
        self._target = self._check_weights(weights)
        self._w = self._target.copy()
        # per voice
        n = self.max_voices
        self._slots = int(math.ceil(CHUNK / self.hop)) + 3  # frames kept per voice (a ring)
        k, b = c.n_harmonics, c.n_noise
        self._frames = np.zeros(n, np.int64)  # decoder frames computed
        self._rel_frame = np.zeros(n, np.int64)  # the first frame after the note-off
        self._rel_level = np.zeros(n, np.float32)  # dB at the note-off
        self._rel_age = np.zeros(n, np.int64)  # samples since the note-off
        self._rel_len = np.ones(n, np.int64)
        self._fade_len = np.ones(n, np.int64)
        self._last_loud = np.zeros(n, np.float32)
        self._vel_db = np.zeros(n, np.float32)
        self._f0 = np.zeros(n, np.float64)
        self._phase = np.zeros(n, np.float64)
        self._noise_pos = np.zeros(n, np.int64)
        self._state = self.engine.initial_state(n)
        self._harm = np.zeros((n, self._slots, k), np.float32)
        self._noise = np.zeros((n, self._slots, b), np.float32)
        self._bank = self.engine.bank(self.sample_rate)
        self._ramp = np.arange(CHUNK, dtype=np.float64)
        self._k = np.arange(1, k + 1, dtype=np.float32)
        self._blas: Any = None

    @classmethod
    def from_sounds(cls, morpher: Any, audios: Sequence[np.ndarray], weights: Sequence[float],
                    sample_rate: int, **kwargs: Any) -> DDSPVoices:
        """Voices on prepared sounds (``morpher.source_audio``: 4 s at the model's rate)."""
        sounds = list(audios)
        return cls(morpher, morpher.encode_batch(sounds), morpher.loudness(sounds), weights,
                   sample_rate, **kwargs)

    # ------------------------------------------------------------------ the mix
    def _check_weights(self, weights: Sequence[float]) -> np.ndarray:
        w = np.asarray(weights, np.float64).ravel()
        if w.shape[0] != self._emb.shape[0]:
            raise CadenzaError(f"{w.shape[0]} weights for {self._emb.shape[0]} sounds")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise CadenzaError("mix weights must be finite, >= 0 and not all 0")
        return w / w.sum()

    @property
    def weights(self) -> np.ndarray:
        """The mix the voices glide towards."""
        return self._target.copy()

    def set_mix(self, weights: Sequence[float]) -> None:
        """A new mix (one weight per source; normalised): sounding notes glide to it."""
        self._target = self._check_weights(weights)

    def set_xy(self, x: float, y: float = 0.0) -> None:
        """The mix at (x, y) on the Morph pad (:func:`pad_weights`)."""
        self._target = pad_weights(self._emb.shape[0], x, y)

    # ------------------------------------------------------------------ the sound
    def _start(self, v: int, channel: int, pitch: int, velocity: int) -> None:
        self._frames[v] = 0
        self._vel_db[v] = max(VELOCITY_MIN_DB, VELOCITY_DB * math.log10(min(velocity, 127) / 127))
        self._f0[v] = midi_hz(pitch) * self._bend[channel]
        self._phase[v] = 0.0
        self._noise_pos[v] = (v * 7919 + self._count * 104729) % self._bank.shape[0]
        self._state[v] = 0.0

    def _release(self, v: int, seconds: float | None = None) -> None:
        self._released[v] = True
        self._pedal_held[v] = False
        self._rel_frame[v] = self._frames[v]
        self._rel_level[v] = self._last_loud[v] if self._frames[v] else LOUDNESS_FLOOR_DB
        self._rel_age[v] = 0
        if seconds is None:  # the sources' decay, until RELEASE_END_DB below
            curve = mix_db(self._rel_curve.T, self._w)
            below = np.flatnonzero(curve <= RELEASE_END_DB)
            frames = max(self._rel_min, int(below[0]) if below.size else curve.shape[0])
            length = int(round(frames * self.hop))
            fade = int(round(length * FADE_PART))
        else:
            length = fade = int(round(seconds * self.sample_rate))
        self._rel_len[v] = max(1, length)
        self._fade_len[v] = max(1, fade)

    # ------------------------------------------------------------------ decoder
    def _step(self, voices: np.ndarray) -> None:
        """One decoder frame for each of ``voices`` (one batched call)."""
        c = self.config
        k = self._frames[voices]
        released = self._released[voices]
        held_frame = np.where(released, np.minimum(k, self._rel_frame[voices]), k)
        idx = np.minimum(held_frame[:, None], self._sustain[None, :])  # (n, sources)
        w = self._w.astype(np.float32)
        z = np.einsum("s,nsl->nl", w, self._emb[self._src[None, :], idx])
        loud = mix_db(self._loud[self._src[None, :], idx], w) + self._vel_db[voices]
        t = np.minimum(k - self._rel_frame[voices], self._rel_curve.shape[1] - 1)
        rel = self._rel_level[voices] + mix_db(self._rel_curve[:, np.maximum(t, 0)].T, w)
        loud = np.maximum(np.where(released, rel, loud), LOUDNESS_FLOOR_DB).astype(np.float32)
        f0 = self._target_f0(voices).astype(np.float32)
        cond = np.stack([scale_f0(f0), (f0 >= F0_MIN_HZ).astype(np.float32),
                         scale_loudness(loud)], axis=-1)[:, None, :]
        controls, state = self.engine.controls(z[:, None, :], cond, self._state[voices])
        self._state[voices] = state
        amps = self.engine.harmonic_amplitudes(controls, np.minimum(f0, c.nyquist)[:, None])
        slot = k % self._slots
        self._harm[voices, slot] = amps[:, 0]
        self._noise[voices, slot] = controls.noise[:, 0]
        self._last_loud[voices] = loud
        self._frames[voices] = k + 1

    def _target_f0(self, voices: np.ndarray) -> np.ndarray:
        pitch = self._pitch[voices].astype(np.float64)
        return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0) * self._bend[self._channel[voices]]

    # ------------------------------------------------------------------ audio
    def render(self, frames: int, out: np.ndarray | None = None,
               only: np.ndarray | None = None) -> np.ndarray:
        """Mix the next ``frames`` samples of every voice (or of the voices ``only``; the mix's
        glide then stays where it is) into ``out`` (mono float32)."""
        if out is None:
            out = np.zeros(frames, np.float32)
        else:
            out[:frames] = 0.0
        voices = self._rendering(only)
        pos = 0
        with self._one_blas_thread():
            while pos < frames:
                n = min(CHUNK, frames - pos)
                if only is None:
                    glide = 1.0 - math.exp(-n / (MIX_GLIDE_S * self.sample_rate))
                    self._w += (self._target - self._w) * glide
                    voices = np.flatnonzero(self._active)
                self._render_chunk(n, out[pos:pos + n], voices[self._active[voices]])
                pos += n
        return out

    def _one_blas_thread(self) -> contextlib.AbstractContextManager:
        """The decoder's products are small: on several BLAS threads they cost ten times the
        CPU (the threads spin), so a render runs on one (about 10 us to switch)."""
        if self._blas is None:
            self._blas = blas_controller()
        return single_blas_thread(self._blas)

    def _render_chunk(self, n: int, out: np.ndarray, act: np.ndarray) -> None:
        if not act.size:
            return
        ages = self._age[act]
        need = np.floor((ages + n - 1) / self.hop).astype(np.int64) + 2  # frames 0..need-1
        missing = need - self._frames[act]
        for j in range(int(missing.max(initial=0))):
            self._step(act[missing > j])
        ramp = self._ramp[:n]
        pos = (ages[:, None] + ramp[None, :]) / self.hop
        i0 = pos.astype(np.int64)
        frac = (pos - i0).astype(np.float32)
        s0 = (i0 % self._slots)[..., None]
        s1 = ((i0 + 1) % self._slots)[..., None]
        # f0 glides from the last block's to the bend's now; only harmonics that sound
        f0_new = self._target_f0(act)
        f0 = self._f0[act, None] + (f0_new - self._f0[act])[:, None] * ((ramp + 1.0) / n)
        top = int(min(self.config.n_harmonics,
                      math.ceil(self.config.nyquist / max(float(f0.min()), F0_MIN_HZ))))
        omega = (2.0 * np.pi / self.sample_rate) * f0
        phase = np.cumsum(omega, axis=1)
        phase += (self._phase[act] - omega[:, 0])[:, None]
        end = np.mod(phase[:, -1] + omega[:, -1], 2.0 * np.pi)
        base = np.mod(phase, 2.0 * np.pi).astype(np.float32)
        sines = np.sin(base[..., None] * self._k[:top])  # (voices, samples, harmonics)
        idx = (self._noise_pos[act, None] + ramp.astype(np.int64)[None, :]) \
            % self._bank.shape[0]
        # every sample against every frame in the ring, then the two frames around it mixed
        per_frame = np.matmul(sines, self._harm[act, :, :top].transpose(0, 2, 1))
        per_frame += np.matmul(self._bank[idx], self._noise[act].transpose(0, 2, 1))
        left = np.take_along_axis(per_frame, s0, axis=2)[..., 0]
        right = np.take_along_axis(per_frame, s1, axis=2)[..., 0]
        voice = left + (right - left) * frac
        released = self._released[act]
        if released.any():
            left = (self._rel_len[act] - self._rel_age[act])[:, None] - ramp[None, :]
            gate = np.clip(left / self._fade_len[act, None], 0.0, 1.0)
            gate[~released] = 1.0
            voice *= gate.astype(np.float32)
            self._rel_age[act[released]] += n
            done = act[released & (self._rel_age[act] >= self._rel_len[act])]
            self._active[done] = False
        out += voice.sum(axis=0) * np.float32(self.gain)
        self._phase[act] = end
        self._f0[act] = f0_new
        self._age[act] += n
        self._noise_pos[act] = (self._noise_pos[act] + n) % self._bank.shape[0]


class LiveMorph:
    """A morph to play live: a DDSP morpher and the embeddings ``(sources, frames, latent)``
    and loudness ``(sources, frames)`` of its 2 to 4 prepared sources, with the pad's position
    ``xy`` (what new voices and :meth:`render_sequence` start from). Made in the background
    (:meth:`from_sounds` encodes); :meth:`voices` is cheap once the noise bank of the rate is
    made (:meth:`warm`)."""

    def __init__(self, morpher: Any, embeddings: np.ndarray, loudness: np.ndarray,
                 xy: tuple[float, float] = (0.5, 0.5), name: str = "live morph") -> None:
        if getattr(morpher, "engine_np", None) is None:
            raise CadenzaError("live playing needs a DDSP model (an NSynth model makes an "
                               "instrument first)")
        self.morpher = morpher
        self.embeddings = np.asarray(embeddings, np.float32)
        self.loudness = np.asarray(loudness, np.float32)
        pad_weights(self.embeddings.shape[0], *xy)  # checks the count
        self.xy = (float(xy[0]), float(xy[1]))
        self.name = name

    @classmethod
    def from_sounds(cls, morpher: Any, audios: Sequence[np.ndarray],
                    xy: tuple[float, float] = (0.5, 0.5), name: str = "live morph"
                    ) -> LiveMorph:
        sounds = list(audios)
        if not 2 <= len(sounds) <= 4:
            raise CadenzaError(f"a live morph takes 2 to 4 sounds, not {len(sounds)}")
        return cls(morpher, morpher.encode_batch(sounds), morpher.loudness(sounds), xy, name)

    @property
    def sources(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def weights(self) -> np.ndarray:
        return pad_weights(self.sources, *self.xy)

    def warm(self, sample_rate: int) -> None:
        """Make the noise bank at ``sample_rate`` now (a fraction of a second), not when the
        first voices are made."""
        self.morpher.engine_np.bank(int(sample_rate))

    def voices(self, sample_rate: int, max_voices: int = DEFAULT_VOICES, gain: float = 0.5
               ) -> DDSPVoices:
        return DDSPVoices(self.morpher, self.embeddings, self.loudness, self.weights,
                          sample_rate, max_voices=max_voices, gain=gain)

    def render_sequence(self, seq: Any, sample_rate: int = 48000, tail: float = 1.0,
                        max_voices: int = 64, gain: float = 0.5) -> Any:
        """``seq`` played on the live voices at the pad's position now (stereo
        :class:`~models.audio_io.Audio`; see :func:`models.nsynth.voices.play_sequence`)."""
        from models.nsynth.voices import play_sequence

        return play_sequence(self.voices(sample_rate, max_voices, gain), seq, tail)
