"""One training loop for every model family.

A family supplies a :class:`Recipe`: its data, its model (built from the architecture, or warm
started from another folder), the graph it trains (compiled with its loss and optimizer), its
batches, its validation and its model card. :func:`train` does everything else, the same way
for each family. The output folder is a model folder plus the run's state::

    config.json        the architecture: all that rebuilding the model needs
    model.weights.h5   the weights alone, without optimizer state (what the app loads)
    MODEL_CARD.md      the family's card, with every command that made the folder
    history.json       every run (its command, backend, training settings, start step, warm
                       start), the lineage of a warm start, metrics per period and checkpoint
    train_state.npz    weights, optimizer variables and step of the last checkpoint

Rerunning the same command resumes from ``train_state.npz``, on the same backend or another.
Each file of a checkpoint is written beside its final name and renamed into place,
``train_state.npz`` last: it is the checkpoint's commit point, so a run killed at any moment
resumes from its last whole checkpoint (and history entries past it are dropped).

Training settings (batch size, learning rate, schedules, augmentation, ...) live in each run's
entry in ``history.json``; older folders kept them in ``config.json`` beside the architecture,
and older MusicVAE and NSynth runs kept their history in other shapes. Those folders still load,
resume and warm start (:func:`read_history`, :func:`recorded_settings`, :func:`load_state`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import queue
import re
import shlex
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from models import files
from models.checkpoint import (
    CARD_FILE,
    CONFIG_FILE,
    config_from_dict,
    config_to_dict,
    load_weights,
    read_model_dir,
    save_model_dir,
)
from models.errors import CadenzaError

STATE_FILE = "train_state.npz"
HISTORY_FILE = "history.json"
STATE_FORMAT = 2  # 1: optimizer variables only (the weights were in model.weights.h5)
DEFAULT_BACKEND = "tensorflow"  # a run on it needs no KERAS_BACKEND in its recorded command

Log = Callable[[str], None]


# ------------------------------------------------------------------------ what a run is asked
@dataclass
class Budget:
    """How far a run trains and how often it reports, validates and saves."""

    steps: int  # the folder's total: a resumed run trains up to it
    period: int = 100  # steps between progress lines, history entries and validation
    checkpoint_steps: int | None = None  # a checkpoint every this many steps ...
    checkpoint_minutes: float | None = None  # ... or minutes (at the end of a period)
    max_minutes: float | None = None  # stop, with a checkpoint, at the first step after this
    max_cpu_minutes: float | None = None  # ... or when the folder's runs used this much CPU time


@dataclass
class Start:
    """The model a run asks for: used as given by a new run, in part by a warm start, and only
    to say what is not used by a resumed one."""

    architecture: Any  # a new run's architecture (the preset with what was asked)
    settings: Any  # a new run's training settings
    asked: dict[str, Any] = field(default_factory=dict)  # the values given explicitly
    init: Path | None = None  # warm start from this model folder (fresh optimizer, step 0)
    # Keep the init folder's architecture (with the architecture values asked); otherwise the
    # run has ``architecture`` and the recipe copies the layers of the folder that fit.
    init_architecture: bool = True
    fresh: bool = False  # start over even when the folder holds a run


@dataclass
class RunResult:
    out_dir: Path
    step: int
    metrics: dict[str, Any]  # the latest of each: training (period means), validation
    data: dict[str, Any]  # what the recipe's load_data said about the data
    seconds: float


class Recipe:
    """What a model family supplies to :func:`train`. One object per run: ``load_data`` keeps
    the data for ``batch`` and ``validate``."""

    family: str = ""
    architecture_type: type = object  # dataclass saved as config.json
    settings_type: type = object  # dataclass saved with each run in history.json
    # On resume, asked settings that differ from the run's: those named here change (from the
    # step the run resumes at); the others are kept, with a line that says so, or with
    # ``strict_resume`` refused.
    resume_may_change: tuple[str, ...] = ()
    strict_resume: bool = False
    # Validate at the end of every period (else only at the end of the run).
    validate_every_period: bool = True

    def read_architecture(self, folder: Path) -> Any:
        payload = read_model_dir(folder)
        if payload["family"] != self.family:
            raise CadenzaError(f"{folder} holds a '{payload['family']}' model, "
                               f"not '{self.family}'")
        return config_from_dict(self.architecture_type, payload["config"])

    def check(self, architecture: Any, settings: Any, source: Path | None) -> None:
        """Raise CadenzaError for values that cannot train (``source``: the folder the
        architecture comes from, None for a new one)."""

    def registry_name(self, architecture: Any, out: Path) -> str:
        """The name in config.json (the registry lists the model under it)."""
        return out.name

    def load_data(self, architecture: Any, settings: Any, out: Path, log: Log) -> dict[str, Any]:
        """Load the training and validation data; returns figures for the model card."""
        raise NotImplementedError

    def build(self, architecture: Any, settings: Any) -> Any:
        """A new model (the family's object) with fresh weights."""
        raise NotImplementedError

    def saved_graph(self, model: Any) -> Any:
        """The Keras model whose weights the folder keeps."""
        return model.keras_model

    def transfer(self, model: Any, source: Path, source_architecture: Any, log: Log) -> None:
        """Warm start ``model`` from a folder of another architecture."""
        raise CadenzaError(f"{source} has another architecture than this run")

    def compile(self, model: Any, settings: Any, steps: int) -> Any:
        """The Keras model that trains, compiled with the loss and an optimizer built over the
        saved graph's variables (``steps``: the run's total, for schedules that need it)."""
        raise NotImplementedError

    def batch(self, step: int) -> tuple[Any, Any]:
        """``(inputs, targets)`` of global step ``step``: the same step, the same batch, so a
        resumed run goes on with new data and a rerun is reproducible. Called on a thread."""
        raise NotImplementedError

    def validate(self, model: Any) -> dict[str, Any]:
        """Metrics on the validation data."""
        return {}

    def card(self, architecture: Any, settings: Any, info: dict[str, Any]) -> str:
        """The model card; ``info``: the data figures, ``commands``, ``step``, ``minutes``,
        ``metrics``, ``params``, ``backend``, ``device``, ``devices``."""
        raise NotImplementedError


# ------------------------------------------------------------- pieces the recipes share
def warmup_cosine(peak: float, steps: int) -> Any:
    """The learning rate at a step: a linear warm-up over the first tenth of ``steps`` (at most
    100), then a cosine from ``peak`` down to a tenth of it at ``steps``."""
    import keras
    from keras import ops

    warm_steps = max(1, min(100, steps // 10))

    class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step: Any) -> Any:
            s = ops.cast(step, "float32")
            frac = ops.minimum(1.0, s / max(1, steps))
            warm = ops.minimum(1.0, (s + 1.0) / warm_steps)
            return peak * warm * (0.1 + 0.9 * 0.5 * (1.0 + ops.cos(math.pi * frac)))

        def get_config(self) -> dict[str, Any]:
            return {}

    return WarmupCosine()


def warmup_decay(peak: float, decay: float, warm_steps: int) -> Any:
    """The learning rate at a step: ``peak`` times ``decay`` per step, and for the first
    ``warm_steps`` also times (step + 1) / ``warm_steps``, so a warm start's fresh optimizer does
    not take full-size steps before its moment estimates settle."""
    import keras
    from keras import ops

    class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step: Any) -> Any:
            s = ops.cast(step, "float32")
            warm = ops.minimum(1.0, (s + 1.0) / max(1, warm_steps))
            return peak * warm * ops.power(decay, s)

        def get_config(self) -> dict[str, Any]:
            return {"peak": peak, "decay": decay, "warm_steps": warm_steps}

    return WarmupDecay()


def compile_warmup_cosine(model: Any, loss: Any, learning_rate: float, steps: int) -> Any:
    """``model`` compiled with ``loss`` and Adam (clip norm 1) on :func:`warmup_cosine` over the
    run's ``steps``; the optimizer is built, so its state can be restored. Returns ``model``."""
    import keras

    optimizer = keras.optimizers.Adam(learning_rate=warmup_cosine(learning_rate, steps),
                                      clipnorm=1.0)
    model.compile(optimizer=optimizer, loss=loss)
    optimizer.build(model.trainable_variables)
    return model


def validation_loss(model: Any, inputs: Any, targets: Any, batch_size: int) -> dict[str, Any]:
    """``{"val_loss": ...}``: the compiled loss of ``model`` on the validation batches."""
    logs = model.evaluate(inputs, targets, batch_size=batch_size, verbose=0, return_dict=True)
    return {"val_loss": float(logs["loss"])}


def train_preset(recipe: Recipe, out: str | Path, configs: dict[str, Callable[[], Any]],
                 trainings: dict[str, Any], *, preset: str | None, config: Any, settings: Any,
                 steps: int, eval_every: int, checkpoint_seconds: float,
                 max_seconds: float | None, seed: int, fresh: bool, command: str,
                 log: Log | None, verbose: int, init: Path | None = None) -> RunResult:
    """:func:`train` as a family's ``train(...)`` asks it with a preset: the architecture is
    ``config`` or ``preset``'s (``configs``: the presets' architectures, made by calling; default
    small), the training settings ``settings`` or ``preset``'s (``trainings``). What is given is
    what the run asks (a run in ``out`` with other values is resumed as the recipe allows,
    ``fresh`` starts over); with none of the three, a run is resumed as it is. Validation and a
    history entry every ``eval_every`` steps, a checkpoint every ``checkpoint_seconds`` (at the
    end of a period), a stop after ``max_seconds``; ``init``: a warm start from that model
    folder's weights (a fresh optimizer, step 0)."""
    if eval_every < 1:
        raise CadenzaError(f"--eval-every must be positive, not {eval_every}")
    if preset is not None and preset not in configs:
        raise CadenzaError(f"unknown {recipe.family} config '{preset}' "
                           f"(one of {', '.join(configs)})")
    given = config is not None or settings is not None or preset is not None
    architecture = config or configs[preset or "small"]()
    settings = settings or trainings[preset or "small"]
    asked = ({**dataclasses.asdict(architecture), **dataclasses.asdict(settings)} if given
             else {})
    start = Start(architecture, settings, asked, init=None if init is None else Path(init),
                  fresh=fresh)
    budget = Budget(steps=steps, period=eval_every, checkpoint_minutes=checkpoint_seconds / 60,
                    max_minutes=None if max_seconds is None else max_seconds / 60)
    return train(recipe, out, start, budget, seed=seed, command=command or None,
                 log=log or (lambda s: None), verbose=verbose)


# ------------------------------------------------------------------------------- the loop
def train(recipe: Recipe, out_dir: str | Path, start: Start, budget: Budget, *, seed: int = 0,
          command: str | None = None, log: Log | None = None, verbose: int = 1) -> RunResult:
    """Train (or go on training) ``recipe``'s model into ``out_dir``; see the module notes."""
    import keras

    from models.compute import preferred_device

    if budget.period < 1:
        raise CadenzaError(f"steps between reports must be positive, not {budget.period}")
    t0 = time.monotonic()
    say = log or (_print_line if verbose else _quiet)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CadenzaError(f"cannot make the model folder {out}: {exc.strerror or exc}") from exc

    # 1. What to train: the run in the folder (resumed), a warm start, or a new run.
    plan = _plan(recipe, out, start, say)
    architecture, settings, history = plan.architecture, plan.settings, plan.history
    recipe.check(architecture, settings, plan.source)

    # 2. Data, model, optimizer, and the step the run starts at.
    data = recipe.load_data(architecture, settings, out, say)
    distribution = setup_distribution()
    if distribution:
        say(distribution)
    keras.utils.set_random_seed(seed)  # the same seed, the same initial weights
    model = recipe.build(architecture, settings)
    graph = recipe.saved_graph(model)
    run: dict[str, Any] = {"command": command or " ".join(shlex.quote(a) for a in sys.argv),
                           "backend": keras.backend.backend()}
    if plan.warm_from is not None:  # before compiling: no optimizer state comes with it
        run.update(_warm_start(recipe, model, plan, say))
        history["lineage"] = lineage(plan.warm_from)
    trainer = recipe.compile(model, settings, budget.steps)
    step = 0
    if plan.resuming:
        step = load_state(out, graph, trainer.optimizer)
        trim_history(history, step)
        say(f"resuming {out} at step {step}")
    run.update(start_step=step, settings=config_to_dict(settings))
    if step < budget.steps or not plan.resuming:  # a rerun with nothing to do is not a run
        history["runs"].append(run)
    else:
        say(f"already trained for {step} steps (asked for {budget.steps})")
    export = recipe.saved_graph(recipe.build(architecture, settings))  # never compiled
    last = history["checkpoints"][-1] if history["checkpoints"] else {}
    metrics = {k: v for k, v in last.items()
               if k not in ("step", "minutes", "cpu_minutes", "time")}
    prior_minutes = float(last.get("minutes", 0.0))
    prior_cpu = float(last.get("cpu_minutes", 0.0))
    c0 = time.process_time()
    info = {**data, "params": int(graph.count_params()), "backend": keras.backend.backend(),
            "device": preferred_device(), "devices": distribution or "one device"}

    def minutes() -> float:
        return prior_minutes + (time.monotonic() - t0) / 60

    def cpu_minutes() -> float:
        """CPU time of this process (all threads), all runs: on a shared machine a fairer
        clock than the wall for comparing learning curves."""
        return prior_cpu + (time.process_time() - c0) / 60

    def checkpoint() -> None:
        with _interrupt_after():  # Ctrl-C while the files are written: after they are
            write()

    def write() -> None:
        entry = {"step": step, **metrics, "minutes": round(minutes(), 2),
                 "cpu_minutes": round(cpu_minutes(), 2), "time": round(time.time(), 1)}
        if history["checkpoints"] and history["checkpoints"][-1]["step"] == step:
            history["checkpoints"][-1] = entry  # written again (after an interruption)
        else:
            history["checkpoints"].append(entry)
        card = recipe.card(architecture, settings, {
            **info, "step": step, "minutes": minutes(), "metrics": dict(metrics),
            "commands": command_lines(history)})
        weights = graph.get_weights()
        export.set_weights(weights)
        write_checkpoint(out, recipe.family, recipe.registry_name(architecture, out), architecture,
                         export, card, history, weights, trainer.optimizer, step)

    # 3. Train: periods of steps, each ending with its mean metrics, validation and, when due,
    # a checkpoint; the run ends with a checkpoint whatever stopped it (Ctrl-C included).
    progress = _Progress(budget.steps, enabled=bool(verbose) and sys.stderr.isatty())
    saved_at, saved_time, validated_at, out_of_time = step, time.monotonic(), -1, False
    batches = _Prefetch(recipe.batch, step, budget.steps)
    try:
        while step < budget.steps and not out_of_time:
            period_end = min(budget.steps, (step // budget.period + 1) * budget.period)
            first, sums, t_period = step, {}, time.monotonic()
            while step < period_end and not out_of_time:
                inputs, targets = batches.next()
                logs = trainer.train_on_batch(inputs, targets, return_dict=True)
                if not math.isfinite(float(logs["loss"])):
                    raise CadenzaError(f"training diverged at step {step} (loss {logs['loss']})")
                for key, value in logs.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                step += 1
                progress.update(step)
                out_of_time = ((budget.max_minutes is not None
                                and time.monotonic() - t0 >= budget.max_minutes * 60)
                               or (budget.max_cpu_minutes is not None
                                   and cpu_minutes() >= budget.max_cpu_minutes))
            period = {key: total / (step - first) for key, total in sums.items()}
            if recipe.validate_every_period:
                period.update(recipe.validate(model))
                validated_at = step
            metrics.update(period)
            history["log"].append({"step": step, **period, "minutes": round(minutes(), 2),
                                   "cpu_minutes": round(cpu_minutes(), 2)})
            progress.clear()
            say(f"step {step}/{budget.steps}: {_format(period)} "
                f"({(time.monotonic() - t_period) / (step - first):.2f} s/step)")
            due = ((budget.checkpoint_steps and step - saved_at >= budget.checkpoint_steps)
                   or (budget.checkpoint_minutes is not None
                       and time.monotonic() - saved_time >= budget.checkpoint_minutes * 60))
            if due and step < budget.steps and not out_of_time:
                checkpoint()
                saved_at, saved_time = step, time.monotonic()
                say(f"checkpoint at step {step}")
    except KeyboardInterrupt:
        progress.clear()
        if step > saved_at:
            checkpoint()
        say(f"interrupted at step {step}" + (", checkpoint written" if step > saved_at else ""))
        raise
    finally:
        batches.close()
    if out_of_time:
        say(f"time limit reached at step {step} ({minutes():.1f} min, "
            f"{cpu_minutes():.1f} CPU min in all)")
    if validated_at != step:
        checkpoint()  # the weights first: a validation that fails loses no step
        metrics.update(recipe.validate(model))
    checkpoint()
    say(f"checkpoint at step {step}: {_format(metrics)}")
    return RunResult(out, step, metrics, data, time.monotonic() - t0)


@contextlib.contextmanager
def _interrupt_after() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back while the block runs, then raise it: a checkpoint interrupted
    half-way would leave a weights file open, and the checkpoint written on the way out would
    then fail. Elsewhere than on the main thread, signals never reach the block anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


@dataclass
class _Plan:
    architecture: Any
    settings: Any
    history: dict[str, Any]
    resuming: bool = False
    source: Path | None = None  # where the architecture comes from (None: a new one)
    warm_from: Path | None = None
    warm_architecture: Any = None  # the warm start's own


def _plan(recipe: Recipe, out: Path, start: Start, say: Log) -> _Plan:
    if holds_run(out) and not start.fresh:
        history = read_history(out)
        architecture, settings = _resumed_configs(recipe, out, start, history, say)
        return _Plan(architecture, settings, history, resuming=True, source=out)
    if start.init is not None:
        source = Path(start.init)
        source_architecture = recipe.read_architecture(source)
        architecture, settings = _warm_configs(recipe, start, source, source_architecture)
        return _Plan(architecture, settings, new_history(), source=source, warm_from=source,
                     warm_architecture=source_architecture)
    return _Plan(start.architecture, start.settings, new_history())


def _warm_start(recipe: Recipe, model: Any, plan: _Plan, say: Log) -> dict[str, Any]:
    """The weights of the folder a warm start begins from: all of them for the same
    architecture, else those the recipe's ``transfer`` copies. Returns the run's record."""
    if plan.architecture == plan.warm_architecture:
        load_weights(recipe.saved_graph(model), plan.warm_from)
        init, what = "weights", "its weights"
    else:
        recipe.transfer(model, plan.warm_from, plan.warm_architecture, say)
        init, what = "layers", "the layers that fit"
    say(f"warm start from {plan.warm_from} ({what}), fresh optimizer, step 0")
    return {"init_from": str(plan.warm_from), "init": init}


def _resumed_configs(recipe: Recipe, out: Path, start: Start, history: dict[str, Any],
                     say: Log) -> tuple[Any, Any]:
    """The run's own architecture and settings, with the asked changes a resume may make."""
    architecture = recipe.read_architecture(out)
    settings = recorded_settings(out, recipe.settings_type, history) or start.settings
    if start.init is not None:
        say(f"{out} holds a run: resuming it (--init {start.init} is not used)")
    setting_names = _field_names(recipe.settings_type)
    for key, value in start.asked.items():
        kept = getattr(settings if key in setting_names else architecture, key, value)
        if value == kept:
            continue
        if key in recipe.resume_may_change:
            settings = replace(settings, **{key: value})
        elif recipe.strict_resume:
            raise CadenzaError(f"{out} holds a run with a different config ({key} {kept}, not "
                               f"{value}); pass --fresh to start over or use another --out")
        else:
            say(f"resuming keeps the run's {key} {kept} "
                f"(--{key.replace('_', '-')} {value} is not used)")
    return architecture, settings


def _warm_configs(recipe: Recipe, start: Start, source: Path, source_architecture: Any
                  ) -> tuple[Any, Any]:
    """A warm start keeps the source's architecture and training settings, with the values
    asked for, unless it asks for a new architecture (then the new run's)."""
    if not start.init_architecture:
        return start.architecture, start.settings
    architecture_names = _field_names(recipe.architecture_type)
    setting_names = _field_names(recipe.settings_type)
    architecture = replace(source_architecture, **{
        k: v for k, v in start.asked.items() if k in architecture_names})
    settings = recorded_settings(source, recipe.settings_type, read_history(source))
    settings = replace(settings or start.settings, **{
        k: v for k, v in start.asked.items() if k in setting_names})
    return architecture, settings


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def split_values(values: dict[str, Any], architecture_type: type, settings_type: type
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``values`` (None dropped) as (architecture fields, training settings); CadenzaError for
    a name that is neither."""
    arch, train = _field_names(architecture_type), _field_names(settings_type)
    unknown = [k for k in values if k not in arch | train]
    if unknown:
        raise CadenzaError(f"unknown config values: {', '.join(sorted(unknown))}")
    given = {k: v for k, v in values.items() if v is not None}
    return ({k: v for k, v in given.items() if k in arch},
            {k: v for k, v in given.items() if k in train})


def setup_distribution() -> str | None:
    """Data parallelism over every device when the backend is JAX and there are several.

    Uses Keras' own distribution API (``keras.distribution.DataParallel``); returns a line that
    says so, or None with one device or another backend.
    """
    import keras

    if keras.backend.backend() != "jax":
        return None
    devices = keras.distribution.list_devices()
    if len(devices) < 2:
        return None
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return f"DataParallel over {len(devices)} devices"


# ------------------------------------------------------------------------------ the folder
def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run to resume."""
    return (folder / CONFIG_FILE).is_file() and (folder / STATE_FILE).is_file()


def write_checkpoint(out: Path, family: str, name: str, architecture: Any, export: Any,
                     card: str, history: dict[str, Any], weights: list[np.ndarray],
                     optimizer: Any, step: int) -> None:
    """Write a checkpoint, each file beside its name then renamed; the state last."""
    save_model_dir(out, family, architecture, export, card=card, name=name)
    _write_text(out / HISTORY_FILE, json.dumps(history, indent=1) + "\n")
    save_state(out / STATE_FILE, weights, optimizer, step)


def save_state(path: Path, weights: list[np.ndarray], optimizer: Any, step: int) -> None:
    """The weights, the optimizer's variables (its step among them) and the step, atomically."""
    from keras import ops

    arrays: dict[str, np.ndarray] = {"format": np.int64(STATE_FORMAT), "step": np.int64(step)}
    arrays.update({f"weights_{i:05d}": np.asarray(w) for i, w in enumerate(weights)})
    arrays.update({f"optimizer_{i:05d}": np.asarray(ops.convert_to_numpy(v))
                   for i, v in enumerate(optimizer.variables)})
    with files.replacing(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_state(folder: Path, graph: Any, optimizer: Any) -> int:
    """Restore the last checkpoint's weights and optimizer variables; returns its step.

    Older folders kept the weights in ``model.weights.h5`` and only the optimizer here (as
    ``v0000``..., or NSynth's ``opt_0``... with the constant learning rate it overwrote every
    step, which an optimizer with a schedule does not have).
    """
    from keras import ops

    path = folder / STATE_FILE
    try:
        with np.load(path, allow_pickle=False) as saved:
            keys = list(saved.files)
            if "format" in keys:
                weights = [saved[k] for k in sorted(k for k in keys if k.startswith("weights_"))]
                values = [saved[k] for k in sorted(k for k in keys if k.startswith("optimizer_"))]
            else:
                weights = None
                names = sorted(k for k in keys if re.fullmatch(r"v\d+", k)) or sorted(
                    (k for k in keys if re.fullmatch(r"opt_\d+", k)), key=lambda k: int(k[4:]))
                values = [saved[k] for k in names]
    except (OSError, ValueError) as exc:
        raise CadenzaError(f"unreadable training state {path}: {exc}") from exc
    if weights is None:
        with warnings.catch_warnings():  # the optimizer's variables come below, not from there
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            load_weights(graph, folder)
    else:
        try:
            graph.set_weights(weights)
        except ValueError as exc:
            raise CadenzaError(f"{path} does not fit this model: {exc}") from exc
    variables = optimizer.variables
    if (len(values) == len(variables) + 1 and values[1].ndim == 0
            and values[1].dtype.kind == "f" and values[0].ndim == 0):
        del values[1]  # an older NSynth state's constant learning rate
    if len(values) != len(variables) or any(
            tuple(v.shape) != tuple(var.shape) for v, var in zip(values, variables, strict=True)):
        raise CadenzaError(f"{path} does not fit this model's optimizer")
    for var, value in zip(variables, values, strict=True):
        var.assign(value)
    return int(ops.convert_to_numpy(optimizer.iterations))


def _write_text(path: Path, text: str) -> None:
    files.write_text(path, text)


# ----------------------------------------------------------------------------- history.json
def new_history() -> dict[str, Any]:
    return {"runs": [], "lineage": [], "log": [], "checkpoints": []}


def read_history(folder: Path) -> dict[str, Any]:
    """A folder's history in this loop's shape (empty for a folder without one).

    Older shapes: PerformanceRNN's (runs and checkpoints, no settings: config.json had them);
    MusicVAE's (``commands`` as lines with a ``# ...`` note, ``epochs``, ``config``); NSynth's
    (none: its log was in train_state.npz and its command on the card).
    """
    path = folder / HISTORY_FILE
    if not path.is_file():
        return _nsynth_history(folder)
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CadenzaError(f"unreadable training history {path}: {exc}") from exc
    if "commands" in saved or "command" in saved or "epochs" in saved:
        return _music_vae_history(saved)
    history = new_history()
    history.update({k: list(saved.get(k) or []) for k in history})
    return history


def _music_vae_history(saved: dict[str, Any]) -> dict[str, Any]:
    history = new_history()
    commands = saved.get("commands") or [c for c in [saved.get("command")] if c]
    for line in commands:
        command, _, note = line.partition("  # ")
        history["runs"].append({"command": command, **({"note": note} if note else {})})
    if history["runs"] and saved.get("config"):
        history["runs"][-1]["settings"] = saved["config"]
    minutes = 0.0
    for entry in saved.get("epochs", []):
        if entry.get("final"):
            minutes += entry.get("seconds", 0.0) / 60
            history["checkpoints"].append({
                **{k: v for k, v in entry.items() if k not in ("final", "seconds")},
                "minutes": round(minutes, 2)})
        else:
            history["log"].append(entry)
    return history


def _nsynth_history(folder: Path) -> dict[str, Any]:
    history = new_history()
    state = folder / STATE_FILE
    if not state.is_file():
        return history
    try:
        with np.load(state, allow_pickle=False) as saved:
            log = json.loads(str(saved["history"])) if "history" in saved.files else []
    except (OSError, ValueError):
        return history
    history["log"] = [{**{k: v for k, v in e.items() if k != "seconds"},
                       "minutes": round(e.get("seconds", 0.0) / 60, 2)} for e in log]
    if log:
        history["checkpoints"].append(dict(history["log"][-1]))
    card = folder / CARD_FILE
    found = re.search(r"^- command: `(.*)`$", card.read_text(), re.M) if card.is_file() else None
    if found and found.group(1):
        history["runs"].append({"command": found.group(1)})
    return history


def trim_history(history: dict[str, Any], step: int) -> None:
    """Drop what a run killed after writing its history, before its state, left past ``step``."""
    for key in ("log", "checkpoints"):
        history[key] = [e for e in history[key] if e.get("step", 0) <= step]


def recorded_settings(folder: Path, settings_type: type, history: dict[str, Any]) -> Any:
    """The training settings of a folder's last run, or None when it has none on record."""
    for run in reversed(history["runs"]):
        if run.get("settings"):
            return config_from_dict(settings_type, run["settings"])
    saved = read_model_dir(folder)["config"]  # older folders: beside the architecture
    if _field_names(settings_type) & set(saved):
        return config_from_dict(settings_type, saved)
    return None


def lineage(folder: Path) -> list[dict[str, Any]]:
    """The runs behind a folder's weights (its lineage, then its own runs), for a warm start."""
    try:
        before = read_history(folder)
    except CadenzaError:  # an unreadable history: the card lists the new runs only
        return []
    return [*before["lineage"], *before["runs"]]


def command_lines(history: dict[str, Any]) -> list[str]:
    """The commands that made a model folder, in order: those of the folder a warm start began
    from (``lineage``), then this folder's runs, each resumed or warm-started one marked; a run
    on another backend than TensorFlow (the default) is prefixed with its ``KERAS_BACKEND``."""
    lines = []
    for run in [*history.get("lineage", []), *history.get("runs", [])]:
        backend = run.get("backend", DEFAULT_BACKEND)
        env = "" if backend == DEFAULT_BACKEND else f"KERAS_BACKEND={backend} "
        note = run.get("note", "")
        if not note and run.get("init_from"):
            what = "the matching layers of " if run.get("init") == "layers" else ""
            note = f"warm start from {what}{run['init_from']} (fresh optimizer, step 0)"
        elif not note and run.get("start_step"):
            note = f"resumed at step {run['start_step']}"
        lines.append(f"{env}{run.get('command', '?')}" + (f"  # {note}" if note else ""))
    return lines


# --------------------------------------------------------------------------------- helpers
class _Prefetch:
    """``make(k)`` for k = first, first + 1, ... up to ``end``, made ahead on a thread, so the
    batches' numpy work overlaps the training step (as Keras' own data pipelines do)."""

    def __init__(self, make: Callable[[int], Any], first: int, end: int, depth: int = 2) -> None:
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make, first, end), daemon=True,
                                        name="training-batches")
        self._thread.start()

    def _run(self, make: Callable[[int], Any], k: int, end: int) -> None:
        while k < end and not self._stop.is_set():
            try:
                item = (make(k), None)
            except BaseException as exc:  # raised again in the training thread
                item = (None, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[1] is not None:
                return
            k += 1

    def next(self) -> Any:
        value, error = self._queue.get()
        if error is not None:
            raise error
        return value

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _Progress:
    """A line on a terminal that follows the steps (rewritten in place, twice a second)."""

    def __init__(self, steps: int, enabled: bool) -> None:
        self.steps, self.enabled = steps, enabled
        self.started, self.first, self.shown = time.monotonic(), None, 0.0

    def update(self, step: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.first is None:
            self.first, self.started = step, now
            return
        if now - self.shown < 0.5:
            return
        self.shown = now
        per_step = (now - self.started) / max(1, step - self.first)
        print(f"\rstep {step}/{self.steps} {per_step:.2f} s/step, "
              f"{(self.steps - step) * per_step / 60:.0f} min to go\x1b[K", end="",
              file=sys.stderr, flush=True)

    def clear(self) -> None:
        if self.enabled and self.shown:
            print("\r\x1b[K", end="", file=sys.stderr, flush=True)


def _format(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in metrics.items())


def _print_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _quiet(text: str) -> None:
    pass
