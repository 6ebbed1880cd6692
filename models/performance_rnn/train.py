"""Training a PerformanceRNN: what the family gives the shared loop (:mod:`models.training`).

Windows of ``seq_len`` events are drawn from the training files (augmented: transposed,
stretched, conditioning dropped for some), and the loss is the cross entropy of each next event;
validation is the NLL of fixed windows of the held-out pieces. The encoded-event cache lives in
``OUT/cache``. Resuming, checkpoints, the time and step budget, history and the card's commands
are the loop's; ``--init`` warm starts, and with another ``--note-features`` copies the layers
(:func:`copy_weights`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models import limits, training
from models.checkpoint import load_weights
from models.errors import CadenzaError
from models.performance_rnn import data as data_lib
from models.performance_rnn.model import (
    FAMILY,
    PerformanceConfig,
    PerformanceModel,
    PerformanceTraining,
    build_model,
    check_architecture,
    get_config,
    get_training,
    read_config,
)


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    val_nll: float | None
    train_loss: float | None
    train_files: int
    val_files: int
    train_events: int
    val_events: int
    seconds: float


def compile_model(model: PerformanceModel, settings: PerformanceTraining) -> None:
    """Adam (clipped; with ``lr_decay`` < 1 the rate decays every step, with ``warmup_steps``
    it first rises linearly over those steps) on the next event's cross entropy; the optimizer
    is built, so its state can be restored."""
    import keras

    rate: Any = settings.learning_rate
    if settings.warmup_steps > 0:
        rate = training.warmup_decay(settings.learning_rate, settings.lr_decay,
                                     settings.warmup_steps)
    elif settings.lr_decay < 1.0:
        rate = keras.optimizers.schedules.ExponentialDecay(
            settings.learning_rate, decay_steps=1, decay_rate=settings.lr_decay)
    optimizer = keras.optimizers.Adam(learning_rate=rate, clipnorm=settings.clip_norm)
    model.keras_model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
    )
    optimizer.build(model.keras_model.trainable_variables)


def copy_weights(source: PerformanceModel, target: PerformanceModel) -> None:
    """``source``'s weights into ``target`` of the same layers but another note-state input:
    the first LSTM's kernel rows for the event and controls are copied and those of the note
    state set to zero (the projection keeps its fresh weights), so ``target`` computes what
    ``source`` did until training moves those rows."""
    if source.config.layers != target.config.layers:
        raise CadenzaError(f"cannot copy a {source.config.layers} LSTM stack into "
                           f"{target.config.layers}")
    shared = source.config.num_classes + source.config.control_size
    for i, (src, dst) in enumerate(zip(source.lstms, target.lstms, strict=True)):
        weights = src.get_weights()
        if i == 0:
            kernel = dst.get_weights()[0] * 0.0
            kernel[:shared] = weights[0][:shared]
            weights[0] = kernel
        dst.set_weights(weights)
    target.dense.set_weights(source.dense.get_weights())


MAX_DEPTH = 24  # blocks or layers a run may ask for


def check_transfer(a: PerformanceConfig, b: PerformanceConfig) -> None:
    """That a warm start from architecture ``a`` into ``b`` can begin as the old model: a
    transformer grows only in depth (the same width, heads, feed-forward width, window and note
    state); an LSTM stack keeps its layers (its note-state input may widen). One line if not."""
    if "transformer" in (a.arch, b.arch):
        if a.arch != b.arch:
            raise CadenzaError("a transformer warm-starts only from a transformer")
        same = ("num_classes", "control_size", "note_features", "heads", "d_ff", "max_len")
        if (set(a.layers) != set(b.layers) or len(set(b.layers)) != 1
                or any(getattr(a, k) != getattr(b, k) for k in same)
                or len(b.layers) < len(a.layers)):
            raise CadenzaError(f"a transformer grows only in depth: {len(a.layers)} blocks of "
                               f"{a.layers[0]} cannot go into {len(b.layers)} of {b.layers[0]} "
                               f"(heads, feed-forward width, window and note state the same)")
    elif a.layers != b.layers:
        raise CadenzaError(f"cannot copy a {a.layers} LSTM stack into {b.layers} (--depth grows "
                           f"transformers only)")


def grow_transformer(source: Any, target: Any) -> None:
    """``source``'s weights into ``target``, a transformer of the same width with as many blocks
    or more: the embeddings, projections, final norm, logits and the first blocks are copied;
    each further block keeps its fresh weights but for its two output projections (attention
    and feed-forward), set to zero, so it adds nothing to the residual stream and ``target``
    computes what ``source`` did until training moves them."""
    check_transfer(source.config, target.config)
    pairs = [(source.embedding, target.embedding), (source.control_proj, target.control_proj),
             (source.final_norm, target.final_norm), (source.to_logits, target.to_logits),
             *zip(source.blocks, target.blocks[:len(source.blocks)], strict=True)]
    if source.note_proj is not None:
        pairs.append((source.note_proj, target.note_proj))
    for src, dst in pairs:
        dst.set_weights(src.get_weights())
    for block in target.blocks[len(source.blocks):]:
        for layer in (block.attention.out, block.ff2):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])


class PerformanceRecipe(training.Recipe):
    """PerformanceRNN's part of a training run (see :class:`models.training.Recipe`)."""

    family = FAMILY
    architecture_type = PerformanceConfig
    settings_type = PerformanceTraining

    def __init__(self, data_dir: str | Path, val_windows: int = 64, workers: int = 1,
                 seed: int = 0) -> None:
        self.data_dir, self.val_windows, self.workers, self.seed = (
            data_dir, val_windows, workers, seed)

    def read_architecture(self, folder: Path) -> PerformanceConfig:
        return read_config(folder)

    def check(self, architecture: PerformanceConfig, settings: PerformanceTraining,
              source: Path | None) -> None:
        if not 0.0 < settings.lr_decay <= 1.0:
            raise CadenzaError(f"--lr-decay must be above 0 and at most 1, not {settings.lr_decay}")
        if not 0 <= settings.warmup_steps <= limits.MAX_TRAIN_STEPS:
            raise CadenzaError(f"--warmup-steps must be 0 to {limits.MAX_TRAIN_STEPS}, not "
                               f"{settings.warmup_steps}")
        if architecture.note_features < 0:
            raise CadenzaError(f"--note-features must be 0 or more, not "
                               f"{architecture.note_features}")
        check_architecture(architecture)
        if source is not None:
            source_architecture = read_config(source)
            if source_architecture != architecture:
                check_transfer(source_architecture, architecture)
        if architecture.arch == "transformer" and settings.seq_len > architecture.max_len:
            raise CadenzaError(f"--seq-len {settings.seq_len} is longer than the transformer "
                               f"sees ({architecture.max_len} events)")

    def load_data(self, architecture: PerformanceConfig, settings: PerformanceTraining,
                  out: Path, log: training.Log) -> dict[str, Any]:
        files = data_lib.find_midi_files(self.data_dir)
        if len(files) < 2:
            raise CadenzaError(f"need at least two MIDI files in {self.data_dir}, "
                               f"found {len(files)}")
        train_files, val_files = data_lib.split_by_piece(files, self.data_dir,
                                                         settings.validation_fraction)
        val_set, t_val = data_lib.timed_load(val_files, out / "cache", self.workers)
        train_set, t_train = data_lib.timed_load(train_files, out / "cache", self.workers)
        log(f"data: {len(train_set.names)} train files ({train_set.total_events} events), "
            f"{len(val_set.names)} validation files ({val_set.total_events} events), "
            f"loaded in {t_val + t_train:.1f} s")
        notes = architecture.note_features > 0
        self.batch_size = settings.batch_size
        self.sampler = data_lib.WindowSampler(
            train_set, settings.seq_len, data_lib.Augment(settings.transpose, settings.stretch),
            cond_drop=settings.cond_drop, seed=self.seed, note_state=notes)
        self.val = data_lib.fixed_windows(val_set, settings.seq_len, self.val_windows,
                                          note_state=notes)
        return {"data": str(self.data_dir), "train_files": len(train_set.names),
                "val_files": len(val_set.names), "train_events": train_set.total_events,
                "val_events": val_set.total_events, "val_windows": self.val_windows}

    def build(self, architecture: PerformanceConfig,
              settings: PerformanceTraining) -> PerformanceModel:
        return build_model(architecture, settings.dropout)

    def transfer(self, model: PerformanceModel, source: Path,
                 source_architecture: PerformanceConfig, log: training.Log) -> None:
        if source_architecture.arch == model.config.arch == "transformer":
            start = build_model(source_architecture)
            load_weights(start.keras_model, source)
            grow_transformer(start, model)
            log(f"{len(source_architecture.layers)} -> {len(model.config.layers)} blocks: the "
                "new blocks start at zero output, so the warm start begins as the old model")
            return
        check_transfer(source_architecture, model.config)
        start = build_model(source_architecture)
        load_weights(start.keras_model, source)
        copy_weights(start, model)
        log(f"note-state input {source_architecture.note_features} -> "
            f"{model.config.note_features}: new inputs start at zero weight, so the warm start "
            "begins as the old model")

    def compile(self, model: PerformanceModel, settings: PerformanceTraining, steps: int) -> Any:
        compile_model(model, settings)
        return model.keras_model

    def batch(self, step: int) -> tuple[Any, Any]:
        return self.sampler.batch(self.batch_size, np.random.default_rng((self.seed, step)))

    def validate(self, model: PerformanceModel) -> dict[str, Any]:
        x, y = self.val
        logs = model.keras_model.evaluate(x, y, batch_size=self.batch_size, verbose=0,
                                          return_dict=True)
        return {"val_nll": float(logs["loss"]), "val_acc": float(logs["acc"])}

    def card(self, architecture: PerformanceConfig, settings: PerformanceTraining,
             info: dict[str, Any]) -> str:
        return model_card(architecture, settings, info)


