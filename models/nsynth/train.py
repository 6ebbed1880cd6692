"""Training the WaveNet autoencoder: what the family gives the shared loop (:mod:`models.training`).

Every step draws ``batch_size`` random crops of ``crop`` samples (a multiple of the hop) from the
training notes, mostly from the held part, and minimises the cross-entropy of the 256-way mu-law
prediction of every sample given the samples before it and the crop's own embedding; the
learning rate warms up, then follows a cosine to a tenth over the run's steps. Validation loss
is measured every ``eval_every`` steps on a fixed set of crops from the validation split (unseen
instruments). Resuming (``--fresh`` starts over instead; a run resumed with other settings is
refused), checkpoints every ``checkpoint_seconds``, the time and step budget, history and the
card's commands are the loop's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models import training
from models.errors import CadenzaError
from models.nsynth.dataset import card_figures, load_split, note_f0s, read_manifest
from models.nsynth.model import (
    CONFIGS,
    FAMILY,
    TRAINING,
    NSynthConfig,
    NSynthTraining,
    lag_features,
    lag_period,
)
from models.nsynth.mulaw import mu_law_encode, scale_codes


@dataclass
class TrainResult:
    step: int
    loss: float
    val_loss: float
    seconds: float
    history: list[dict] = field(default_factory=list)


@dataclass
class _Notes:
    """One split as mu-law codes ``(notes, samples)`` and pitch periods in samples (0: none)."""

    codes: np.ndarray
    periods: np.ndarray

    def crops(self, rng: np.random.Generator, batch: int, crop: int, config: NSynthConfig,
              max_start: int) -> tuple[object, np.ndarray]:
        """Random crops as the model's input (with their pitch lag) and the target codes."""
        idx = rng.integers(0, self.codes.shape[0], size=batch)
        hi = max(1, min(max_start, self.codes.shape[1] - crop) + 1)
        starts = rng.integers(0, hi, size=batch)
        codes = np.stack([self.codes[i, s:s + crop] for i, s in zip(idx, starts, strict=True)])
        x = scale_codes(codes)
        if not config.pitch_lag:
            return x, codes
        lag = lag_features(scale_codes(self.codes[idx]), self.periods[idx], config.lag_taps,
                           start=starts, length=crop)
        return (x, lag), codes


def _card(config: NSynthConfig, settings: NSynthTraining, info: dict[str, Any]) -> str:
    metrics = info.get("metrics", {})
    loss, val = metrics.get("loss", float("nan")), metrics.get("val_loss", float("nan"))
    commands = "\n".join("    " + line for line in info.get("commands") or ["?"])
    return (
        "# NSynth WaveNet autoencoder\n\n"
        f"Morph model (WaveNet autoencoder, {config.latent_dim}-dim embedding every "
        f"{config.hop} samples at {config.sample_rate} Hz), trained {info.get('step')} steps.\n\n"
        f"- data: {info.get('data')} ({info.get('train_notes')} training / "
        f"{info.get('val_notes')} validation notes; validation programs "
        f"{info.get('valid_programs')})\n"
        f"- batches of {settings.batch_size} crops of {settings.crop} samples; Adam, learning "
        f"rate {settings.learning_rate:g} (warm-up, cosine decay), clip norm 1\n"
        f"- training loss {loss:.4f}, validation loss {val:.4f} (nats per sample)\n"
        f"- {info.get('minutes', 0):.1f} min on {info.get('device')} "
        f"({info.get('backend')} backend)\n\n"
        f"## Training\n\n{commands}\n"
    )


