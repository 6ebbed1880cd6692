"""Training a MusicVAE: what the family gives the shared loop (:mod:`models.training`).

Random batches of cached windows (transposed melodies, word dropout, with scheduled sampling
the decoder's own choices), Magenta's loss (the sequence's cross entropy plus the free-bits KL
cost, weighted by a growing beta) and learning-rate decay; at the end of a run, the greedy
reconstruction accuracy on held-out pieces. Resuming (a resumed run may change the training
settings in :data:`TRAINING_SETTINGS`), checkpoints every ``checkpoint_minutes``, the time and
step budget, history and the card's commands are the loop's. ``--init`` warm starts, and with
``--config`` copies the layers that fit (:func:`copy_matching_layers`). With several devices the
batch is split over them with ``keras.distribution.DataParallel`` (JAX backend).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from models import training
from models.errors import CadenzaError
from models.music_vae import data as data_lib
from models.music_vae.model import (
    FAMILY,
    MusicVAEConfig,
    MusicVAENet,
    MusicVAETraining,
    beta_at,
    build_model,
    check_sampling_schedule,
    get_config,
    get_training,
    load_config,
    load_model,
    sampling_probability,
)

DEFAULT_STEPS = {"melody-2bar": 6000, "drums-2bar": 6000, "melody-16bar": 2000}


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    val_accuracy: float | None
    val_kl: float | None
    train_loss: float | None
    train_windows: int
    val_windows: int
    seconds: float


# Settings a resumed run may change (the learning-rate schedule and KL weight follow the global
# step, so a new learning_rate or decay_rate takes effect from the step the run resumes at).
TRAINING_SETTINGS = ("batch_size", "input_dropout", "learning_rate", "decay_rate", "max_beta",
                     "free_bits", "sampling_schedule", "sampling_rate", "train_hop", "any_meter")


def copy_matching_layers(net: MusicVAENet, source: str | Path) -> tuple[list[str], list[str]]:
    """Copy into ``net`` the weights of each layer of the model in ``source`` that has the same
    name and weight shapes. Returns (copied, fresh): the names of ``net``'s layers with weights
    that were copied, and of those left as they were."""
    theirs = {layer.name: layer for layer in load_model(source).keras_model.layers}
    copied, fresh = [], []
    for layer in net.keras_model.layers:
        mine = layer.get_weights()
        if not mine:
            continue
        other = theirs.get(layer.name)
        w = other.get_weights() if other is not None else []
        if len(w) == len(mine) and all(a.shape == b.shape for a, b in zip(w, mine, strict=True)):
            layer.set_weights(w)
            copied.append(layer.name)
        else:
            fresh.append(layer.name)
    return copied, fresh


def _encoder_text(config: MusicVAEConfig) -> str:
    if not config.enc_top_rnn_size:
        return f"bidirectional {list(config.enc_rnn_size)} LSTM"
    return (f"hierarchical, a bidirectional {list(config.enc_rnn_size)} LSTM reads each bar and "
            f"a bidirectional {list(config.enc_top_rnn_size)} LSTM reads the bars")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cadenza" / "music_vae"


def recon_loss(y_true: Any, y_pred: Any) -> Any:
    """Per-sequence sum over steps of the cross entropy (Magenta's r_loss)."""
    import keras

    ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
    return keras.ops.sum(ce, axis=-1)


def kl_cost(free_bits: float) -> Any:
    """The KL loss ``beta * max(KL - free_bits * ln 2, 0)`` on the graph's ``kl`` output
    ``[KL, beta]``."""
    import keras

    free_nats = free_bits * math.log(2.0)

    def kl_cost_loss(y_true: Any, y_pred: Any) -> Any:
        return y_pred[:, 1] * keras.ops.maximum(y_pred[:, 0] - free_nats, 0.0)

    return kl_cost_loss


def kl_value(y_true: Any, y_pred: Any) -> Any:
    return y_pred[:, 0]


def compile_model(net: MusicVAENet, settings: MusicVAETraining) -> Any:
    """The graph that trains (the stepped one with scheduled sampling), compiled with Adam and
    Magenta's decaying learning rate; returns it."""
    import keras
    from keras import ops

    c = settings

    class MagentaDecay(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step: Any) -> Any:
            s = ops.cast(step, "float32")
            return ((c.learning_rate - c.min_learning_rate) * ops.power(c.decay_rate, s)
                    + c.min_learning_rate)

        def get_config(self) -> dict[str, Any]:
            return {}

    optimizer = keras.optimizers.Adam(learning_rate=MagentaDecay(),
                                      global_clipnorm=c.grad_clip)
    graph = net.scheduled_model if settings.sampling_rate > 0 else net.keras_model
    graph.compile(
        optimizer=optimizer,
        loss={"logits": recon_loss, "kl": kl_cost(settings.free_bits)},
        metrics={"logits": [keras.metrics.SparseCategoricalAccuracy(name="acc")],
                 "kl": [keras.metrics.MeanMetricWrapper(kl_value, name="nats")]},
    )
    # Built over the saved graph's variables, in its order, whichever graph trains: the
    # scheduled-sampling graph shares them, and the optimizer state keeps one layout.
    optimizer.build(net.keras_model.trainable_variables)
    return graph


class MusicVAERecipe(training.Recipe):
    """MusicVAE's part of a training run (see :class:`models.training.Recipe`)."""

    family = FAMILY
    architecture_type = MusicVAEConfig
    settings_type = MusicVAETraining
    resume_may_change = TRAINING_SETTINGS
    validate_every_period = False  # greedy decoding of thousands of windows: at the end

    def __init__(self, model_name: str, data_specs: list[str], cache_dir: str | Path | None,
                 val_examples: int = 2000, workers: int = 1, seed: int = 0) -> None:
        self.name = model_name
        self.data_specs = list(data_specs)
        self.cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.val_examples, self.workers, self.seed = val_examples, workers, seed

    def read_architecture(self, folder: Path) -> MusicVAEConfig:
        return load_config(folder)

    def check(self, architecture: MusicVAEConfig, settings: MusicVAETraining,
              source: Path | None) -> None:
        if architecture.name != self.name:
            raise CadenzaError(f"{source} holds a {architecture.name} model, "
                               f"not {self.name}")
        check_sampling_schedule(settings.sampling_schedule)

    def registry_name(self, architecture: MusicVAEConfig, out: Path) -> str:
        return architecture.name

    def load_data(self, architecture: MusicVAEConfig, settings: MusicVAETraining, out: Path,
                  log: training.Log) -> dict[str, Any]:
        ws, counts, load_s = data_lib.timed_load(
            self.data_specs, replace(architecture.converter(), any_meter=settings.any_meter),
            self.cache, settings.validation_fraction,
            self.workers, settings.train_hop)
        if len(ws.train) == 0:
            raise CadenzaError(f"no {architecture.slice_bars}-bar {architecture.kind} windows in "
                               f"{', '.join(self.data_specs)}")
        log(f"{architecture.name}: {len(ws.train)} training / {len(ws.val)} validation windows "
            f"({load_s:.1f} s)")
        self.sampler = data_lib.BatchSampler(
            ws.train, settings.batch_size, architecture.z_size, architecture.kind,
            settings.transpose_range, lambda k: beta_at(settings, k), self.seed,
            settings.input_dropout,
            (lambda k: sampling_probability(settings, k)) if settings.sampling_rate > 0 else None)
        self.val_windows = ws.val
        sources = sorted({data_lib.source_label(s) for s in self.data_specs})
        notes = []
        if "music21" in sources:
            collections = dict.fromkeys(c for s in self.data_specs if s.startswith("music21")
                                        for c in data_lib.music21_collections(s))
            notes.append("music21: a bounded subset of the ABC folk corpus ("
                         + ", ".join(collections) + ").")
        if "pop909" in sources:
            notes.append("POP909: the MELODY track of each song only; its 1/4 time signatures "
                         "read as 4/4.")
        return {"train_windows": len(ws.train), "val_windows": len(ws.val),
                "train_pieces": len(ws.pieces_of(False)), "val_pieces": len(ws.pieces_of(True)),
                "source_windows": counts, "sources": sources, "data_notes": " ".join(notes)}

    def build(self, architecture: MusicVAEConfig, settings: MusicVAETraining) -> MusicVAENet:
        return build_model(architecture)

    def transfer(self, model: MusicVAENet, source: Path, source_architecture: MusicVAEConfig,
                 log: training.Log) -> None:
        copied, fresh = copy_matching_layers(model, source)
        log(f"warm start from {source}: {len(copied)} layers copied; fresh: "
            f"{', '.join(fresh) or 'none'}")

    def compile(self, model: MusicVAENet, settings: MusicVAETraining, steps: int) -> Any:
        return compile_model(model, settings)

    def batch(self, step: int) -> tuple[Any, Any]:
        return self.sampler.batch(step + 1)

    def validate(self, model: MusicVAENet) -> dict[str, Any]:
        """Greedy reconstruction accuracy and KL on (up to ``val_examples``) held-out windows."""
        from models.music_vae.evaluate import reconstruction_metrics
        from models.music_vae.generate import MusicVAE

        val = self.val_windows
        if not len(val):
            return {}
        if len(val) > self.val_examples:
            rng = np.random.default_rng(0)
            val = val[np.sort(rng.choice(len(val), self.val_examples, replace=False))]
        return dict(reconstruction_metrics(MusicVAE(model, self.name), val))

    def card(self, architecture: MusicVAEConfig, settings: MusicVAETraining,
             info: dict[str, Any]) -> str:
        return model_card(architecture, settings, {**info, "params": f"{info['params']:,}"})


def model_card(config: MusicVAEConfig, settings: MusicVAETraining, info: dict[str, Any]) -> str:
    metrics = info.get("metrics", {})
    acc, kl = metrics.get("reconstruction_accuracy"), metrics.get("kl")
    loss, hours = metrics.get("loss"), info.get("minutes", 0.0) / 60
    regime = "scheduled sampling" if settings.sampling_rate > 0 else "teacher forcing"
    acc_text = f"{acc:.4f}" if isinstance(acc, float) else "not measured yet"
    kl_text = f"{kl:.2f} nats" if isinstance(kl, float) else "not measured yet"
    sources = info.get("sources", [])
    licenses = "\n".join(f"- {s}: {data_lib.LICENSES.get(s, 'see the data folder')}"
                         for s in sources)
    decoder = (f"hierarchical: conductor {list(config.conductor_rnn_size)} LSTM emits one "
               f"embedding per bar, bottom decoder {list(config.dec_rnn_size)} LSTM, 16 steps "
               f"per bar" if config.hierarchical else
               f"flat: {list(config.dec_rnn_size)} LSTM")
    what = ("monophonic melodies, 90 classes (no event, note off, pitches 21-108)"
            if config.kind == "melody" else
            "drum patterns, 9 drum classes (kick, snare, closed/open hi-hat, low/mid/high tom, "
            "crash, ride) as 512 combinations per step")
    return f"""# MusicVAE {config.name}: Interpolate

A Keras 3 re-implementation of Magenta's MusicVAE for {config.slice_bars}-bar {what}, 16 steps
per bar (4 per quarter note, 4/4). Encoder: {_encoder_text(config)};
z: {config.z_size} dimensions; decoder {decoder}. {info.get('params', '?')} parameters.
KL: free bits {settings.free_bits}, beta = (1 - {settings.beta_rate}^step) x {settings.max_beta}.
Decoder input dropout in training: {settings.input_dropout:g} (share of previous-symbol inputs
zeroed, so the decoder leans on z). Scheduled sampling: {_sampling_text(settings)}.

## Data

{info.get('train_windows', '?')} training windows and {info.get('val_windows', '?')} validation
windows ({info.get('train_pieces', '?')} / {info.get('val_pieces', '?')} pieces; split by
piece, never by window), per source: {json.dumps(info.get('source_windows', {}))}.
{info.get('data_notes', '')}

Licenses of the training data (the model carries them forward):
{licenses}

## Training

{chr(10).join('    ' + line for line in info.get('commands') or ['?'])}

{info.get('step', '?')} steps of batch {settings.batch_size} (Adam, learning rate
{settings.learning_rate} decaying by {settings.decay_rate} per step to {settings.min_learning_rate},
global gradient norm clipped to {settings.grad_clip}), {regime}, on
{info.get('device', '?')} with the {info.get('backend', '?')} backend, {hours:.2f} h.
Final training loss {f'{loss:.3f}' if isinstance(loss, float) else '?'}.

## Metrics (held-out pieces)

- reconstruction accuracy (greedy autoregressive decode from the posterior mean, per step):
  **{acc_text}** on {metrics.get('examples', '?')} validation windows
- KL divergence to the prior: {kl_text} per window

## Limits

Sized to train on a laptop CPU: much smaller than Magenta's models, so samples from the prior are
rougher than interpolations between real inputs. 4/4 material only; inputs in other metres are
rejected.
"""


def _sampling_text(settings: MusicVAETraining) -> str:
    if settings.sampling_rate <= 0:
        return "off (teacher forcing throughout)"
    if settings.sampling_schedule == "constant":
        return (f"{settings.sampling_rate:g} of the decoder's inputs are its own greedy choice at "
                f"the step before")
    return (f"{settings.sampling_schedule}, rate {settings.sampling_rate:g} (the share of inputs "
            f"that are the decoder's own greedy choice grows with the step, as in Magenta)")


def train(
    model_name: str,
    data_specs: list[str],
    out_dir: str | Path,
    size: str = "small",
    steps: int | None = None,
    cache_dir: str | Path | None = None,
    checkpoint_minutes: float = 3.0,
    steps_per_epoch: int = 100,
    val_examples: int = 2000,
    time_limit: float | None = None,
    workers: int = 1,
    seed: int = 0,
    command: str | None = None,
    overrides: dict[str, Any] | None = None,
    init_from: str | Path | None = None,
    init_architecture: bool = True,
    verbose: int = 1,
) -> TrainResult:
    """Train (or continue training) ``model_name`` into ``out_dir``: progress and training
    metrics every ``steps_per_epoch`` steps, a checkpoint every ``checkpoint_minutes``, the
    reconstruction accuracy at the end; see :func:`models.training.train`.

    ``overrides``: architecture fields and training settings for ``size``'s. ``init_from``: a
    model folder of the same architecture whose weights a new run starts from (a warm start:
    fresh optimizer, step 0, so the learning rate and the KL weight follow their schedules from
    the start; its training settings, with ``overrides``). Ignored when ``out_dir`` already
    holds a run to resume. ``init_architecture`` False: the architecture is ``size``'s (with
    ``overrides``) instead of the starting folder's, and only the layers whose weights fit are
    copied from it (by layer name); the others start fresh.
    """
    architecture, settings = training.split_values(overrides or {}, MusicVAEConfig,
                                                   MusicVAETraining)
    start = training.Start(get_config(model_name, size, **architecture),
                           get_training(model_name, size, **settings),
                           asked={**architecture, **settings},
                           init=Path(init_from) if init_from is not None else None,
                           init_architecture=init_architecture)
    total = int(steps if steps is not None else DEFAULT_STEPS.get(model_name, 5000))
    budget = training.Budget(steps=total, period=steps_per_epoch,
                             checkpoint_minutes=checkpoint_minutes,
                             max_minutes=None if time_limit is None else time_limit / 60)
    recipe = MusicVAERecipe(model_name, data_specs, cache_dir, val_examples, workers, seed)
    run = training.train(recipe, out_dir, start, budget, seed=seed, command=command,
                         verbose=verbose)
    loss = run.metrics.get("loss")
    return TrainResult(run.out_dir, run.step, run.metrics.get("reconstruction_accuracy"),
                       run.metrics.get("kl"), loss if isinstance(loss, float) else None,
                       run.data["train_windows"], run.data["val_windows"], run.seconds)
