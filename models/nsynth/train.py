"""Training the WaveNet autoencoder: random crops, teacher forcing, resumable.

Every step draws ``batch_size`` random crops of ``crop`` samples (a multiple of the hop) from the
training notes, mostly from the held part, and minimises the cross-entropy of the 256-way mu-law
prediction of every sample given the samples before it and the crop's own embedding. Validation
loss is measured on a fixed set of crops from the validation split (unseen instruments).

The output folder is a model folder (``config.json``, ``model.weights.h5``, ``MODEL_CARD.md``)
plus ``train_state.npz`` (optimizer variables, step, random state, loss history): running the
same command again resumes where it stopped. Checkpoints are written every
``checkpoint_seconds`` and at the end. Works on any Keras backend; with several devices (JAX)
it uses ``keras.distribution.DataParallel``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from models.checkpoint import config_from_dict, read_model_dir, save_model_dir
from models.errors import CadenzaError
from models.nsynth.dataset import load_split, note_f0s, read_manifest
from models.nsynth.model import FAMILY, NSynthConfig, lag_features, lag_period
from models.nsynth.mulaw import mu_law_encode, scale_codes

STATE_FILE = "train_state.npz"


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

    def crops(self, rng: np.random.Generator, batch: int, config: NSynthConfig,
              max_start: int) -> tuple[object, np.ndarray]:
        """Random crops as the model's input (with their pitch lag) and the target codes."""
        crop = config.crop
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


def _batches(inputs: object, targets: np.ndarray, size: int) -> list[tuple[object, np.ndarray]]:
    out = []
    for i in range(0, len(targets), size):
        part = (tuple(a[i:i + size] for a in inputs) if isinstance(inputs, tuple)
                else inputs[i:i + size])  # type: ignore[index]
        out.append((part, targets[i:i + size]))
    return out


