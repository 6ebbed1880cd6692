"""Ableton Link between Cadenza (app/link.py) and test-side Link peers, only ever inside a
private network namespace with nothing but loopback (``unshare -n``): no test traffic leaves
the machine. The session runs in tests/app/link_session.py, in a process of its own there."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def in_private_network(script: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``script`` run by this Python in a new network namespace, loopback up with multicast
    (Link finds its peers by multicast); skips the test where that is not permitted."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("Link tests need unshare and ip (util-linux, iproute2) for a private network")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("Link tests run only in a private network namespace, and unshare -n is not "
                    f"permitted here ({probe.stderr.strip() or probe.returncode}): Link would "
                    "otherwise talk on the local network")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run(
        ["unshare", "-n", "sh", "-c",
         'ip link set lo up multicast on && exec "$0" "$1"', sys.executable, str(script)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def test_link_session_tempo_start_stop_phase_and_a_second_peer() -> None:
    if importlib.util.find_spec("link") is None:
        pytest.fail("LinkPython-extern is not installed (it is in requirements.lock): "
                    "run scripts/setup.sh test")
    result = in_private_network(HERE / "link_session.py")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["join_s"] is not None and seen["join_s"] < 3.0
    # on joining, the two agree on one session's tempo (which one is Link's choice)
    cadenza_bpm, peer_bpm = seen["tempo_after_join"]
    assert cadenza_bpm == peer_bpm and cadenza_bpm in (100.0, 120.0)
    assert seen["join_phase_error_ms"] < 2.0
    # tempo both ways, start/stop both ways, within a second
    for key in ("tempo_to_cadenza_s", "tempo_to_peer_s", "start_to_cadenza_s",
                "stop_to_peer_s"):
        assert seen[key] is not None and seen[key] < 1.0, (key, seen)
    # the start was quantized to the bar, and the transport follows the session's beat
    assert seen["start_phase"] < 1e-6 or seen["start_phase"] > 4 - 1e-6
    assert seen["bar_wait_s"] < 60 / 97.5 * 4 + 0.1
    assert max(seen["phase_error_ms"]) < 2.0
    assert seen["transport_error_ms"] < 5.0
    # a second peer joins and takes the session's tempo
    assert seen["second_join_s"] is not None and seen["second_join_s"] < 3.0
    assert abs(seen["second_tempo"] - 97.5) < 0.01
    assert seen["left_s"] is not None


def test_link_is_opt_in() -> None:
    # Nothing in the app or the commands joins Link unless asked: the module is imported only
    # for --sync link (and the Live panel's Link choice).
    for path in (ROOT / "app").rglob("*.py"):
        if path.name == "link.py":
            continue
        for line in path.read_text().splitlines():
            if "import link" in line or "from app.link" in line:
                assert path.name in ("play.py", "sync.py"), path
