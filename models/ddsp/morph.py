"""The Morph API on a DDSP model: encode sounds to timbre embeddings, mix them, synthesize the mix.

    morpher = DDSPMorpher.load("models/shipped/ddsp-small")
    a = morpher.encode("flute.wav")              # (500, 16): one vector per 8 ms of 4 s
    b = morpher.encode("gm:church organ")
    f0, loudness = morpher.guide(sounds, [0.5, 0.5])
    audio = morpher.decode(mix([a, b], 0.5), f0=f0, envelope=loudness, sample_rate=48000)

The same operations as the WaveNet's :class:`models.nsynth.morph.Morpher` (sources, ``guide``,
``decode``), so the CLI, the app, instruments and evaluation take either. What differs:

* Inference is numpy (:class:`models.ddsp.engine.DDSPEngine`): loading reads the weights with
  h5py and never imports Keras.
* ``envelope`` is the decoder's loudness input (A-weighted dB per frame), not a level the output
  is turned down to: a mix plays with the weighted loudness of its sources.
* ``sample_rate`` renders at 44.1 or 48 kHz (or any rate) from the same frame controls.
* There is no sampling: ``temperature`` is ignored and ``seed`` only moves the noise bank.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models import limits
from models.audio_io import Audio
from models.compute import single_blas_thread
from models.ddsp.config import FAMILY, DDSPConfig, decoder_inputs, scale_mfcc
from models.ddsp.engine import DDSPEngine
from models.ddsp.synth import frame_features, mix_db
from models.errors import CadenzaError, Cancelled
from models.nsynth.morph import MorphModel, morph_f0

DEFAULT_LOUDNESS_DB = -25.0  # a held note of the training set, when no envelope is given


class DDSPMorpher(MorphModel):
    """A trained DDSP autoencoder with the Morph operations: the registry's façade for the
    "ddsp" family (``name``, ``family``, ``path``, ``config``, ``close()``)."""

    family = FAMILY
    renders_at_any_rate = True

    def __init__(self, engine: DDSPEngine, name: str = "ddsp",
                 path: str | Path | None = None) -> None:
        super().__init__(engine.config, name, path)
        self.config: DDSPConfig = engine.config
        self.engine_np = engine

    @classmethod
    def load(cls, directory: str | Path, engine: str = "numpy", name: str | None = None
             ) -> DDSPMorpher:
        from models.checkpoint import weights_path

        config, saved_name = cls._read_folder(directory, DDSPConfig)
        path = weights_path(directory)
        if not path.is_file():
            raise CadenzaError(f"model weights are missing: {path}")
        return cls(DDSPEngine.from_file(config, path), name=name or saved_name, path=directory)

    # ------------------------------------------------------------------ analysis
    def features(self, audios: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(scaled MFCCs (n, frames, n_mfcc), loudness dB (n, frames))`` of prepared sounds."""
        c = self.config
        x = np.stack([np.asarray(a, np.float32) for a in audios])
        with single_blas_thread():
            mfcc, loud = frame_features(x, c.sample_rate, c.hop, c.n_fft, c.n_mels, c.n_mfcc)
        return scale_mfcc(mfcc), loud

    def encode_batch(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        """Prepared audio (each 4 s at 16 kHz) -> embeddings ``(batch, frames, latent_dim)``."""
        mfcc = self.features(audios)[0]
        with single_blas_thread():
            return self.engine_np.encode(mfcc)

    def loudness(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        """A-weighted loudness in dB per frame ``(n, frames)`` of prepared sounds."""
        return self.features(audios)[1]

    def guide(self, audios: Sequence[np.ndarray], weights: Sequence[float]
              ) -> tuple[float, np.ndarray]:
        """What a mix of prepared sounds plays beside its embedding: the fundamental
        (:func:`models.nsynth.morph.morph_f0`) and the loudness per frame: the sources'
        A-weighted loudness mixed by :func:`models.ddsp.synth.mix_db`, as live voices mix it."""
        if len(audios) != len(weights):
            raise CadenzaError(f"{len(weights)} weights for {len(audios)} sounds")
        envelope = mix_db(self.loudness(audios).T, np.asarray(weights, np.float64))
        return morph_f0(self.pitches(audios), weights), envelope.astype(np.float32)

    # ------------------------------------------------------------------ synthesis
    def decode(
        self,
        embedding: np.ndarray,
        progress: Any = None,
        cancel: Any = None,
        temperature: float = 1.0,
        seed: int = 0,
        f0: float | Sequence[float] | None = None,
        envelope: np.ndarray | Sequence[np.ndarray] | None = None,
        sample_rate: int | None = None,
    ) -> Audio | list[Audio]:
        """Embedding ``(frames, latent)`` -> :class:`Audio` (mono, at ``sample_rate``, the
        model's 16 kHz by default); a batch ``(n, frames, latent)`` comes back as a list.

        ``f0``: the fundamental in Hz (one, or one per voice; None or NaN: unpitched, noise
        only). ``envelope``: the loudness in dB per frame (one for all or one per voice; None:
        a steady held note)."""
        emb = np.asarray(embedding, np.float32)
        if not np.isfinite(emb).all():
            raise CadenzaError("the embedding is NaN or infinite: the model's weights or its "
                               "input are broken")
        limits.temperature(temperature, "temperature", zero=True)
        limits.seed(seed, "the seed")
        rate = self.config.sample_rate if sample_rate is None else int(sample_rate)
        limits.sample_rate(rate)
        single = emb.ndim == 2
        if single:
            emb = emb[None]
        batch, frames = emb.shape[0], emb.shape[1]
        f0s = np.full(batch, np.nan) if f0 is None else np.asarray(f0, np.float64).reshape(-1)
        if f0s.shape[0] == 1:
            f0s = np.repeat(f0s, batch)
        if f0s.shape[0] != batch:
            raise CadenzaError(f"{f0s.shape[0]} pitches for {batch} embeddings")
        f0s = np.where(np.isfinite(f0s) & (f0s > 0), np.minimum(f0s, self.config.nyquist), 0.0)
        loud = np.full((batch, frames), DEFAULT_LOUDNESS_DB, np.float32)
        if envelope is not None:
            envs = [envelope] * batch if np.ndim(envelope) == 1 else list(envelope)
            if len(envs) != batch:
                raise CadenzaError(f"{len(envs)} envelopes for {batch} embeddings")
            for i, e in enumerate(envs):
                e = np.asarray(e, np.float32).ravel()[:frames]
                if e.size:
                    loud[i] = np.pad(e, (0, frames - e.size), mode="edge")
        if not np.isfinite(loud).all():
            raise CadenzaError("the loudness envelope is NaN or infinite")
        f0_frames = np.repeat(f0s[:, None], frames, axis=1).astype(np.float32)
        if cancel is not None and cancel():
            raise Cancelled("morph cancelled")
        with single_blas_thread():  # small products: one BLAS thread is many times faster
            controls, _ = self.engine_np.controls(emb, decoder_inputs(f0_frames, loud))
            if progress is not None:
                progress(0.5)
            audio = self.engine_np.synthesize(controls, f0_frames, rate, noise_offset=int(seed))
        if progress is not None:
            progress(1.0)
        audios = [Audio(x, rate) for x in audio]
        return audios[0] if single else audios

    def reconstruct(self, sources: Sequence[Any], **kwargs: Any) -> list[Audio]:
        audios = [self.source_audio(s) for s in sources]
        kwargs.setdefault("f0", self.pitches(audios))
        kwargs.setdefault("envelope", list(self.loudness(audios)))
        return self.decode(self.encode_batch(audios), **kwargs)  # type: ignore[return-value]
