"""Training: ``keras.Model.fit`` on streamed windows, resumable, on any Keras backend.

The output folder is a model folder (config.json, model.weights.h5, MODEL_CARD.md, see
:mod:`models.checkpoint`) plus ``train_state.npz`` (optimizer variables, including the step
counter) and ``history.json``; the encoded-event cache lives in ``OUT/cache``. Rerunning with
the same output folder continues from the last checkpoint, which is written every
``checkpoint_steps`` steps (and when a time limit stops the run).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from models.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    config_from_dict,
    load_weights,
    save_model_dir,
)
from models.errors import CadenzaError
from models.performance_rnn import data as data_lib
from models.performance_rnn.model import (
    FAMILY,
    PerformanceConfig,
    PerformanceModel,
    build_model,
    get_config,
    read_config,
)
from models.training import (
    load_optimizer_state,
    save_optimizer_state,
    setup_distribution,
)

STATE_FILE = "train_state.npz"
HISTORY_FILE = "history.json"


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


def compile_model(model: PerformanceModel) -> None:
    import keras

    config = model.config
    rate: Any = config.learning_rate
    if config.lr_decay < 1.0:
        rate = keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, decay_steps=1, decay_rate=config.lr_decay)
    optimizer = keras.optimizers.Adam(learning_rate=rate, clipnorm=config.clip_norm)
    model.keras_model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
    )
    optimizer.build(model.keras_model.trainable_variables)


def save_state(model: PerformanceModel, out_dir: Path) -> None:
    save_optimizer_state(model.keras_model.optimizer, out_dir / STATE_FILE)


def load_state(model: PerformanceModel, out_dir: Path) -> None:
    load_optimizer_state(model.keras_model.optimizer, out_dir / STATE_FILE)


def current_step(model: PerformanceModel) -> int:
    from keras import ops

    return int(ops.convert_to_numpy(model.keras_model.optimizer.iterations))


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


def note_state_text(config: PerformanceConfig) -> str:
    if not config.note_features:
        return ""
    return (f" Beyond Magenta's inputs it reads the note state (which pitches sound, and since "
            f"when: 256 values projected to {config.note_features}), and it gives note-offs "
            f"only to sounding pitches (`models/performance_rnn/notes.py`).")


def model_card(config: PerformanceConfig, info: dict[str, Any]) -> str:
    val = info.get("val_nll")
    val_text = f"{val:.3f}" if isinstance(val, float) else "not measured yet"
    return f"""# PerformanceRNN ({config.name}): Continue

A Keras 3 re-implementation of Magenta's PerformanceRNN with dynamics and multi-conditioning
(note density and pitch-class histogram, optional): {len(config.layers)} x
{config.layers[0]} LSTM, {info.get('params', '?')} parameters. It continues expressive piano
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

