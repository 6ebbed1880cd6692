"""Training the DDSP autoencoder: what the family gives the shared loop (:mod:`models.training`).

Data: a ``cadenza dataset nsynth`` folder (4-second notes at 16 kHz). Each note's frame features
(MFCCs and A-weighted loudness, :func:`models.ddsp.synth.frame_features`) are computed once when
the run starts, its fundamental by YIN (cached in the data folder, as for the WaveNet). Every
step draws ``batch_size`` random crops of ``crop_frames`` frames from the first 3.5 s of random
training notes, with a random stretch of the noise bank, and minimises the multi-scale spectral
loss between the crop's audio and its reconstruction; the learning rate warms up, then follows
a cosine to a tenth. Validation: the same loss on fixed crops of the validation split (unseen
instruments). Resuming, checkpoints, time budget, history and the card's commands are the
loop's.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models import files, training
from models.ddsp.config import (
    CONFIGS,
    FAMILY,
    TRAINING,
    DDSPConfig,
    DDSPTraining,
    decoder_inputs,
    scale_mfcc,
)
from models.ddsp.synth import frame_features, noise_bank
from models.errors import CadenzaError
from models.nsynth.dataset import card_figures, load_split, note_f0s, read_manifest


@dataclass
class TrainResult:
    step: int
    loss: float
    val_loss: float
    seconds: float


@dataclass
class NoteFeatures:
    """One split: audio ``(notes, samples)`` float32, MFCCs ``(notes, frames, n_mfcc)``
    (scaled), loudness in dB ``(notes, frames)`` and each note's fundamental (Hz, 0 unvoiced)."""

    audio: np.ndarray
    mfcc: np.ndarray
    loudness: np.ndarray
    f0: np.ndarray

    @classmethod
    def of(cls, audio: np.ndarray, f0: np.ndarray, config: DDSPConfig) -> NoteFeatures:
        frames = audio.shape[1] // config.hop
        mfcc, loud = frame_features(audio, config.sample_rate, config.hop, config.n_fft,
                                    config.n_mels, config.n_mfcc, frames)
        mfcc = scale_mfcc(mfcc)
        f0 = np.where(np.isfinite(f0), f0, 0.0).astype(np.float32)
        return cls(audio, mfcc, loud, f0)

    @classmethod
    def cached(cls, directory: Path, split: str, audio: np.ndarray, f0: np.ndarray,
               config: DDSPConfig) -> NoteFeatures:
        """:meth:`of` for a split of a data set, its features cached in the data folder (when
        it is writable) under a name that holds every setting they depend on."""
        x = audio.astype(np.float32) / 32768.0
        name = (f"ddsp-{split}-r{config.sample_rate}-h{config.hop}-f{config.n_fft}"
                f"-m{config.n_mels}-c{config.n_mfcc}-n{audio.shape[0]}.npz")
        path = Path(directory) / name
        if path.is_file():
            with contextlib.suppress(OSError, ValueError, KeyError):
                with np.load(path) as saved:
                    mfcc, loud = saved["mfcc"].astype(np.float32), saved["loudness"]
                if mfcc.shape[:2] == loud.shape == (audio.shape[0], audio.shape[1] // config.hop):
                    return cls(x, mfcc, loud, np.where(np.isfinite(f0), f0, 0.0).astype(
                        np.float32))
        feats = cls.of(x, f0, config)
        with contextlib.suppress(CadenzaError, OSError):  # a cache: the next run makes it again
            with files.replacing(path) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, mfcc=feats.mfcc.astype(np.float16), loudness=feats.loudness)
        feats.mfcc = feats.mfcc.astype(np.float16).astype(np.float32)  # as a resumed run reads
        return feats

    def crops(self, rng: np.random.Generator, batch: int, frames: int, config: DDSPConfig,
              bank: np.ndarray, max_start: int) -> tuple[tuple, np.ndarray]:
        """Random crops: the model's inputs (``frames + 1`` frames, ``frames * hop`` samples)
        and the target audio."""
        hop = config.hop
        idx = rng.integers(0, self.audio.shape[0], size=batch)
        hi = max(1, min(max_start, self.mfcc.shape[1] - frames - 1) + 1)
        starts = rng.integers(0, hi, size=batch)
        offsets = rng.integers(0, bank.shape[0], size=batch)
        n = frames * hop
        mfcc = np.stack([self.mfcc[i, s:s + frames + 1] for i, s in zip(idx, starts, strict=True)])
        loud = np.stack([self.loudness[i, s:s + frames + 1]
                         for i, s in zip(idx, starts, strict=True)])
        f0 = np.repeat(self.f0[idx][:, None], frames + 1, axis=1)
        target = np.stack([self.audio[i, s * hop:s * hop + n]
                           for i, s in zip(idx, starts, strict=True)])
        noise = np.stack([bank[(o + np.arange(n)) % bank.shape[0]] for o in offsets])
        return (mfcc, decoder_inputs(f0, loud), f0, noise), target.astype(np.float32)


