"""Fixtures shared by every test: the data sets, an artifacts folder, a real JACK server."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("CADENZA_DATASETS", ROOT.parent / "shared" / "datasets"))
ARTIFACTS = ROOT / "test-artifacts"

# Tests never touch the user's real settings or sound system defaults.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# A JACK client must never start a server on its own: the fixture below decides.
os.environ["JACK_NO_START_SERVER"] = "1"


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS.is_dir():
        pytest.fail(f"the data sets are missing: {DATASETS} (see ../shared/datasets/README.md)")
    return DATASETS


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _jack_running() -> bool:
    probe = subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=10)
    return probe.returncode == 0 and "system:" in probe.stdout


@pytest.fixture(scope="session")
def jack_server() -> Iterator[str]:
    """A real JACK server with the dummy driver at 48 kHz, for MIDI and audio tests.

    Uses one that already runs; otherwise starts ``jackd -d dummy -r 48000``, stopped at the end.
    """
    if shutil.which("jackd") is None:
        pytest.fail("jackd is not installed: run the README's test command, which installs jackd2")
    if _jack_running():
        yield "existing"
        return
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen(
        ["jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "512"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jackd exited at start with code {proc.returncode}")
        if _jack_running():
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("jackd did not come up within 15 s")
    try:
        yield "started"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
