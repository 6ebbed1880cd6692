"""A JACK server that vanished: commands that touch devices end quickly and cleanly. (The app
playing through a server that is killed, then quit within 1 s, is
``tests/app/test_lost_devices.py``; the server is killed while no client of this process is on
it, so these run the command in a process of its own.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import start_jack, stop_jack

pytestmark = pytest.mark.jack
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv", [["devices", "--no-compute"],
                                  ["duet", "--input", "nothing-here", "--output", "audio"]])
def test_commands_on_a_killed_jack_server_end_quickly(tmp_path: Path, argv: list[str]) -> None:
    name = f"cadenza-hostile-{os.getpid()}"
    proc = start_jack(name, "--no-realtime")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, PYTHONPATH=str(ROOT),
               JACK_NO_START_SERVER="1")
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "app.cli", *argv], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        took = time.monotonic() - started
    finally:
        again = start_jack(name, "--no-realtime")  # frees the killed server's entry
        stop_jack(again)
        for sem in Path("/dev/shm").glob(f"jack_sem.*_{name}_*"):
            sem.unlink(missing_ok=True)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert took < 30, took
    if done.returncode:
        assert done.returncode == 2 and done.stderr.startswith("cadenza: error: "), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