Augmentation: transposition by up to +-{config.transpose} semitones and time stretch by
{1 - config.stretch:.2f}..{1 + config.stretch:.2f}; conditioning switched off for
{config.cond_drop:.0%} of training windows (Magenta's optional conditioning).

## Training

{chr(10).join('    ' + line for line in info.get('commands') or ['?'])}

Backend {info.get('backend', '?')}, {info.get('devices', '?')}. Steps: {info.get('step', '?')}
(batch {config.batch_size} x {config.seq_len} events), Adam lr {config.learning_rate}{
    f' x {config.lr_decay} per step' if config.lr_decay < 1.0 else ''},
gradient clip norm {config.clip_norm}; wall time {info.get('minutes', '?')} min.

## Metrics

- Validation NLL: **{val_text} nats/event** (teacher forcing on {info.get('val_windows', '?')}
  windows of {config.seq_len} events from the held-out pieces, each from a zero state,
  conditioning off). Magenta's 3 x 512 model reaches about 1.97 on its (larger) data.
- Final training loss: {info.get('train_loss', '?')}.

`cadenza evaluate performance --data DIR --model PATH` measures whole files (state carried
across each file, conditioning off, since Magenta's controls describe the upcoming window).

## Limitations

Piano only (one instrument, no pedal events: pedal is baked into note lengths). Trained on a CPU
for a limited time, so it is weaker than Magenta's released model; it can drift or repeat over
long continuations.
"""


def command_lines(history: dict[str, Any]) -> list[str]:
    """The commands that made a model folder, in order: those of the folder a warm start began
    from (``lineage``), then this folder's runs, each resumed or warm-started one marked; a run
    on another backend than TensorFlow (the default) is prefixed with its ``KERAS_BACKEND``."""
    lines = []
    for run in [*history.get("lineage", []), *history.get("runs", [])]:
        backend = run.get("backend", "tensorflow")
        env = "" if backend == "tensorflow" else f"KERAS_BACKEND={backend} "
        note = ""
        if run.get("init_from"):
            note = f"  # warm start from {run['init_from']} (fresh optimizer, step 0)"
        elif run.get("start_step"):
            note = f"  # resumed at step {run['start_step']}"
        lines.append(f"{env}{run.get('command', '?')}{note}")
    return lines


def train(
    data_dir: str | Path,
    out_dir: str | Path,
    config_name: str = "small",
    steps: int = 10_000,
    batch_size: int | None = None,
    seq_len: int | None = None,
    learning_rate: float | None = None,
    lr_decay: float | None = None,
    note_features: int | None = None,
    checkpoint_steps: int = 200,
    val_windows: int = 64,
    max_minutes: float | None = None,
    workers: int = 1,
    verbose: int = 1,
    command: str | None = None,
    seed: int = 0,
    init_from: str | Path | None = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> TrainResult:
    """Train (or continue training) a PerformanceRNN; see the module notes.

    ``init_from``: a performance model folder whose architecture and weights a new run starts
    from (a warm start: fresh optimizer, step 0, so a decaying learning rate starts again from
    ``learning_rate``); the training settings given here replace the folder's. Ignored when
    ``out_dir`` already holds a run to resume. With another ``note_features`` than the
    folder's, the layers are copied and the new note-state inputs start at zero weight
    (:func:`copy_weights`).
    """
    import keras

    if lr_decay is not None and not 0.0 < lr_decay <= 1.0:
        raise CadenzaError(f"--lr-decay must be above 0 and at most 1, not {lr_decay}")
    if note_features is not None and note_features < 0:
        raise CadenzaError(f"--note-features must be 0 or more, not {note_features}")
    t_start = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    resuming = (out / CONFIG_FILE).is_file() and (out / WEIGHTS_FILE).is_file() and (
        out / STATE_FILE).is_file()
    if resuming:
        saved = json.loads((out / CONFIG_FILE).read_text())
        config = config_from_dict(PerformanceConfig, saved["config"])
        log(f"resuming from {out} ({config.name}: {config.layers})")
        if init_from is not None:
            log(f"{out} holds a run: resuming it (--init {init_from} is not used)")
        asked = {"batch_size": batch_size, "seq_len": seq_len, "learning_rate": learning_rate,
                 "lr_decay": lr_decay, "note_features": note_features}
        for key, value in asked.items():
            if value is not None and value != getattr(config, key):
                log(f"resuming keeps the run's {key} {getattr(config, key)} "
                    f"(--{key.replace('_', '-')} {value} is not used)")
    elif init_from is not None:
        init_config = read_config(init_from)
        config = replace(init_config, **{
            k: v for k, v in {"batch_size": batch_size, "seq_len": seq_len,
                              "learning_rate": learning_rate, "lr_decay": lr_decay,
                              "note_features": note_features}.items()
            if v is not None})
        log(f"warm start from {init_from} ({config.name}: {config.layers}), fresh optimizer")
    else:
        config = get_config(config_name, batch_size=batch_size, seq_len=seq_len,
                            learning_rate=learning_rate, lr_decay=lr_decay,
                            note_features=note_features)

    files = data_lib.find_midi_files(data_dir)
    if len(files) < 2:
        raise CadenzaError(f"need at least two MIDI files in {data_dir}, found {len(files)}")
    train_files, val_files = data_lib.split_by_piece(files, data_dir, config.validation_fraction)
    cache = out / "cache"
    val_set, t_val = data_lib.timed_load(val_files, cache, workers)
    train_set, t_train = data_lib.timed_load(train_files, cache, workers)
    log(f"data: {len(train_set.names)} train files ({train_set.total_events} events), "
        f"{len(val_set.names)} validation files ({val_set.total_events} events), "
        f"loaded in {t_val + t_train:.1f} s")

    distribution = setup_distribution()
    if distribution:
        log(distribution)
    keras.utils.set_random_seed(seed)  # the same seed, the same initial weights and windows
    model = build_model(config)
    if init_from is not None and not resuming:
        # Before compiling: a weights file saved from a compiled model also holds optimizer
        # variables, and a warm start keeps none of them (its step counter included).
        if init_config.note_features == config.note_features:
            load_weights(model.keras_model, init_from)
        else:
            start = build_model(init_config)
            load_weights(start.keras_model, init_from)
            copy_weights(start, model)
            log(f"note-state input {init_config.note_features} -> {config.note_features}: "
                "new inputs start at zero weight, so the warm start begins as the old model")
    compile_model(model)
    if resuming:
        load_weights(model.keras_model, out)
        load_state(model, out)
    step0 = current_step(model)
    history = json.loads((out / HISTORY_FILE).read_text()) if (out / HISTORY_FILE).is_file() \
        else {"runs": [], "checkpoints": []}
    command = command or " ".join(shlex.quote(a) for a in sys.argv)
    run_info: dict[str, Any] = {"command": command, "start_step": step0,
                                "backend": keras.backend.backend()}
    if init_from is not None and not resuming:
        run_info["init_from"] = str(init_from)
        # The starting folder's own commands come first in this folder's card.
        started = Path(init_from) / HISTORY_FILE
        try:
            before = json.loads(started.read_text()) if started.is_file() else {}
        except (OSError, ValueError):  # an unreadable history: the card lists this run only
            before = {}
        history["lineage"] = [*before.get("lineage", []), *before.get("runs", [])]
    history["runs"].append(run_info)
    if step0 >= steps:
        log(f"already trained for {step0} steps (asked for {steps})")

    sampler = data_lib.WindowSampler(
        train_set, config.seq_len, data_lib.Augment(config.transpose, config.stretch),
        cond_drop=config.cond_drop, seed=seed, note_state=model.uses_notes)
    val_x, val_y = data_lib.fixed_windows(val_set, config.seq_len, val_windows,
                                          note_state=model.uses_notes)
    remaining = max(0, steps - step0)
    epochs = math.ceil(remaining / checkpoint_steps)
    info: dict[str, Any] = {
        "data": str(data_dir), "train_files": len(train_set.names),
        "val_files": len(val_set.names), "train_events": train_set.total_events,
        "val_events": val_set.total_events, "params": model.count_params(),
        "backend": keras.backend.backend(), "val_windows": val_windows,
        "devices": distribution or "one device",
        "commands": command_lines(history),
    }
    last = {"val_nll": history["checkpoints"][-1]["val_nll"] if history["checkpoints"] else None,
            "train_loss": None}
    prior_minutes = sum(c.get("minutes", 0.0) for c in history["checkpoints"][-1:])

    def checkpoint(logs: dict[str, Any] | None) -> None:
        step = current_step(model)
        logs = logs or {}
        if "val_loss" in logs:
            last["val_nll"] = float(logs["val_loss"])
        if "loss" in logs:
            last["train_loss"] = round(float(logs["loss"]), 4)
        minutes = prior_minutes + (time.monotonic() - t_start) / 60
        info.update(step=step, val_nll=last["val_nll"], train_loss=last["train_loss"],
                    minutes=round(minutes, 1))
        save_model_dir(out, FAMILY, config, model.keras_model, card=model_card(config, info),
                       name=out.name)
        save_state(model, out)
        history["checkpoints"].append({"step": step, "val_nll": last["val_nll"],
                                       "loss": last["train_loss"], "minutes": minutes,
                                       "time": time.time()})
        (out / HISTORY_FILE).write_text(json.dumps(history, indent=1))
        log(f"checkpoint: step {step}, validation NLL {last['val_nll']}")

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            checkpoint(logs)
            if max_minutes is not None and time.monotonic() - t_start > max_minutes * 60:
                log(f"time limit of {max_minutes} min reached")
                self.model.stop_training = True

    if epochs > 0:
        dataset = data_lib.make_window_dataset(sampler, config.batch_size, checkpoint_steps,
                                               start_step=step0)
        model.keras_model.fit(
            dataset, epochs=epochs, validation_data=(val_x, val_y),
            validation_batch_size=config.batch_size, callbacks=[Checkpoint()],
            verbose=verbose,
        )
    else:
        checkpoint(None)
    return TrainResult(out, current_step(model), last["val_nll"], last["train_loss"],
                       len(train_set.names), len(val_set.names), train_set.total_events,
                       val_set.total_events, time.monotonic() - t_start)


def describe(result: TrainResult) -> str:
    d = asdict(result)
    d["out_dir"] = str(result.out_dir)
    return json.dumps(d)


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))
