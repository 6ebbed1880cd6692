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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A ``timing`` test (times measured over a real JACK server: clock pulses, note onsets,
    Link phase) runs once more when it fails. On a loaded 2-core machine the JACK dummy driver
    now and then misses a cycle and drops its MIDI, or a test-side thread is held up a few
    milliseconds; once may be the machine, twice is Cadenza. The rerun shows in pytest's
    summary ("rerun"), so a test that needed one is never hidden."""
    for item in items:
        if item.get_closest_marker("timing") is not None:
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=1))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS.is_dir():
        pytest.fail(f"the data sets are missing: {DATASETS} (see ../shared/datasets/README.md)")
    return DATASETS


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def jack_server_up(name: str) -> bool:
    """Whether the JACK server called ``name`` answers (``jack_lsp`` lists its ports)."""
    probe = subprocess.run(["jack_lsp", "-s", name], capture_output=True, text=True, timeout=10)
    return probe.returncode == 0 and "system:" in probe.stdout


def start_jack(name: str, *flags: str) -> subprocess.Popen:
    """``jackd -n NAME FLAGS -d dummy -r 48000`` started and answering (fails the test if not)."""
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen(
        ["jackd", "-n", name, *flags, "-d", "dummy", "-r", "48000", "-p", "512"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jackd exited at start with code {proc.returncode}")
        if jack_server_up(name):
            return proc
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    pytest.fail("jackd did not come up within 15 s")


def stop_jack(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def jack_server() -> Iterator[str]:
    """A real JACK server with the dummy driver at 48 kHz, for MIDI and audio tests.

    The server has a name of its own (``cadenza-test-PID``), made the default server of this
    process and its children through ``JACK_DEFAULT_SERVER``: test runs side by side on one
    machine (or a musician's own JACK server) never meet.
    """
    if shutil.which("jackd") is None:
        pytest.fail("jackd is not installed: run the README's test command, which installs jackd2")
    name = f"cadenza-test-{os.getpid()}"
    proc = start_jack(name, "--no-realtime")
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    try:
        yield name
    finally:
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old
        stop_jack(proc)


INSTRUMENT_CENTERS = (48, 56, 64, 72)


@pytest.fixture(scope="session")
def flute_instrument_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A morph-instrument folder (WAVs + instrument.sfz) of FluidSynth flute notes every 8
    semitones (16 kHz, 2 s, peak 0.8), as :func:`models.nsynth.instrument.build_instrument`
    writes one: a real instrument without a trained model."""
    import numpy as np

    from models.audio_io import Audio, write_audio
    from models.nsynth.instrument import write_sfz
    from models.render import Renderer
    from models.sequence import Note, NoteSequence

    root = tmp_path_factory.mktemp("flute-instrument")
    files = []
    with Renderer(sample_rate=16000) as r:
        for p in INSTRUMENT_CENTERS:
            seq = NoteSequence(notes=[Note(p, 100, 0.0, 1.6, program=73)])
            x = r.render(seq, tail=0.4).mono().samples[:32000]
            name = f"note-{p}.wav"
            write_audio(root / name, Audio(0.8 * x / np.abs(x).max(), 16000))
            files.append(name)
    write_sfz(root, files, list(INSTRUMENT_CENTERS), release=0.2)
    return root