def _card(config: DDSPConfig, settings: DDSPTraining, info: dict[str, Any]) -> str:
    metrics = info.get("metrics", {})
    loss, val = metrics.get("loss", float("nan")), metrics.get("val_loss", float("nan"))
    commands = "\n".join("    " + line for line in info.get("commands") or ["?"])
    return (
        "# DDSP autoencoder\n\n"
        f"Morph model (DDSP: harmonic-plus-noise synthesizer driven by a GRU decoder, "
        f"{config.latent_dim}-dim timbre embedding every {config.hop} samples at "
        f"{config.sample_rate} Hz), trained {info.get('step')} steps.\n\n"
        f"- data: {info.get('data')} ({info.get('train_notes')} training / "
        f"{info.get('val_notes')} validation notes; validation programs "
        f"{info.get('valid_programs')})\n"
        f"- batches of {settings.batch_size} crops of {settings.crop_frames} frames; Adam, "
        f"learning rate {settings.learning_rate:g} (warm-up, cosine decay), clip norm 1\n"
        f"- multi-scale spectral loss: training {loss:.4f}, validation {val:.4f}\n"
        f"- {info.get('minutes', 0):.1f} min on {info.get('device')} "
        f"({info.get('backend')} backend)\n\n"
        f"## Training\n\n{commands}\n"
    )


class DDSPRecipe(training.Recipe):
    """The DDSP autoencoder's part of a training run (see :class:`models.training.Recipe`)."""

    family = FAMILY
    architecture_type = DDSPConfig
    settings_type = DDSPTraining
    resume_may_change = ("learning_rate", "batch_size")

    def __init__(self, data: Path, val_crops: int = 16, seed: int = 0) -> None:
        self.data, self.val_crops, self.seed = data, val_crops, seed

    def check(self, architecture: DDSPConfig, settings: DDSPTraining,
              source: Path | None) -> None:
        if not 2 <= settings.crop_frames <= architecture.note_frames - 2:
            raise CadenzaError(f"crop_frames must be 2..{architecture.note_frames - 2}, not "
                               f"{settings.crop_frames}")

    def load_data(self, architecture: DDSPConfig, settings: DDSPTraining, out: Path,
                  log: training.Log) -> dict[str, Any]:
        manifest = read_manifest(self.data)
        if int(manifest.get("sample_rate", 0)) != architecture.sample_rate:
            raise CadenzaError(f"{self.data} is at {manifest.get('sample_rate')} Hz, the model "
                               f"at {architecture.sample_rate}")

        def notes(split: str) -> NoteFeatures:
            audio, records = load_split(self.data, split)
            f0 = note_f0s(self.data, records, audio) if records else np.zeros(0)
            log(f"frame features of the {len(records)} {split} notes")
            return NoteFeatures.cached(self.data, split, audio, f0, architecture)

        self.notes = notes("train")
        if self.notes.audio.shape[0] == 0:
            raise CadenzaError(f"{self.data} has no training notes")
        valid = notes("valid")
        self.architecture, self.settings = architecture, settings
        self.bank = noise_bank(architecture.n_noise, architecture.nyquist,
                               architecture.sample_rate)
        self.max_start = int(3.5 * architecture.frame_rate) - settings.crop_frames
        source = valid if valid.audio.shape[0] else self.notes
        self.val = source.crops(np.random.default_rng(12345), self.val_crops,
                                settings.crop_frames, architecture, self.bank, self.max_start)
        return card_figures(self.data, manifest)

    def build(self, architecture: DDSPConfig, settings: DDSPTraining) -> Any:
        from models.ddsp.model import build_model

        return build_model(architecture)

    def saved_graph(self, model: Any) -> Any:
        return model

    def compile(self, model: Any, settings: DDSPTraining, steps: int) -> Any:
        from models.ddsp.model import spectral_loss

        return training.compile_warmup_cosine(model, spectral_loss, settings.learning_rate, steps)

    def batch(self, step: int) -> tuple[Any, Any]:
        return self.notes.crops(np.random.default_rng((self.seed, step)),
                                self.settings.batch_size, self.settings.crop_frames,
                                self.architecture, self.bank, self.max_start)

    def validate(self, model: Any) -> dict[str, Any]:
        return training.validation_loss(model, *self.val, self.settings.batch_size)

    def card(self, architecture: DDSPConfig, settings: DDSPTraining,
             info: dict[str, Any]) -> str:
        return _card(architecture, settings, info)


def train(
    data: str | Path,
    out: str | Path,
    steps: int = 1000,
    preset: str | None = None,
    settings: DDSPTraining | None = None,
    checkpoint_seconds: float = 180.0,
    eval_every: int = 50,
    val_crops: int = 16,
    seed: int = 0,
    fresh: bool = False,
    init: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    command: str = "",
    max_seconds: float | None = None,
    verbose: int = 1,
) -> TrainResult:
    """Train (or resume) into ``out``; returns the final step and losses.

    The architecture is ``preset``'s (small, tiny; default small) and the training settings
    ``settings`` or the preset's; with neither, a run in ``out`` is resumed as it is."""
    run = training.train_preset(
        DDSPRecipe(Path(data), val_crops, seed), out, CONFIGS, TRAINING, preset=preset,
        config=None, settings=settings, steps=steps, eval_every=eval_every,
        checkpoint_seconds=checkpoint_seconds, max_seconds=max_seconds, seed=seed, fresh=fresh,
        init=None if init is None else Path(init),
        command=command, log=log, verbose=verbose)
    return TrainResult(run.step, float(run.metrics.get("loss", math.nan)),
                       float(run.metrics.get("val_loss", math.nan)), run.seconds)
