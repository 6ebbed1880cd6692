"""The shared training loop (models/training.py): resume, killed runs, history, old folders.

Tiny models trained for a few steps on real files; runs that must be killed or run on another
backend go through the real ``cadenza train`` command in a process of their own.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from models.errors import CadenzaError
from tests.models import card_text

# Trainings of a few seconds each, minutes on a CPU shared with other work.
pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
QUIET = {"verbose": 0, "log": lambda s: None}


@pytest.fixture(scope="module")
def piano(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five short POP909 songs (symlinked)."""
    files = sorted((datasets_dir / "piano" / "pop909").glob("*.mid"),
                   key=lambda p: (p.stat().st_size, p.name))[20:25]
    data = tmp_path_factory.mktemp("piano")
    for f in files:
        (data / f.name).symlink_to(f)
    return data


@pytest.fixture(scope="module")
def melodies(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.midi_io import read_midi

    files = [f for f in sorted((datasets_dir / "melody" / "nottingham").glob("*.mid"))[::5]
             if [(t.numerator, t.denominator) for t in read_midi(f).time_signatures] == [(4, 4)]]
    data = tmp_path_factory.mktemp("melodies")
    files = files[:24]
    for f in files:
        (data / f.name).symlink_to(f)
    return data


def train_tiny(data: Path, out: Path, steps: int, **kwargs: object):  # noqa: ANN201
    from models.performance_rnn.train import train

    args = {"config_name": "tiny", "checkpoint_steps": 3, "val_windows": 2, "seq_len": 32,
            "batch_size": 4, **QUIET, **kwargs}
    return train(data, out, steps=steps, **args)


def weights(folder: Path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    with h5py.File(folder / "model.weights.h5") as f:
        f.visititems(lambda name, v: found.__setitem__(name, np.asarray(v))
                     if isinstance(v, h5py.Dataset) else None)
    return found


def history(folder: Path) -> dict:
    return json.loads((folder / "history.json").read_text())


def cadenza(*args: str) -> list[str]:
    """The command line of ``cadenza ARGS`` from this checkout."""
    return [sys.executable, "-m", "app.cli", *args]


def cadenza_env(backend: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if backend:
        env["KERAS_BACKEND"] = backend
    return env


# ------------------------------------------------------------------------------- resuming
def test_a_resumed_run_goes_on_exactly_as_one_that_never_stopped(piano: Path,
                                                                  tmp_path: Path) -> None:
    """Six steps in one run, or three and three more after a resume: the same weights to the
    bit (the optimizer's moments and step came back, the learning rate decays on from step 3,
    and step k trains on the same batch either way), and the same loss for steps 4-6."""
    from keras import ops

    from models.performance_rnn.model import get_training, load_model
    from models.performance_rnn.train import compile_model
    from models.training import load_state

    whole = train_tiny(piano, tmp_path / "whole", 6, learning_rate=5e-3, lr_decay=0.9)
    first = train_tiny(piano, tmp_path / "resumed", 3, learning_rate=5e-3, lr_decay=0.9)
    said: list[str] = []
    second = train_tiny(piano, tmp_path / "resumed", 6, log=said.append)
    assert (first.step, second.step, whole.step) == (3, 6, 6)
    assert f"resuming {tmp_path / 'resumed'} at step 3" in said
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    log_a, log_b = history(tmp_path / "whole")["log"], history(tmp_path / "resumed")["log"]
    assert [e["step"] for e in log_b] == [3, 6]
    assert log_a[-1]["loss"] == log_b[-1]["loss"] and log_a[-1]["val_nll"] == log_b[-1]["val_nll"]
    runs = history(tmp_path / "resumed")["runs"]
    assert [r["start_step"] for r in runs] == [0, 3]
    assert [r["settings"]["lr_decay"] for r in runs] == [0.9, 0.9]  # the run's own
    model = load_model(tmp_path / "resumed")
    compile_model(model, get_training("tiny", learning_rate=5e-3, lr_decay=0.9))
    optimizer = model.keras_model.optimizer
    assert load_state(tmp_path / "resumed", model.keras_model, optimizer) == 6
    assert float(ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(5e-3 * 0.9 ** 6)
    # Weights without optimizer state in the folder; all of it in the state file.
    assert not any(k.startswith("optimizer") for k in b)
    with np.load(tmp_path / "resumed" / "train_state.npz") as state:
        assert int(state["step"]) == 6 and int(state["optimizer_00000"]) == 6
    # Nothing left to do: no new run, and it says so.
    said.clear()
    assert train_tiny(piano, tmp_path / "resumed", 6, log=said.append).step == 6
    assert any("already trained for 6 steps" in line for line in said)
    assert len(history(tmp_path / "resumed")["runs"]) == 2


def test_a_warm_up_raises_the_rate_and_resumes_where_it_was(piano: Path, tmp_path: Path) -> None:
    """--warmup-steps: the rate rises linearly, then decays; a resumed run takes the same rate
    at the same step, and the first steps move the weights less than without the warm-up."""
    from keras import ops

    from models.performance_rnn.model import get_training, load_model
    from models.performance_rnn.train import compile_model
    from models.training import load_state

    train_tiny(piano, tmp_path / "warm", 3, learning_rate=5e-3, lr_decay=0.9, warmup_steps=10)
    train_tiny(piano, tmp_path / "warm", 6)
    train_tiny(piano, tmp_path / "cold", 6, learning_rate=5e-3, lr_decay=0.9)
    runs = history(tmp_path / "warm")["runs"]
    assert [r["settings"]["warmup_steps"] for r in runs] == [10, 10]
    assert "warm-up over 10 steps" in card_text(tmp_path / "warm")
    model = load_model(tmp_path / "warm")
    compile_model(model, get_training("tiny", learning_rate=5e-3, lr_decay=0.9, warmup_steps=10))
    optimizer = model.keras_model.optimizer
    assert load_state(tmp_path / "warm", model.keras_model, optimizer) == 6
    assert float(ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(
        5e-3 * 0.9 ** 6 * 7 / 10)
    # Both runs start from the same seeded weights; the warm one has moved less.
    train_tiny(piano, tmp_path / "fresh", 1, learning_rate=1e-12)
    start, warm, cold = (weights(tmp_path / name) for name in ("fresh", "warm", "cold"))
    moved = {name: sum(float(np.abs(w[k] - start[k]).sum()) for k in start)
             for name, w in (("warm", warm), ("cold", cold))}
    assert 0 < moved["warm"] < 0.7 * moved["cold"]


def test_the_time_budget_stops_with_a_checkpoint(piano: Path, tmp_path: Path) -> None:
    said: list[str] = []
    result = train_tiny(piano, tmp_path / "out", 500, max_minutes=1e-4, log=said.append)
    assert result.step == 1  # the limit was behind it after the first step
    assert any("time limit" in line for line in said)
    assert [c["step"] for c in history(tmp_path / "out")["checkpoints"]] == [1]
    with np.load(tmp_path / "out" / "train_state.npz") as state:
        assert int(state["step"]) == 1


def _state_step(out: Path) -> int:
    if not (out / "train_state.npz").is_file():
        return -1
    with np.load(out / "train_state.npz") as state:
        return int(state["step"])


def _check_whole(out: Path) -> int:
    """Every file of a model folder reads, whatever moment the run was killed at; returns the
    step of the state a rerun resumes from."""
    from models.performance_rnn import load_from_dir

    load_from_dir(out)  # config.json and model.weights.h5
    history(out)
    assert "## Training" in (out / "MODEL_CARD.md").read_text()
    with np.load(out / "train_state.npz") as state:
        step = int(state["step"])
        assert int(state["optimizer_00000"]) == step
    return step


def test_a_killed_run_resumes_from_its_last_whole_checkpoint(piano: Path, tmp_path: Path) -> None:
    """``cadenza train`` killed (SIGKILL) at a random moment, twice, while it writes a
    checkpoint after every step: the folder always loads, and rerunning the command resumes
    from the last checkpoint whose state was written. Stopped with Ctrl-C, it saves one."""
    out = tmp_path / "run"
    args = ["train", "performance", "--data", str(piano), "--out", str(out), "--config", "tiny",
            "--steps", "100000", "--checkpoint-steps", "1", "--val-windows", "2",
            "--seq-len", "32", "--batch-size", "4"]
    rng = random.Random(3)
    stopped_at = []
    for _ in range(2):
        proc = subprocess.Popen(cadenza(*args), env=cadenza_env(), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        deadline = time.monotonic() + 240
        before = stopped_at[-1] if stopped_at else 0
        try:
            while (time.monotonic() < deadline and proc.poll() is None
                   and _state_step(out) < before + 3):
                time.sleep(0.2)
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(rng.uniform(0.0, 0.6))
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
        step = _check_whole(out)
        assert step >= before + 3
        on_disk = [c["step"] for c in history(out)["checkpoints"]]
        assert step <= on_disk[-1] <= step + 1  # the history may be a checkpoint ahead
        stopped_at.append(step)
    # Ctrl-C: a checkpoint at the step it stopped at, then the CLI's exit code for it.
    # Ctrl-C reaches it even when these tests run in the background of a shell, which starts
    # them with SIGINT ignored (a Python started so never turns it into KeyboardInterrupt).
    proc = subprocess.Popen(cadenza(*args), env=cadenza_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        while proc.poll() is None and _state_step(out) < stopped_at[-1] + 3:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    step = _check_whole(out)
    assert f"interrupted at step {step}" in err  # with a checkpoint, or just after one
    assert history(out)["checkpoints"][-1]["step"] == step
    stopped_at.append(step)
    said: list[str] = []
    result = train_tiny(piano, out, stopped_at[-1] + 2, checkpoint_steps=1, log=said.append,
                        command="cadenza train performance again")
    assert f"resuming {out} at step {stopped_at[-1]}" in said and result.step == stopped_at[-1] + 2
    saved = history(out)
    steps = [c["step"] for c in saved["checkpoints"]]
    assert steps == sorted(set(steps)) and steps[-1] == stopped_at[-1] + 2
    runs = saved["runs"]
    assert [r["start_step"] for r in runs] == [0, *stopped_at]
    assert all(r["command"].startswith("cadenza train performance --data") for r in runs[:3])
    assert runs[3]["command"] == "cadenza train performance again"


def test_history_keeps_every_command_and_the_backend_it_ran_on(piano: Path,
                                                               tmp_path: Path) -> None:
    """A run, then the same command resumed on JAX: the card gives both commands, the second
    with its KERAS_BACKEND, so it reproduces the run."""
    pytest.importorskip("jax")
    out = tmp_path / "run"
    args = ["train", "performance", "--data", str(piano), "--out", str(out), "--config", "tiny",
            "--checkpoint-steps", "2", "--val-windows", "2", "--seq-len", "32"]
    first = f"cadenza train performance --data {piano} --out {out} --config tiny --steps 2"
    train_tiny(piano, out, 2, checkpoint_steps=2, batch_size=None, command=first)
    done = subprocess.run(cadenza(*args, "--steps", "4"), env=cadenza_env("jax"), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1])["step"] == 4
    runs = history(out)["runs"]
    assert [(r["backend"], r["start_step"]) for r in runs] == [("tensorflow", 0), ("jax", 2)]
    second = "cadenza " + " ".join([*args, "--steps", "4"])
    assert runs[1]["command"] == second
    code = [line.strip() for line in (out / "MODEL_CARD.md").read_text().splitlines()
            if line.startswith("    ")]
    assert code == [first, f"KERAS_BACKEND=jax {second}  # resumed at step 2"]
    _check_whole(out)


# ---------------------------------------------------------------------------- older folders
def _old_config(folder: Path, settings: dict) -> None:
    """config.json as Cadenza wrote it before the split: training settings beside the
    architecture."""
    path = folder / "config.json"
    payload = json.loads(path.read_text())
    payload["config"] = {**payload["config"], **settings}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _old_optimizer_state(folder: Path, names: str = "v{:04d}", extra: dict | None = None,
                         constant_rate: float | None = None) -> list[np.ndarray]:
    """train_state.npz as the families wrote it before the shared loop: the optimizer's
    variables only (NSynth's also with the constant learning rate at index 1)."""
    with np.load(folder / "train_state.npz") as state:
        values = [state[k] for k in sorted(state.files) if k.startswith("optimizer_")]
    if constant_rate is not None:
        values.insert(1, np.float32(constant_rate))
    (folder / "train_state.npz").unlink()
    np.savez(folder / "train_state.npz", **{names.format(i): v for i, v in enumerate(values)},
             **(extra or {}))
    return values


def test_an_old_performance_run_folder_resumes(piano: Path, tmp_path: Path) -> None:
    """Settings in config.json, a history without them, the weights file of a compiled model
    (optimizer variables in it), the optimizer alone in train_state.npz."""
    from models.checkpoint import load_weights
    from models.performance_rnn.model import build_model, get_config, get_training
    from models.performance_rnn.train import compile_model

    out = tmp_path / "old"
    train_tiny(piano, out, 3, learning_rate=4e-3, lr_decay=0.95, command="cadenza OLD")
    saved = history(out)
    settings = saved["runs"][0].pop("settings")
    _old_config(out, settings)
    (out / "history.json").write_text(json.dumps(
        {"runs": saved["runs"], "checkpoints": [{k: c[k] for k in ("step", "val_nll", "loss",
                                                                    "minutes", "time")}
                                                for c in saved["checkpoints"]]}))
    model = build_model(get_config("tiny"))
    load_weights(model.keras_model, out)
    compile_model(model, get_training("tiny", **settings))
    model.keras_model.save_weights(str(out / "model.weights.h5"))  # with the optimizer's
    with h5py.File(out / "model.weights.h5") as f:
        assert "optimizer" in f
    _old_optimizer_state(out)

    said: list[str] = []
    result = train_tiny(piano, out, 6, log=said.append, command="cadenza NEW")
    assert f"resuming {out} at step 3" in said and result.step == 6
    new = history(out)
    assert [r["command"] for r in new["runs"]] == ["cadenza OLD", "cadenza NEW"]
    assert new["runs"][1]["settings"]["learning_rate"] == 4e-3  # from the old config.json
    assert [c["step"] for c in new["checkpoints"]] == [3, 6]
    assert "learning_rate" not in json.loads((out / "config.json").read_text())["config"]
    assert "cadenza NEW # resumed at step 3" in card_text(out)


def test_an_old_music_vae_run_folder_resumes(melodies: Path, tmp_path: Path) -> None:
    """MusicVAE's history before the shared loop: command lines with a note, epochs, config."""
    from models.music_vae.train import train

    out, cache = tmp_path / "old", tmp_path / "cache"
    kwargs = {"size": "tiny", "cache_dir": cache, "steps_per_epoch": 2, "val_examples": 8,
              "verbose": 0}
    train("melody-2bar", [str(melodies)], out, steps=4, command="cadenza OLD",
          overrides={"validation_fraction": 0.25, "sampling_rate": 0.5}, **kwargs)
    saved = history(out)
    settings = saved["runs"][0]["settings"]
    _old_config(out, settings)
    config = json.loads((out / "config.json").read_text())["config"]
    (out / "history.json").write_text(json.dumps({
        "commands": ["cadenza OLD  # from step 0"],
        "epochs": [*saved["log"], {"step": 4, "seconds": 12.0, "final": True,
                                   **{k: saved["checkpoints"][-1][k] for k in (
                                       "reconstruction_accuracy", "kl", "examples")}}],
        "config": config}))
    _old_optimizer_state(out)

    result = train("melody-2bar", [str(melodies)], out, steps=6, command="cadenza NEW", **kwargs)
    assert result.step == 6 and result.val_accuracy is not None
    new = history(out)
    assert [(r["command"], r.get("note")) for r in new["runs"]] == [
        ("cadenza OLD", "from step 0"), ("cadenza NEW", None)]
    assert new["runs"][1]["settings"]["sampling_rate"] == 0.5  # scheduled sampling goes on
    assert new["runs"][1]["backend"] == "tensorflow"
    assert [e["step"] for e in new["log"]] == [2, 4, 6]
    assert new["checkpoints"][0]["minutes"] == pytest.approx(0.2)
    text = card_text(out)
    assert "cadenza OLD # from step 0 cadenza NEW # resumed at step 4" in text


def test_an_old_nsynth_run_folder_resumes_and_refuses_another_config(tmp_path: Path) -> None:
    """NSynth before the shared loop: no history.json (its log in train_state.npz with the
    step, its command on the card) and the optimizer's constant learning rate in the state."""
    from models.nsynth.dataset import build_dataset
    from models.nsynth.train import train

    data = tmp_path / "data"
    build_dataset(data, programs=[0, 73], pitches=[60], velocities=[100])
    out = tmp_path / "old"
    train(data, out, preset="tiny", steps=4, eval_every=2, seed=1, command="cadenza OLD")
    saved = history(out)
    _old_config(out, saved["runs"][0]["settings"])
    (out / "history.json").unlink()
    (out / "MODEL_CARD.md").write_text("# NSynth WaveNet autoencoder\n\n- command: `cadenza OLD`\n")
    log = [{"step": e["step"], "loss": e["loss"], "val_loss": e["val_loss"], "seconds": 3.0}
           for e in saved["log"]]
    _old_optimizer_state(out, "opt_{}", constant_rate=1e-2, extra={
        "step": np.int64(4), "rng": np.array("{}"), "history": np.array(json.dumps(log))})

    lines: list[str] = []
    result = train(data, out, steps=6, eval_every=2, log=lines.append, command="cadenza NEW")
    assert f"resuming {out} at step 4" in lines and result.step == 6
    new = history(out)
    assert [r["command"] for r in new["runs"]] == ["cadenza OLD", "cadenza NEW"]
    assert [e["step"] for e in new["log"]] == [2, 4, 6]
    assert new["runs"][1]["settings"] == saved["runs"][0]["settings"]  # tiny's, from config.json
    with pytest.raises(CadenzaError, match="different config.*--fresh"):
        train(data, out, preset="small", steps=8, log=lines.append)
    fresh = train(data, out, preset="tiny", steps=2, eval_every=2, fresh=True, command="again")
    assert fresh.step == 2 and [r["command"] for r in history(out)["runs"]] == ["again"]


# ------------------------------------------------------------------- the shipped folders
def _old_form_copy(name: str, tmp_path: Path) -> Path:
    """A copy of a shipped folder as it was before the split: its last run's training settings
    in config.json."""
    from models.registry import SHIPPED_DIR

    copy = tmp_path / name
    shutil.copytree(SHIPPED_DIR / name, copy)
    _old_config(copy, history(copy)["runs"][-1]["settings"])
    return copy


def test_shipped_folders_hold_the_architecture_and_their_settings_apart(tmp_path: Path) -> None:
    """config.json has the architecture alone, history.json the settings of the run behind the
    weights; an old-form copy (settings in config.json) builds the same architecture."""
    from models.ddsp.config import DDSPConfig, DDSPTraining
    from models.music_vae.model import MusicVAETraining, load_config
    from models.nsynth.model import NSynthConfig, NSynthTraining
    from models.performance_rnn.model import PerformanceTraining, read_config
    from models.registry import SHIPPED_DIR
    from models.training import read_history, recorded_settings

    kinds = {"performance": (read_config, PerformanceTraining),
             "music_vae": (load_config, MusicVAETraining),
             "nsynth": (lambda d: _nsynth_config(d, NSynthConfig), NSynthTraining),
             "ddsp": (lambda d: _nsynth_config(d, DDSPConfig), DDSPTraining)}
    for folder in sorted(p for p in SHIPPED_DIR.iterdir() if (p / "config.json").is_file()):
        payload = json.loads((folder / "config.json").read_text())
        read, settings_type = kinds[payload["family"]]
        assert not {f for f in settings_type.__dataclass_fields__} & set(payload["config"])
        settings = recorded_settings(folder, settings_type, read_history(folder))
        assert settings is not None, folder.name
        old = _old_form_copy(folder.name, tmp_path)
        assert read(old) == read(folder)
        assert recorded_settings(old, settings_type, {"runs": []}) == settings


def _nsynth_config(folder: Path, cls: type):  # noqa: ANN202
    from models.checkpoint import config_from_dict, read_model_dir

    return config_from_dict(cls, read_model_dir(folder)["config"])


def test_an_old_form_shipped_folder_generates_the_same_and_warm_starts(piano: Path,
                                                                       tmp_path: Path) -> None:
    """The shipped Continue model and an old-form copy of it continue a phrase identically for
    a seed; a warm start from the copy takes its settings from its config.json."""
    from models.midi_io import midi_bytes, read_midi
    from models.performance_rnn import load_from_dir
    from models.performance_rnn.generate import Continuer
    from models.registry import SHIPPED_DIR

    old = _old_form_copy("performance-small", tmp_path)
    primer = read_midi(ROOT / "assets" / "examples" / "piano-phrase.mid")
    takes = []
    for folder in (SHIPPED_DIR / "performance-small", old):
        session = Continuer(load_from_dir(folder))
        session.prime(primer)
        takes.append([midi_bytes(t) for t in session.generate(3.0, variations=2, seed=11)])
    assert takes[0] == takes[1] and takes[0][0] != takes[0][1]

    out = tmp_path / "warm"
    result = train_tiny(piano, out, 1, config_name="small", init_from=old, seq_len=32,
                        batch_size=2, command="cadenza WARM")
    assert result.step == 1
    run = history(out)["runs"][-1]
    assert run["init_from"] == str(old) and run["init"] == "weights"
    assert run["settings"]["learning_rate"] == 0.0006 and run["settings"]["lr_decay"] == 0.9995
    shipped = history(SHIPPED_DIR / "performance-small")
    assert history(out)["lineage"] == [*shipped["lineage"], *shipped["runs"]]
    assert card_text(out).count("cadenza train performance") == 9
