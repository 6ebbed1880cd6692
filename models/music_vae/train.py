"""Training: ``keras.Model.fit`` on random batches of cached windows, resumable, any backend.

The output folder is a model folder (config.json, a compact model.weights.h5 without optimizer
state, MODEL_CARD.md, see :mod:`models.checkpoint`) plus ``train_state.npz`` (optimizer
variables, including the step counter) and ``history.json``. Rerunning with the same output
folder continues from the last checkpoint, written every ``checkpoint_minutes`` and at the end.
With several devices the batch is split over them with ``keras.distribution.DataParallel``
(JAX backend).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_weights, save_model_dir
from models.errors import CadenzaError
from models.music_vae import data as data_lib
from models.music_vae.model import (
    FAMILY,
    MusicVAEConfig,
    MusicVAENet,
    beta_at,
    build_model,
    get_config,
    load_config,
    load_model,
    sampling_probability,
)
from models.training import (
    load_optimizer_state,
    save_optimizer_state,
    setup_distribution,
)

STATE_FILE = "train_state.npz"
HISTORY_FILE = "history.json"
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
                     "free_bits", "sampling_schedule", "sampling_rate", "train_hop")


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
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cadenza" / "music_vae"


def recon_loss(y_true: Any, y_pred: Any) -> Any:
    """Per-sequence sum over steps of the cross entropy (Magenta's r_loss)."""
    import keras

    ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
    return keras.ops.sum(ce, axis=-1)


def kl_cost_loss(y_true: Any, y_pred: Any) -> Any:
    return y_pred[:, 1]


def kl_value(y_true: Any, y_pred: Any) -> Any:
    return y_pred[:, 0]


def compile_model(net: MusicVAENet) -> None:
    import keras
    from keras import ops

    c = net.config

    class MagentaDecay(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step: Any) -> Any:
            s = ops.cast(step, "float32")
            return ((c.learning_rate - c.min_learning_rate) * ops.power(c.decay_rate, s)
                    + c.min_learning_rate)

        def get_config(self) -> dict[str, Any]:
            return {}

    optimizer = keras.optimizers.Adam(learning_rate=MagentaDecay(),
                                      global_clipnorm=c.grad_clip)
    net.train_model.compile(
        optimizer=optimizer,
        loss={"logits": recon_loss, "kl": kl_cost_loss},
        metrics={"logits": [keras.metrics.SparseCategoricalAccuracy(name="acc")],
                 "kl": [keras.metrics.MeanMetricWrapper(kl_value, name="nats")]},
    )
    # Built over the saved graph's variables, in its order, whichever graph trains: the
    # scheduled-sampling graph shares them, and the optimizer state keeps one layout.
    optimizer.build(net.keras_model.trainable_variables)


def save_state(net: MusicVAENet, out_dir: Path) -> None:
    save_optimizer_state(net.train_model.optimizer, out_dir / STATE_FILE)


def load_state(net: MusicVAENet, out_dir: Path) -> None:
    load_optimizer_state(net.train_model.optimizer, out_dir / STATE_FILE)


def compact_weights(out_dir: str | Path) -> int:
    """Rewrite a model folder's weights without optimizer state; returns the new size."""
    from models.music_vae.model import load_model

    out = Path(out_dir)
    net = load_model(out)
    tmp = out / ("tmp-" + WEIGHTS_FILE)
    net.keras_model.save_weights(str(tmp))
    tmp.replace(out / WEIGHTS_FILE)
    return (out / WEIGHTS_FILE).stat().st_size


def current_step(net: MusicVAENet) -> int:
    from keras import ops

    return int(ops.convert_to_numpy(net.train_model.optimizer.iterations))


def _data_names(specs: list[str]) -> list[str]:
    return [data_lib.source_label(s) for s in specs]


def model_card(config: MusicVAEConfig, info: dict[str, Any]) -> str:
    acc, kl = info.get("val_accuracy"), info.get("val_kl")
    regime = "scheduled sampling" if config.sampling_rate > 0 else "teacher forcing"
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
KL: free bits {config.free_bits}, beta = (1 - {config.beta_rate}^step) x {config.max_beta}.
Decoder input dropout in training: {config.input_dropout:g} (share of previous-symbol inputs
zeroed, so the decoder leans on z). Scheduled sampling: {_sampling_text(config)}.

## Data

{info.get('train_windows', '?')} training windows and {info.get('val_windows', '?')} validation
windows ({info.get('train_pieces', '?')} / {info.get('val_pieces', '?')} pieces; split by
piece, never by window), per source: {json.dumps(info.get('source_windows', {}))}.
{info.get('data_notes', '')}

Licenses of the training data (the model carries them forward):
{licenses}

## Training

    {info.get('command', '?')}

{info.get('step', '?')} steps of batch {config.batch_size} (Adam, learning rate
{config.learning_rate} decaying by {config.decay_rate} per step to {config.min_learning_rate},
global gradient norm clipped to {config.grad_clip}), {regime}, on
{info.get('device', '?')} with the {info.get('backend', '?')} backend, {info.get('hours', 0):.2f} h.
Final training loss {info.get('train_loss', '?')}.

## Metrics (held-out pieces)

- reconstruction accuracy (greedy autoregressive decode from the posterior mean, per step):
  **{acc_text}** on {info.get('val_examples', '?')} validation windows
- KL divergence to the prior: {kl_text} per window

## Limits

Sized to train on a laptop CPU: much smaller than Magenta's models, so samples from the prior are
rougher than interpolations between real inputs. 4/4 material only; inputs in other metres are
rejected.
"""


def _sampling_text(config: MusicVAEConfig) -> str:
    if config.sampling_rate <= 0:
        return "off (teacher forcing throughout)"
    if config.sampling_schedule == "constant":
        return (f"{config.sampling_rate:g} of the decoder's inputs are its own greedy choice at "
                f"the step before")
    return (f"{config.sampling_schedule}, rate {config.sampling_rate:g} (the share of inputs "
            f"that are the decoder's own greedy choice grows with the step, as in Magenta)")


def _saved_commands(folder: Path) -> list[str]:
    """The training commands in a run folder's history (older folders kept just one)."""
    if not (folder / HISTORY_FILE).is_file():
        return []
    saved = json.loads((folder / HISTORY_FILE).read_text())
    return list(saved.get("commands") or [c for c in [saved.get("command")] if c])


def _card_info(net: MusicVAENet, ws: data_lib.WindowSet, counts: dict[str, int],
               specs: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    import keras

    sources = sorted(set(_data_names(specs)))
    notes = []
    if "music21" in sources:
        collections = dict.fromkeys(c for s in specs if s.startswith("music21")
                                    for c in data_lib.music21_collections(s))
        notes.append("music21: a bounded subset of the ABC folk corpus ("
                     + ", ".join(collections) + ").")
    if "pop909" in sources:
        notes.append("POP909: the MELODY track of each song only; its 1/4 time signatures read "
                     "as 4/4.")
    return {
        "params": f"{net.count_params():,}",
        "train_windows": len(ws.train), "val_windows": len(ws.val),
        "train_pieces": len(ws.pieces_of(False)), "val_pieces": len(ws.pieces_of(True)),
        "source_windows": counts, "sources": sources, "data_notes": " ".join(notes),
        "backend": keras.backend.backend(), **extra,
    }


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
    """Train (or continue training) ``model_name`` into ``out_dir``.

    ``init_from``: a model folder of the same architecture whose weights a new run starts from
    (a warm start: fresh optimizer, step 0, so the learning rate and the KL weight follow their
    schedules from the start). Ignored when ``out_dir`` already holds a run to resume.
    ``init_architecture`` False: the architecture is ``size``'s (with ``overrides``) instead of
    the starting folder's, and only the layers whose weights fit are copied from it (by layer
    name); the others start fresh.
    """
    import keras

    from models.compute import preferred_device
    from models.music_vae.evaluate import reconstruction_metrics
    from models.music_vae.generate import MusicVAE

    t0 = time.perf_counter()
    out = Path(out_dir)
    resume = (out / CONFIG_FILE).is_file() and (out / STATE_FILE).is_file() and (
        out / WEIGHTS_FILE).is_file()
    if resume or (init_from is not None and init_architecture):
        # A resumed run, or a warm start, keeps the architecture of the folder it starts
        # from; training-only settings may change.
        source = out if resume else Path(init_from)
        config = load_config(source)
        if config.name != model_name:
            raise CadenzaError(f"{source} holds a {config.name} model, not {model_name}")
        config = replace(config, **{k: v for k, v in (overrides or {}).items()
                                    if k in TRAINING_SETTINGS and v is not None})
        if resume and init_from is not None and verbose:
            print(f"{out} holds a run: resuming it (--init {init_from} is not used)",
                  file=sys.stderr)
    else:
        config = get_config(model_name, size, **(overrides or {}))
    total = int(steps if steps is not None else DEFAULT_STEPS.get(model_name, 5000))
    dist = setup_distribution()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    ws, counts, load_s = data_lib.timed_load(
        data_specs, config.converter(), cache, config.validation_fraction, workers,
        config.train_hop)
    train_w, val_w = ws.train, ws.val
    if len(train_w) == 0:
        raise CadenzaError(f"no {config.slice_bars}-bar {config.kind} windows in "
                           f"{', '.join(data_specs)}")
    if verbose:
        print(f"{model_name}: {len(train_w)} training / {len(val_w)} validation windows "
              f"({load_s:.1f} s){'; ' + dist if dist else ''}", file=sys.stderr)

    keras.utils.set_random_seed(seed)  # the same seed, the same initial weights and run
    net = build_model(config)
    compile_model(net)
    if resume:
        load_weights(net.keras_model, out)
        load_state(net, out)
    elif init_from is not None and init_architecture:
        load_weights(net.keras_model, init_from)
    elif init_from is not None:
        copied, fresh = copy_matching_layers(net, init_from)
        if verbose:
            print(f"warm start from {init_from}: {len(copied)} layers copied; fresh: "
                  f"{', '.join(fresh) or 'none'}", file=sys.stderr)
    start = current_step(net)
    history: list[dict[str, Any]] = []
    commands: list[str] = []
    if (out / HISTORY_FILE).is_file():
        history = json.loads((out / HISTORY_FILE).read_text()).get("epochs", [])
        commands = _saved_commands(out)
    elif init_from is not None:
        # A warm start carries the commands that trained its starting point, so the card
        # names every run behind the weights.
        commands = _saved_commands(Path(init_from))
    command = command or " ".join(shlex.quote(a) for a in sys.argv)
    warm = init_from is not None and not resume
    if start < total or not commands or warm:
        source = "weights" if init_architecture else "matching layers"
        origin = (f"from the {source} of {init_from}, fresh optimizer, step 0" if warm
                  else f"from step {start}")
        commands.append(f"{command}  # {origin}")
    device = preferred_device()

    export = build_model(config)  # never compiled: its weights file holds no optimizer state

    def checkpoint(card_info: dict[str, Any] | None = None) -> None:
        info = {"step": current_step(net), "command": "\n    ".join(commands), "device": device,
                **(card_info or {})}
        export.keras_model.set_weights(net.keras_model.get_weights())
        save_model_dir(out, FAMILY, config, export.keras_model,
                       card=model_card(config, info) if card_info is not None else None,
                       name=model_name)
        save_state(net, out)
        (out / HISTORY_FILE).write_text(json.dumps(
            {"commands": commands, "epochs": history, "config": asdict(config)}, indent=1))

    if start >= total:
        if verbose:
            print(f"already trained for {start} steps (>= {total})", file=sys.stderr)
    else:
        sampler = data_lib.BatchSampler(
            train_w, config.batch_size, config.z_size, config.kind, config.transpose_range,
            lambda k: beta_at(config, k), seed, config.input_dropout,
            (lambda k: sampling_probability(config, k)) if config.sampling_rate > 0 else None)
        per_epoch = min(steps_per_epoch, total - start)
        first_epoch = start // per_epoch
        epochs = first_epoch + (total - start + per_epoch - 1) // per_epoch
        dataset = data_lib.make_dataset(sampler, per_epoch, start)
        state = {"last_save": time.perf_counter()}

        class Checkpointer(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                history.append({"step": current_step(net),
                                **{k: float(v) for k, v in (logs or {}).items()}})
                now = time.perf_counter()
                if now - state["last_save"] >= checkpoint_minutes * 60:
                    checkpoint()
                    state["last_save"] = now
                if time_limit is not None and now - t0 >= time_limit:
                    self.model.stop_training = True
                if current_step(net) >= total:
                    self.model.stop_training = True

        net.train_model.fit(dataset, epochs=epochs, initial_epoch=first_epoch,
                            callbacks=[Checkpointer()], verbose=verbose)
    # Final evaluation on held-out pieces, then the model card.
    vae = MusicVAE(net, model_name, out)
    metrics: dict[str, Any] = {}
    if len(val_w):
        rng = np.random.default_rng(0)
        pick = val_w if len(val_w) <= val_examples else val_w[
            np.sort(rng.choice(len(val_w), val_examples, replace=False))]
        metrics = reconstruction_metrics(vae, pick)
    train_loss = history[-1].get("loss") if history else None
    info = _card_info(net, ws, counts, data_specs, {
        "val_accuracy": metrics.get("reconstruction_accuracy"),
        "val_kl": metrics.get("kl"), "val_examples": metrics.get("examples"),
        "train_loss": f"{train_loss:.3f}" if isinstance(train_loss, float) else "?",
        "hours": (sum(h.get("seconds", 0.0) for h in history if h.get("final"))
                  + time.perf_counter() - t0) / 3600,
    })
    history.append({"step": current_step(net), "seconds": time.perf_counter() - t0,
                    "final": True, **metrics})
    checkpoint(info)
    return TrainResult(out, current_step(net), metrics.get("reconstruction_accuracy"),
                       metrics.get("kl"), train_loss if isinstance(train_loss, float) else None,
                       len(train_w), len(val_w), time.perf_counter() - t0)
