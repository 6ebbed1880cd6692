"""Writes under attack, each in processes of their own: SIGKILL in the middle of writing (the
old file, folder or model stays whole), a full disk (``RLIMIT_FSIZE``: one line, the old file
kept) and two writers at one path (each result whole, never a mix)."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from models.midi_io import read_midi
from tests.hostile.writer import LEVELS

TAG_OF = {round(level, 3): tag for tag, level in LEVELS.items()}

ROOT = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("writer.py")
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _start(*args: str, limit: int | None = None) -> subprocess.Popen:
    def cap() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen([sys.executable, str(WRITER), *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=cap)


def _ready(proc: subprocess.Popen) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "READY", (line, proc.stderr.read() if proc.stderr else "")


def _kill_while_writing(proc: subprocess.Popen, rng: random.Random) -> None:
    _ready(proc)
    time.sleep(rng.uniform(0.0, 0.25))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _tags(folder: Path) -> set[str]:
    """The tags of one folder's files, read through one handle on the folder (so a folder
    renamed away meanwhile is still the one read)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        def read(name: str) -> str:
            with open(name, opener=lambda path, flags: os.open(path, flags, dir_fd=fd)) as f:
                return f.read()

        info = json.loads(read("instrument.json"))
        tags = {info["tag"]}
        for name in info["files"]:
            level = sf.read(os.open(name, os.O_RDONLY, dir_fd=fd), closefd=True)[0][100]
            tags.add(TAG_OF[round(float(level), 3)])
        assert "morph-p036.wav" in read("instrument.sfz")
    finally:
        os.close(fd)
    return tags


@pytest.mark.parametrize("trial", range(2))
def test_sigkill_while_writing_midi_keeps_a_whole_file(tmp_path: Path, trial: int) -> None:
    target = tmp_path / "take.mid"
    subprocess.run([sys.executable, str(WRITER), "midi", str(target), "7"], cwd=ROOT, env=ENV,
                   check=True, capture_output=True, timeout=60)
    rng = random.Random(trial)
    proc = _start("midi", str(target), "4000", "loop")
    _kill_while_writing(proc, rng)
    assert len(read_midi(target).notes) in (7, 4000)  # old or new, whole
    assert not [p for p in tmp_path.iterdir() if p.name != "take.mid"]  # or a hidden part


@pytest.mark.parametrize("trial", range(2))
def test_sigkill_while_replacing_an_instrument_keeps_one_whole_folder(tmp_path: Path,
                                                                      trial: int) -> None:
    from models.files import replacing_folder

    target = tmp_path / "instrument"
    subprocess.run([sys.executable, str(WRITER), "folder", str(target), "old"], cwd=ROOT,
                   env=ENV, check=True, capture_output=True, timeout=60)
    proc = _start("folder", str(target), "new", "loop")
    _kill_while_writing(proc, random.Random(trial))
    if not target.exists():  # killed between its two renames: the next write puts it back
        with pytest.raises(RuntimeError), replacing_folder(target):
            raise RuntimeError("only restoring")
    assert len(_tags(target)) == 1  # never old and new notes mixed
    assert len(list(target.glob("*.wav"))) == 4


