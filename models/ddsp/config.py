"""The DDSP autoencoder's architecture and training settings, and its inputs' scaling (numpy).

Kept apart from :mod:`models.ddsp.model` (Keras) so that inference (:mod:`models.ddsp.engine`)
and the Morph commands never import a deep-learning backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAMILY = "ddsp"


@dataclass
class DDSPConfig:
    """The architecture: every size of the model; saved with the weights (``config.json``)."""

    sample_rate: int = 16000
    hop: int = 128
    n_fft: int = 1024
    n_mels: int = 64
    n_mfcc: int = 20
    latent_dim: int = 16
    enc_channels: int = 64
    enc_layers: int = 8
    enc_cycle: int = 4
    enc_kernel: int = 3
    hidden: int = 128
    gru_units: int = 192
    n_harmonics: int = 60
    n_noise: int = 32
    noise_bias: float = -5.0  # noise starts quiet
    note_seconds: float = 4.0

    @property
    def enc_dilations(self) -> list[int]:
        return [2 ** (i % self.enc_cycle) for i in range(self.enc_layers)]

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def note_samples(self) -> int:
        return int(round(self.note_seconds * self.sample_rate))

    @property
    def note_frames(self) -> int:
        return self.note_samples // self.hop

    @property
    def nyquist(self) -> float:
        """The highest frequency the training audio holds: harmonics and noise stop here."""
        return self.sample_rate / 2.0

    @property
    def controls(self) -> int:
        return 1 + self.n_harmonics + self.n_noise


def small_config() -> DDSPConfig:
    """CPU-sized (the shipped model)."""
    return DDSPConfig()


def tiny_config() -> DDSPConfig:
    """For tests only: trains in seconds."""
    return DDSPConfig(enc_channels=8, enc_layers=2, enc_cycle=2, hidden=16, gru_units=16,
                      n_harmonics=20, n_noise=8, latent_dim=4)


CONFIGS = {"small": small_config, "tiny": tiny_config}


@dataclass
class DDSPTraining:
    """Training settings; saved with each run in ``history.json`` (see :mod:`models.training`)."""

    crop_frames: int = 125  # frames per training crop (1 s at 16 kHz, hop 128)
    batch_size: int = 8
    learning_rate: float = 1e-3  # the peak of the warm-up and cosine decay


TRAINING = {
    "small": DDSPTraining(),
    "tiny": DDSPTraining(crop_frames=32, batch_size=4, learning_rate=3e-3),
}

F0_MIN_HZ = 20.0


def scale_f0(f0_hz: np.ndarray) -> np.ndarray:
    """The decoder's pitch input: ``log2(f0 / 440) / 4`` (about -1..1 over the piano), 0 when
    unvoiced; numpy, shared by training and inference."""
    f = np.asarray(f0_hz, np.float32)
    voiced = f >= F0_MIN_HZ
    return np.where(voiced, np.log2(np.maximum(f, F0_MIN_HZ) / 440.0) / 4.0, 0.0).astype(
        np.float32)


def scale_loudness(db: np.ndarray) -> np.ndarray:
    """The decoder's loudness input: ``db / 40 + 1`` (0 at -40 dB, 1 at 0 dB)."""
    return (np.asarray(db, np.float32) / 40.0 + 1.0).astype(np.float32)


def scale_mfcc(mfcc: np.ndarray) -> np.ndarray:
    """The encoder's input scale."""
    return (np.asarray(mfcc, np.float32) / 10.0).astype(np.float32)


def decoder_inputs(f0_hz: np.ndarray, loudness_db: np.ndarray) -> np.ndarray:
    """``(..., 3)``: scaled f0, voiced flag, scaled loudness (numpy)."""
    f0 = np.asarray(f0_hz, np.float32)
    voiced = (f0 >= F0_MIN_HZ).astype(np.float32)
    return np.stack([scale_f0(f0), voiced, scale_loudness(loudness_db)], axis=-1)
