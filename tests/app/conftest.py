"""Fixtures for the app tests: a private settings location, the window, real clips."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QSettings

# Never read or write the user's settings: every QSettings in INI format lives under here.
_SETTINGS_ROOT = Path(os.environ.get("TMPDIR", "/tmp")) / f"cadenza-test-settings-{os.getpid()}"
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(_SETTINGS_ROOT))
QSettings.setDefaultFormat(QSettings.Format.IniFormat)


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The per-user state folder (the session's autosave, the recent lists) under tmp_path:
    no test writes into the real home."""
    folder = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder


@pytest.fixture(autouse=True)
def settings_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh, empty settings folder for each test."""
    folder = tmp_path / "settings"
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield folder
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(_SETTINGS_ROOT))


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XDG data folder for each test: dragged-out clips land under it, never in the
    user's own ``~/.local/share/cadenza/exports``."""
    folder = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(folder))
    return folder


@pytest.fixture(scope="session")
def piano_files(datasets_dir: Path) -> list[Path]:
    """Real piano performances (ASAP), smallest first."""
    files = sorted((datasets_dir / "piano" / "asap").rglob("*.mid"),
                   key=lambda p: (p.stat().st_size, str(p)))
    if not files:
        pytest.fail(f"no MIDI files under {datasets_dir / 'piano' / 'asap'}")
    return files


@pytest.fixture(scope="session")
def piano_file(piano_files: list[Path]) -> Path:
    """A real piece of a few hundred notes or more: the first file past 20 kB."""
    return next((p for p in piano_files if p.stat().st_size > 20_000), piano_files[-1])


@pytest.fixture()
def short_piano_clip(piano_file: Path):  # type: ignore[no-untyped-def]
    """The first 5 seconds of a real piano piece, as a MIDI clip."""
    from app.clips import Clip
    from models.midi_io import read_midi

    seq = read_midi(piano_file).trim(0.0, 5.0)
    assert seq.notes
    return Clip(piano_file.stem + " (5 s)", sequence=seq, source=piano_file)


@pytest.fixture()
def wav_file(tmp_path: Path) -> Path:
    """A 1.5 s stereo WAV: a 440 Hz tone that fades out, written with soundfile."""
    sr = 44100
    t = np.arange(int(1.5 * sr)) / sr
    tone = 0.6 * np.sin(2 * np.pi * 440 * t) * np.linspace(1.0, 0.0, t.size)
    path = tmp_path / "tone.wav"
    sf.write(path, np.stack([tone, 0.5 * tone], axis=1).astype(np.float32), sr)
    return path


@pytest.fixture()
def window(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The main window, shown, with the dark theme; no compute probe (it imports TensorFlow)."""
    from app.main_window import MainWindow, apply_theme, create_app

    app = create_app()
    apply_theme(app, "dark")
    win = MainWindow(probe_compute=False, drag_folder=tmp_path / "drag")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    qtbot.wait(20)  # the deferred audio/MIDI checks
    return win