def _save_state(out: Path, optimizer: object, step: int, rng: np.random.Generator,
                history: list[dict]) -> None:
    arrays = {f"opt_{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)}  # type: ignore[attr-defined]
    tmp = out / ("tmp-" + STATE_FILE)
    with open(tmp, "wb") as f:
        np.savez(f, step=np.int64(step), rng=np.array(json.dumps(rng.bit_generator.state)),
                 history=np.array(json.dumps(history)), **arrays)
    tmp.replace(out / STATE_FILE)


def _card(config: NSynthConfig, data: Path, manifest: dict, step: int, loss: float,
          val_loss: float, command: str) -> str:
    notes = manifest.get("notes", [])
    train = sum(1 for n in notes if n["split"] == "train")
    return (
        "# NSynth WaveNet autoencoder\n\n"
        f"Morph model (WaveNet autoencoder, 16-dim embedding every {config.hop} samples at "
        f"{config.sample_rate} Hz), trained {step} steps.\n\n"
        f"- data: {data} ({train} training / {len(notes) - train} validation notes; "
        f"validation programs {manifest.get('valid_programs')})\n"
        f"- training loss {loss:.4f}, validation loss {val_loss:.4f} (nats per sample)\n"
        f"- command: `{command}`\n"
    )


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
    log: Callable[[str], None] | None = None,
    command: str = "",
    max_seconds: float | None = None,
) -> TrainResult:
    """Train (or resume) into ``out``; returns the final step and losses."""
    import keras

    data, out = Path(data), Path(out)
    manifest = read_manifest(data)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    resuming = state_path.is_file() and (out / "config.json").is_file() and not fresh
    if resuming:
        saved = config_from_dict(NSynthConfig, read_model_dir(out)["config"])
        if config is not None and asdict(config) != asdict(saved):
            raise CadenzaError(
                f"{out} holds a run with a different config; pass --fresh to start over "
                "or use another --out"
            )
        config = saved
    config = config or NSynthConfig()
    if config.crop % config.hop or config.crop < config.hop:
        raise CadenzaError(f"crop {config.crop} must be a positive multiple of hop {config.hop}")

    def notes(split: str) -> _Notes:
        audio, records = load_split(data, split)
        periods = np.zeros(len(records))
        if config.pitch_lag and records:
            if log:
                log(f"pitch of the {split} notes (cached in {data})")
            f0s = note_f0s(data, records, audio)
            periods = np.array([lag_period(f, config.sample_rate) for f in f0s])
        return _Notes(mu_law_encode(audio.astype(np.float32) / 32768.0), periods)

    train_notes = notes("train")
    if train_notes.codes.shape[0] == 0:
        raise CadenzaError(f"{data} has no training notes")
    valid_notes = notes("valid")
    # the held part and the start of the release: the quiet tail teaches little
    max_start = int(config.sample_rate * 3.5) - config.crop
    val_rng = np.random.default_rng(12345)
    val_inputs, val_codes = (valid_notes if valid_notes.codes.shape[0] else train_notes).crops(
        val_rng, val_crops, config, max_start)
    val_batches = _batches(val_inputs, val_codes.astype(np.int32), config.batch_size)

    from models.training import setup_distribution

    setup_distribution()

    from models.nsynth.model import build_model

    keras.utils.set_random_seed(seed)  # the same seed, the same initial weights
    model = build_model(config)
    if resuming:
        from models.checkpoint import load_weights

        load_weights(model, out)  # before compile: the file holds no optimizer
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate, clipnorm=1.0)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(seed)
    history: list[dict] = []
    step = 0
    if resuming:
        optimizer.build(model.trainable_variables)
        with np.load(state_path, allow_pickle=False) as st:
            step = int(st["step"])
            rng.bit_generator.state = json.loads(str(st["rng"]))
            history = json.loads(str(st["history"]))
            variables = optimizer.variables
            saved_vars = [st[f"opt_{i}"] for i in range(len(variables)) if f"opt_{i}" in st]
            if len(saved_vars) != len(variables):
                raise CadenzaError(f"{state_path} does not fit this optimizer; use --fresh")
            for var, value in zip(variables, saved_vars, strict=True):
                var.assign(value)
        if log:
            log(f"resuming {out} at step {step}")

    def lr_at(s: int) -> float:
        frac = min(1.0, s / max(1, steps))
        warm = min(1.0, (s + 1) / max(1, min(100, steps // 10)))
        return config.learning_rate * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    def val_loss_now() -> float:
        return float(np.mean([float(model.test_on_batch(x, y)) for x, y in val_batches]))

    started = time.perf_counter()
    last_ckpt = started
    loss_avg = float(history[-1]["loss"]) if history else float("nan")
    val = float(history[-1]["val_loss"]) if history else float("nan")
    tty = sys.stderr.isatty()

    export = build_model(config)  # uncompiled: its weights file holds no optimizer state

    def checkpoint() -> None:
        export.set_weights(model.get_weights())
        save_model_dir(out, FAMILY, config, export,
                       card=_card(config, data, manifest, step, loss_avg, val, command))
        _save_state(out, optimizer, step, rng, history)

    step_times: list[float] = []
    recent: list[float] = []
    try:
        while step < steps:
            if max_seconds is not None and time.perf_counter() - started > max_seconds:
                break
            t0 = time.perf_counter()
            optimizer.learning_rate = lr_at(step)
            inputs, codes = train_notes.crops(rng, config.batch_size, config, max_start)
            loss = float(model.train_on_batch(inputs, codes.astype(np.int32)))
            if not math.isfinite(loss):
                raise CadenzaError(f"training diverged at step {step} (loss {loss})")
            step += 1
            recent.append(loss)
            loss_avg = float(np.mean(recent[-eval_every:]))
            step_times.append(time.perf_counter() - t0)
            if step % eval_every == 0 or step == steps:
                val = val_loss_now()
                history.append({"step": step, "loss": round(loss_avg, 4),
                                "val_loss": round(val, 4),
                                "seconds": round(time.perf_counter() - started, 1)})
            if log and (tty or step % 10 == 0 or step == steps):
                sec = float(np.mean(step_times[-20:]))
                eta = (steps - step) * sec
                bar = "#" * int(20 * step / steps)
                log(f"step {step}/{steps} [{bar:<20}] loss {loss_avg:.3f} val {val:.3f} "
                    f"{sec:.2f} s/step ETA {eta / 60:.0f} min")
            if time.perf_counter() - last_ckpt > checkpoint_seconds:
                checkpoint()
                last_ckpt = time.perf_counter()
    finally:
        if step > 0:
            if not history or history[-1]["step"] != step:
                val = val_loss_now()
                history.append({"step": step, "loss": round(loss_avg, 4),
                                "val_loss": round(val, 4),
                                "seconds": round(time.perf_counter() - started, 1)})
            checkpoint()
    return TrainResult(step, loss_avg, val, time.perf_counter() - started, history)