def note_state_text(config: PerformanceConfig) -> str:
    if not config.note_features:
        return ""
    return (f" Beyond Magenta's inputs it reads the note state (which pitches sound, and since "
            f"when: 256 values projected to {config.note_features}), and it gives note-offs "
            f"only to sounding pitches (`models/performance_rnn/notes.py`).")


def model_card(config: PerformanceConfig, settings: PerformanceTraining,
               info: dict[str, Any]) -> str:
    metrics = info.get("metrics", {})
    val, loss = metrics.get("val_nll"), metrics.get("loss")
    val_text = f"{val:.3f}" if isinstance(val, float) else "not measured yet"
    network = (f"{len(config.layers)} x {config.layers[0]} LSTM" if config.arch == "lstm" else
               f"a Music Transformer decoder (relative attention, Huang et al. 2019) of "
               f"{len(config.layers)} blocks of width {config.layers[0]}, {config.heads} heads, "
               f"feed-forward {config.d_ff or 4 * config.layers[0]}, attention over the last "
               f"{config.max_len} events")
    return f"""# PerformanceRNN ({config.name}): Continue

A Keras 3 re-implementation of Magenta's PerformanceRNN with dynamics and multi-conditioning
(note density and pitch-class histogram, optional): {network},
{info.get('params', '?')} parameters. It continues expressive piano
performances (MIDI) event by event: 128 note-on, 128 note-off, 100 time shifts of 10 ms and
32 velocity bins.{note_state_text(config)}

## Data

Trained on `{info.get('data', '?')}`: {info.get('train_files', '?')} files
({info.get('train_events', '?')} events) for training and {info.get('val_files', '?')} files
({info.get('val_events', '?')} events) held out for validation, split by piece (all
performances of a piece on one side).

- **ASAP** (`piano/asap`): human piano performances from the MAESTRO Disklavier recordings,
  with piece annotations. License: **CC BY-NC-SA 4.0** (Foramitti et al., ASAP dataset; MAESTRO
  by Google Magenta). Non-commercial use only, share alike; attribute the authors.
- **POP909** (`piano/pop909`): piano arrangements of 909 Chinese pop songs (853 here).
  License: **MIT** (Wang et al., POP909).

Because of the ASAP part this model and its outputs inherit CC BY-NC-SA 4.0: non-commercial,
share-alike.

Augmentation: transposition by up to +-{settings.transpose} semitones and time stretch by
{1 - settings.stretch:.2f}..{1 + settings.stretch:.2f}; conditioning switched off for
{settings.cond_drop:.0%} of training windows (Magenta's optional conditioning).

## Training

{chr(10).join('    ' + line for line in info.get('commands') or ['?'])}

Backend {info.get('backend', '?')}, {info.get('devices', '?')}. Steps: {info.get('step', '?')}
(batch {settings.batch_size} x {settings.seq_len} events), Adam lr {settings.learning_rate}{
    f' x {settings.lr_decay} per step' if settings.lr_decay < 1.0 else ''}{
    f' after a linear warm-up over {settings.warmup_steps} steps'
    if settings.warmup_steps else ''},
gradient clip norm {settings.clip_norm}; wall time {info.get('minutes', 0):.1f} min.

## Metrics

- Validation NLL: **{val_text} nats/event** (teacher forcing on {info.get('val_windows', '?')}
  windows of {settings.seq_len} events from the held-out pieces, each from a zero state,
  conditioning off). Magenta's 3 x 512 model reaches about 1.97 on its (larger) data.
- Final training loss: {f'{loss:.4f}' if isinstance(loss, float) else '?'}.

`cadenza evaluate performance --data DIR --model PATH` measures whole files (state carried
across each file, conditioning off, since Magenta's controls describe the upcoming window).

## Limitations

Piano only (one instrument, no pedal events: pedal is baked into note lengths). Trained on a CPU
for a limited time, so it is weaker than Magenta's released model; it can drift or repeat over
long continuations.
"""


