"""The real-time JACK dummy server a timing benchmark runs against (not a benchmark itself).

    with jack_server("clock-bench", period=64) as name:
        ...  # JACK_DEFAULT_SERVER is ``name`` meanwhile

``jackd -R`` (real-time, as musicians run it for MIDI and audio work) with the dummy driver at
48 kHz and ``period`` frames, named ``cadenza-PREFIX-PID``; started in a session of its own and
stopped with SIGTERM (a SIGKILLed server stays in JACK's registry of servers, and too many of
those stop new ones from starting). ``server`` instead names a running one to use as it is.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator

import numpy as np


@contextlib.contextmanager
def jack_server(prefix: str, period: int, server: str | None = None) -> Iterator[str]:
    os.environ["JACK_NO_START_SERVER"] = "1"
    if server:
        os.environ["JACK_DEFAULT_SERVER"] = server
        yield server
        return
    name = f"cadenza-{prefix}-{os.getpid()}"
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(["jackd", "-R", "-n", name, "-d", "dummy", "-r", "48000", "-p",
                             str(period)], stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, JACK_NO_AUDIO_RESERVATION="1"),
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        time.sleep(0.5)  # a client that connects while the server starts up can crash it
        while True:
            probe = subprocess.run(["jack_lsp", "-s", name], capture_output=True, text=True)
            if probe.returncode == 0 and "system:" in probe.stdout:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                said = [line.strip() for line in log if line.strip()]
                raise SystemExit(f"could not start jackd -R ({said[-1] if said else 'no output'}"
                                 f"; exit {proc.poll()}; jack_lsp: {probe.stderr.strip()[-200:]})"
                                 f"; start one and pass --server NAME")
            time.sleep(0.25)
        os.environ["JACK_DEFAULT_SERVER"] = name
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stats(values_ms: list[float] | np.ndarray) -> dict[str, float]:
    """p50/p95/max of the absolute values, in ms."""
    v = np.abs(np.asarray(values_ms, dtype=np.float64))
    return {"n": int(v.size), "p50_ms": round(float(np.percentile(v, 50)), 3),
            "p95_ms": round(float(np.percentile(v, 95)), 3), "max_ms": round(float(v.max()), 3)}
