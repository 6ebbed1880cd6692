"""The packaged build (packaging/build.sh) runs with a clean environment: no Python on PATH, no
virtual environment, no variables but a home folder (``env -i``).

Building takes minutes and a gigabyte, so this runs only when asked:

    CADENZA_PACKAGE=dist/cadenza-0.1.0-linux-x86_64.tar.gz pytest tests/test_packaged_build.py
    CADENZA_BUILD_PACKAGE=1 pytest tests/test_packaged_build.py     # builds it first

``CADENZA_PACKAGE`` may also name an unpacked folder. The screenshot is written to
``test-artifacts/packaged-window.png``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from models.midi_io import read_midi

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unpacked packaged build's folder (the one holding the ``cadenza`` program)."""
    named = os.environ.get("CADENZA_PACKAGE", "")
    if not named and os.environ.get("CADENZA_BUILD_PACKAGE") == "1":
        built = subprocess.run(["bash", str(ROOT / "packaging" / "build.sh")], cwd=ROOT,
                               capture_output=True, text=True, timeout=1800)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        named = str(next((ROOT / "dist").glob("cadenza-*-linux-*.tar.gz")))
    if not named:
        pytest.skip("the packaged build is checked on request: CADENZA_PACKAGE=PATH "
                    "(a built tarball or folder) or CADENZA_BUILD_PACKAGE=1 (see "
                    "packaging/README.md)")
    path = Path(named).resolve()
    if path.is_dir():
        return path
    out = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(path) as tar:
        tar.extractall(out, filter="tar")
    (folder,) = list(out.iterdir())
    return folder


@pytest.fixture
def run(package: Path, tmp_path: Path):
    """Run the packaged ``cadenza`` under ``env -i`` with a fresh home and an empty PATH."""
    home = tmp_path / "home"
    home.mkdir()
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()

    def run_it(*args: str, extra: tuple[str, ...] = (), timeout: float = 240
               ) -> subprocess.CompletedProcess:
        env = ["env", "-i", f"HOME={home}", f"PATH={empty_bin}", "QT_QPA_PLATFORM=offscreen",
               *extra]
        return subprocess.run([*env, str(package / "cadenza"), *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=timeout)

    return run_it


def test_no_python_on_the_clean_path(package: Path, tmp_path: Path) -> None:
    assert shutil.which("python3", path=str(tmp_path)) is None
    assert not list(package.glob("python3*")) and (package / "cadenza").is_file()
    internal = package / "_internal"
    assert list(internal.glob("libfluidsynth.so*")) and list(internal.glob("libportaudio.so*"))
    assert list((internal / "share" / "cadenza" / "soundfonts").glob("*.sf[23]"))
    assert (internal / "models" / "shipped" / "performance-small" / "config.json").is_file()
    for path in ("share/applications/cadenza.desktop", "share/metainfo/cadenza.metainfo.xml",
                 "share/icons/hicolor/scalable/apps/cadenza.svg", "install-desktop-entry.sh"):
        assert (package / path).is_file(), path


def test_version(run) -> None:
    done = run("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "cadenza 0.1.0"


def test_render_uses_the_bundled_fluidsynth_and_soundfont(run, package: Path,
                                                          tmp_path: Path) -> None:
    example = package / "_internal" / "share" / "cadenza" / "examples" / "piano-phrase.mid"
    out = tmp_path / "phrase.wav"
    done = run("render", str(example), "-o", str(out), extra=("LD_DEBUG=libs",))
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = [line for line in done.stderr.splitlines()
              if "calling init:" in line and "libfluidsynth" in line]
    assert loaded and all(str(package) in line for line in loaded), loaded
    audio, rate = soundfile.read(out)
    assert rate == 44100 and audio.shape[0] > rate * 2
    assert float(np.sqrt(np.mean(np.square(audio)))) > 0.005  # it sounds


def test_continue_writes_a_continuation(run, package: Path, tmp_path: Path) -> None:
    primer = package / "_internal" / "share" / "cadenza" / "examples" / "piano-phrase.mid"
    out = tmp_path / "more.mid"
    done = run("continue", str(primer), "-o", str(out), "--seconds", "3", "--seed", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = read_midi(primer), read_midi(out)
    assert after.total_time > before.total_time + 1.0
    assert len(after.notes) > len(before.notes)


def test_bad_input_is_one_line(run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_text("not MIDI")
    done = run("render", str(bad), "-o", str(tmp_path / "x.wav"))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("cadenza: error: ") and \
        len(done.stderr.strip().splitlines()) == 1


def test_window_screenshot(run, tmp_path: Path, artifacts_dir: Path) -> None:
    from PySide6.QtGui import QImage

    shot = tmp_path / "window.png"
    done = run(extra=(f"CADENZA_SCREENSHOT={shot}",), timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    image = QImage(str(shot))
    assert image.width() >= 800 and image.height() >= 500
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7)
               for y in range(0, image.height(), 7)}
    assert len(colours) > 20  # drawn widgets and text, not a blank surface
    shutil.copyfile(shot, artifacts_dir / "packaged-window.png")