def train(
    data_dir: str | Path,
    out_dir: str | Path,
    config_name: str = "small",
    steps: int = 10_000,
    batch_size: int | None = None,
    seq_len: int | None = None,
    learning_rate: float | None = None,
    lr_decay: float | None = None,
    warmup_steps: int | None = None,
    note_features: int | None = None,
    depth: int | None = None,
    checkpoint_steps: int = 200,
    val_windows: int = 64,
    max_minutes: float | None = None,
    max_cpu_minutes: float | None = None,
    workers: int = 1,
    verbose: int = 1,
    command: str | None = None,
    seed: int = 0,
    init_from: str | Path | None = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> TrainResult:
    """Train (or continue training) a PerformanceRNN into ``out_dir``: a checkpoint and
    validation every ``checkpoint_steps`` steps; see :func:`models.training.train`.

    ``init_from``: a performance model folder whose architecture and weights a new run starts
    from (a warm start: fresh optimizer, step 0, so a decaying learning rate starts again from
    ``learning_rate``); the training settings given here replace the folder's. Ignored when
    ``out_dir`` already holds a run to resume. With another ``note_features`` than the
    folder's, the layers are copied and the new note-state inputs start at zero weight
    (:func:`copy_weights`). ``depth``: so many blocks (layers), each as wide as the config's
    (or the init folder's) first; a transformer warm-started from fewer blocks grows
    (:func:`grow_transformer`).
    """
    if checkpoint_steps < 1:
        raise CadenzaError(f"--checkpoint-steps must be positive, not {checkpoint_steps}")
    layers = None
    if depth is not None:
        if not 1 <= depth <= MAX_DEPTH:
            raise CadenzaError(f"--depth must be 1 to {MAX_DEPTH}, not {depth}")
        base = read_config(init_from) if init_from is not None else get_config(config_name)
        layers = (base.layers[0],) * depth
    asked = {k: v for k, v in {"batch_size": batch_size, "seq_len": seq_len,
                               "learning_rate": learning_rate, "lr_decay": lr_decay,
                               "warmup_steps": warmup_steps,
                               "note_features": note_features, "layers": layers}.items()
             if v is not None}
    architecture, settings = training.split_values(asked, PerformanceConfig, PerformanceTraining)
    start = training.Start(get_config(config_name, **architecture),
                           get_training(config_name, **settings), asked,
                           init=Path(init_from) if init_from is not None else None)
    budget = training.Budget(steps=steps, period=checkpoint_steps,
                             checkpoint_steps=checkpoint_steps, max_minutes=max_minutes,
                             max_cpu_minutes=max_cpu_minutes)
    recipe = PerformanceRecipe(data_dir, val_windows, workers, seed)
    run = training.train(recipe, out_dir, start, budget, seed=seed, command=command, log=log,
                         verbose=verbose)
    loss = run.metrics.get("loss")
    d = run.data
    return TrainResult(run.out_dir, run.step, run.metrics.get("val_nll"),
                       round(loss, 4) if isinstance(loss, float) else None, d["train_files"],
                       d["val_files"], d["train_events"], d["val_events"], run.seconds)


def describe(result: TrainResult) -> str:
    d = asdict(result)
    d["out_dir"] = str(result.out_dir)
    return json.dumps(d)