class NSynthRecipe(training.Recipe):
    """The WaveNet autoencoder's part of a training run (see :class:`models.training.Recipe`)."""

    family = FAMILY
    architecture_type = NSynthConfig
    settings_type = NSynthTraining
    strict_resume = True

    def __init__(self, data: Path, val_crops: int = 16, seed: int = 0) -> None:
        self.data, self.val_crops, self.seed = data, val_crops, seed

    def check(self, architecture: NSynthConfig, settings: NSynthTraining,
              source: Path | None) -> None:
        if settings.crop % architecture.hop or settings.crop < architecture.hop:
            raise CadenzaError(f"crop {settings.crop} must be a positive multiple of hop "
                               f"{architecture.hop}")

    def load_data(self, architecture: NSynthConfig, settings: NSynthTraining, out: Path,
                  log: training.Log) -> dict[str, Any]:
        manifest = read_manifest(self.data)

        def notes(split: str) -> _Notes:
            audio, records = load_split(self.data, split)
            periods = np.zeros(len(records))
            if architecture.pitch_lag and records:
                log(f"pitch of the {split} notes (cached in {self.data})")
                f0s = note_f0s(self.data, records, audio)
                periods = np.array([lag_period(f, architecture.sample_rate) for f in f0s])
            return _Notes(mu_law_encode(audio.astype(np.float32) / 32768.0), periods)

        self.notes = notes("train")
        if self.notes.codes.shape[0] == 0:
            raise CadenzaError(f"{self.data} has no training notes")
        valid = notes("valid")
        self.architecture, self.settings = architecture, settings
        # the held part and the start of the release: the quiet tail teaches little
        self.max_start = int(architecture.sample_rate * 3.5) - settings.crop
        inputs, codes = (valid if valid.codes.shape[0] else self.notes).crops(
            np.random.default_rng(12345), self.val_crops, settings.crop, architecture,
            self.max_start)
        self.val = (inputs, codes.astype(np.int32))
        return card_figures(self.data, manifest)

    def build(self, architecture: NSynthConfig, settings: NSynthTraining) -> Any:
        from models.nsynth.model import build_model

        return build_model(architecture)

    def saved_graph(self, model: Any) -> Any:
        return model

    def compile(self, model: Any, settings: NSynthTraining, steps: int) -> Any:
        import keras

        return training.compile_warmup_cosine(
            model, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            settings.learning_rate, steps)

    def batch(self, step: int) -> tuple[Any, Any]:
        inputs, codes = self.notes.crops(np.random.default_rng((self.seed, step)),
                                         self.settings.batch_size, self.settings.crop,
                                         self.architecture, self.max_start)
        return inputs, codes.astype(np.int32)

    def validate(self, model: Any) -> dict[str, Any]:
        return training.validation_loss(model, *self.val, self.settings.batch_size)

    def card(self, architecture: NSynthConfig, settings: NSynthTraining,
             info: dict[str, Any]) -> str:
        return _card(architecture, settings, info)


def train(
    data: str | Path,
    out: str | Path,
    config: NSynthConfig | None = None,
    steps: int = 1000,
    checkpoint_seconds: float = 180.0,
    eval_every: int = 50,
    val_crops: int = 16,
    seed: int = 0,
    fresh: bool = False,
    init: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    command: str = "",
    max_seconds: float | None = None,
    settings: NSynthTraining | None = None,
    preset: str | None = None,
    verbose: int = 1,
) -> TrainResult:
    """Train (or resume) into ``out``; returns the final step and losses.

    The architecture is ``config`` or ``preset``'s (small, full, tiny; default small), the
    training settings ``settings`` or ``preset``'s. What is given must match a run that ``out``
    holds (``fresh`` starts over instead); with none of the three, a run is resumed as it is.
    """
    run = training.train_preset(
        NSynthRecipe(Path(data), val_crops, seed), out, CONFIGS, TRAINING, preset=preset,
        config=config, settings=settings, steps=steps, eval_every=eval_every,
        checkpoint_seconds=checkpoint_seconds, max_seconds=max_seconds, seed=seed, fresh=fresh,
        init=None if init is None else Path(init),
        command=command, log=log, verbose=verbose)
    return TrainResult(run.step, float(run.metrics.get("loss", math.nan)),
                       float(run.metrics.get("val_loss", math.nan)), run.seconds,
                       training.read_history(Path(out))["log"])