@pytest.mark.parametrize("trial", range(2))
def test_sigkill_while_saving_a_model_keeps_its_files_whole(tmp_path: Path, trial: int) -> None:
    target = tmp_path / "model"
    proc = _start("model", str(target), f"tag{trial}", "loop")
    _kill_while_writing(proc, random.Random(trial))
    config = json.loads((target / "config.json").read_text())
    assert config["config"]["tag"] == f"tag{trial}"
    card = (target / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# tag{trial}") and card.endswith("\n")


@pytest.mark.parametrize("mode", ["midi", "folder", "model"])
def test_a_full_disk_keeps_the_old_file_and_says_so(tmp_path: Path, mode: str) -> None:
    """``RLIMIT_FSIZE``: every write past 64 kB fails as on a full disk."""
    target = tmp_path / {"midi": "take.mid", "folder": "instrument", "model": "model"}[mode]
    small = {"midi": "7", "folder": "old", "model": "old"}[mode]
    subprocess.run([sys.executable, str(WRITER), mode, str(target), small], cwd=ROOT, env=ENV,
                   check=True, capture_output=True, timeout=60)
    before = {p.name: p.read_bytes() for p in ([target] if target.is_file()
                                                else sorted(target.iterdir()))}
    big = {"midi": "12000", "folder": "new", "model": "new"}[mode]
    proc = _start(mode, str(target), big, limit=64 * 1024)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cadenza: error: "), err
    assert "Traceback" not in err and "kept" in lines[0], lines[0]
    after = {p.name: p.read_bytes() for p in ([target] if target.is_file()
                                               else sorted(target.iterdir()))}
    if mode == "model":  # each file kept or whole: the old config still reads
        assert json.loads(after["config.json"])["config"]["tag"] == "old"
    else:
        assert after == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_two_writers_to_one_path_each_write_a_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "both.mid"
    writers = [_start("midi", str(target), n, "loop") for n in ("1000", "2000")]
    try:
        for proc in writers:
            _ready(proc)
        counts = set()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # a reader meanwhile: always one whole file
            counts.add(len(read_midi(target).notes))
    finally:
        for proc in writers:
            proc.kill()
            proc.wait(timeout=30)
    assert counts <= {1000, 2000} and counts
    assert len(read_midi(target).notes) in (1000, 2000)


def test_two_writers_to_one_instrument_folder(tmp_path: Path) -> None:
    target = tmp_path / "instrument"
    writers = [_start("folder", str(target), tag, "loop") for tag in ("left", "right")]
    try:
        for proc in writers:
            _ready(proc)
        seen = 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                tags = _tags(target)
            except (FileNotFoundError, NotADirectoryError):  # between two renames
                continue
            assert len(tags) == 1, tags
            seen += 1
    finally:
        for proc in writers:
            proc.kill()
            proc.wait(timeout=30)
    assert seen > 0


def test_an_export_over_an_old_wav_instrument_note_is_whole(tmp_path: Path) -> None:
    """The folder writer's notes are real WAVs: each reads back whole after the runs above."""
    target = tmp_path / "instrument"
    subprocess.run([sys.executable, str(WRITER), "folder", str(target), "x"], cwd=ROOT,
                   env=ENV, check=True, capture_output=True, timeout=60)
    for wav in target.glob("*.wav"):
        data, rate = sf.read(wav)
        assert rate == 16000 and data.shape == (16000,) and np.isfinite(data).all()


# ---------------------------------------------------------------------------- cadenza render
PRIMER = ROOT / "assets" / "examples" / "piano-phrase.mid"
OLD_WAV = np.full((4410, 2), 0.125, np.float32)


def _render(target: Path, limit: int | None = None) -> subprocess.Popen:
    def cap() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen([sys.executable, "-m", "app", "render", str(PRIMER), "-o",
                             str(target)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=cap)


def _old_or_whole_new(target: Path) -> str:
    samples, rate = sf.read(target, dtype="float32", always_2d=True)
    if samples.shape == OLD_WAV.shape and np.allclose(samples, 0.125, atol=1e-4):
        return "old"
    assert rate == 44100 and samples.shape[0] > 44100 * 8, samples.shape  # the whole render
    assert np.abs(samples).max() > 0.01
    return "new"


def test_sigkill_during_cadenza_render_over_an_old_wav_keeps_a_whole_file(tmp_path: Path
                                                                          ) -> None:
    # Killed at moments from start-up to the end of the render (its write included), the
    # target is the old file or the whole new one, never a header with no data.
    target = tmp_path / "take.wav"
    seen = set()
    for delay in (0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.8, 1.2, 2.0):
        sf.write(target, OLD_WAV, 44100, subtype="PCM_16")
        proc = _render(target)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        seen.add(_old_or_whole_new(target))
    assert "old" in seen, seen  # at least one kill came before the new file replaced it


def test_a_full_disk_during_cadenza_render_keeps_the_old_wav(tmp_path: Path) -> None:
    target = tmp_path / "take.wav"
    sf.write(target, OLD_WAV, 44100, subtype="PCM_16")
    proc = _render(target, limit=200_000)  # the render is about 1.6 MB
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cadenza: error:"), err
    assert "Traceback" not in err
    assert _old_or_whole_new(target) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.wav"]  # no part file left
