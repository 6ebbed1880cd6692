# ruff: noqa: F811 - the clock_jack fixture is imported from test_clock
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
import time
from pathlib import Path

import numpy as np
import pytest

from tests.app.test_clock import clock_jack  # noqa: F401 - fixture

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


@pytest.mark.timing
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


PEER_110 = r"""
import sys, time
import link
peer = link.Link(110.0)
peer.enabled = True
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    state = peer.captureAppSessionState()
    if abs(state.tempo() - 110.0) > 1e-3:
        state.setTempo(110.0, peer.clock().micros())
        peer.commitAppSessionState(state)
    time.sleep(0.02)
peer.enabled = False
"""


@pytest.mark.timing
def test_cadenza_play_on_a_link_session(clock_jack: str, tmp_path: Path) -> None:
    """``cadenza play --sync link`` in a private network with another Link app at 110 BPM:
    it waits for the peer, and plays the 120 BPM file at the session's 110."""
    if importlib.util.find_spec("link") is None:
        pytest.fail("LinkPython-extern is not installed (it is in requirements.lock)")
    import rtmidi

    from models.midi_io import write_midi
    from models.sequence import Note, NoteSequence, TempoChange
    from tests.app.test_clock import Receiver, note_balance

    seq = NoteSequence(notes=[Note(60 + k, 90, 0.25 * k, 0.25 * k + 0.2) for k in range(12)],
                       tempos=[TempoChange(0.0, 120.0)])
    path = tmp_path / "twelve.mid"
    write_midi(seq, path)
    synth = Receiver(rtmidi.API_UNIX_JACK, "link-synth")
    peer = tmp_path / "peer.py"
    peer.write_text(PEER_110)
    script = tmp_path / "run.sh"
    script.write_text(
        f'"{sys.executable}" "{peer}" 12 &\n'
        f'exec "{sys.executable}" -m app play "{path}" --output link-synth --sync link '
        f'--wait 10\n')
    try:
        result = in_private_network_sh(script, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "(1 peers)" in result.stdout, result.stdout
        time.sleep(0.1)
        ons, stuck = note_balance(synth.messages())
        assert ons == 12 and not stuck
        times = np.array([t for t, m in synth.events if m[0] & 0xF0 == 0x90 and m[2] > 0])[4:]
        # 0.25 s apart at 120 BPM is 0.2727 s apart at the session's 110 (at 120 it would be
        # 0.25): the onsets' line has that slope, and each onset lies on it within a few ms (a
        # note can reach the test's receiver late when the loaded machine holds its thread up)
        slope, start = np.polyfit(np.arange(len(times)), times, 1)
        off = np.abs(times - (start + slope * np.arange(len(times))))
        assert abs(slope - 0.25 * 120 / 110) < 0.003, (slope, times)
        assert np.median(off) < 0.004 and off.max() < 0.02, off
    finally:
        synth.close()


def in_private_network_sh(script: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """A shell script run in a new network namespace with loopback (see in_private_network)."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip("Link tests run only in a private network namespace, and unshare -n is not "
                    "permitted here")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), JACK_NO_START_SERVER="1")
    return subprocess.run(["unshare", "-n", "sh", "-c",
                           f'ip link set lo up multicast on && exec sh "{script}"'],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
