"""The ``cadenza`` command run as a user runs it: a real process, real files, no sound card."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[2]


def cadenza(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("JACK_NO_START_SERVER", "1")
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def test_help_is_fast_and_lists_every_command() -> None:
    started = time.perf_counter()
    result = cadenza("--help")
    took = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    for command in ("render", "models", "devices", "train", "evaluate"):
        assert command in result.stdout
    assert took < 5.0, f"--help took {took:.1f} s: something heavy is imported at start"


def test_models_lists_without_error() -> None:
    result = cadenza("models")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_devices_without_sound_card_or_midi_system_reports_plainly() -> None:
    # A server name that does not exist: as on a machine with no JACK and no ALSA sequencer.
    result = cadenza("devices", env={"JACK_DEFAULT_SERVER": "cadenza-nowhere"})
    assert result.returncode == 0, result.stderr
    # What was found is said once on stdout; libjack's and TensorFlow's own notes stay out.
    assert result.stderr == ""
    out = result.stdout.lower()
    assert "midi" in out and "audio outputs" in out
    assert "no midi system" in out or "jack" in out


def test_render_writes_audio_of_the_right_length(tmp_path: Path, datasets_dir: Path) -> None:
    source = sorted((datasets_dir / "melody" / "nottingham").rglob("*.mid"))[0]
    out = tmp_path / "tune.wav"
    result = cadenza("render", str(source), "-o", str(out), "--sample-rate", "22050")
    assert result.returncode == 0, result.stderr
    data, rate = soundfile.read(out)
    assert rate == 22050
    assert data.ndim == 2 and data.shape[1] == 2
    assert np.sqrt(np.mean(data**2)) > 1e-3, "render is silent"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "midi"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x00\x00", "zero ticks"),
    ],
)
def test_render_bad_midi_is_one_line_and_exit_2(
    tmp_path: Path, content: bytes, message: str
) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(content)
    result = cadenza("render", str(bad), "-o", str(tmp_path / "out.wav"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cadenza: error:"), result.stderr
    assert message in lines[0].lower()
    assert not (tmp_path / "out.wav").exists()


def test_render_missing_file_and_missing_soundfont(tmp_path: Path, datasets_dir: Path) -> None:
    result = cadenza("render", str(tmp_path / "nope.mid"), "-o", str(tmp_path / "o.wav"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    source = sorted((datasets_dir / "melody" / "nottingham").rglob("*.mid"))[0]
    result = cadenza(
        "render", str(source), "-o", str(tmp_path / "o.wav"),
        "--soundfont", str(tmp_path / "missing.sf2"),
    )
    assert result.returncode == 2 and "soundfont" in result.stderr.lower()
    assert len(result.stderr.strip().splitlines()) == 1


def test_training_commands_are_recorded_as_cadenza_command_lines(monkeypatch) -> None:  # noqa: ANN001
    from app.commands import cli_command

    monkeypatch.setattr(sys, "argv", ["/venv/bin/cadenza", "train", "performance", "--data",
                                      "my piano", "--out", "runs/p"])
    assert cli_command() == "cadenza train performance --data 'my piano' --out runs/p"
    monkeypatch.setattr(sys, "argv", ["/venv/bin/cadenza"])
    assert cli_command() is None


def test_version_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith("cadenza ") and err == ""
