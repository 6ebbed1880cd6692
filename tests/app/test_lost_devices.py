"""Devices that go away while Cadenza runs: a JACK server killed (SIGKILL) under the app, the
engine and MIDI ports closed after that, a MIDI port that disappears; and the rule that only
:class:`app.devices.Devices` makes an audio engine or a MIDI system.

Everything that kills a server runs in a process of its own (``lost_devices_app.py`` or a short
script): once a JACK server is gone, libjack frees every client of the process at the next new
one, so the test process never has a client on a server it kills. Each killed server is started
once more under the same name and stopped normally, which frees its entry in JACK's table of
servers (there are eight; a killed server keeps its own).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import start_jack, stop_jack

pytestmark = pytest.mark.jack
ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("lost_devices_app.py")


class Server:
    """A private JACK dummy server that a test starts, kills and starts again, by one name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.killed = False

    def start(self) -> None:
        self.proc = start_jack(self.name, "--no-realtime")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)  # jackd runs in a session of its own
        self.proc.wait(timeout=10)
        self.proc, self.killed = None, True

    def close(self) -> None:
        """Stop it normally; a killed one is started again first, to free its entry."""
        if self.proc is None and self.killed:
            self.start()
        if self.proc is not None:
            stop_jack(self.proc)
            self.proc = None
        for sem in Path("/dev/shm").glob(f"jack_sem.*_{self.name}_*"):
            sem.unlink(missing_ok=True)  # left by the clients of a killed server


@pytest.fixture()
def server() -> Iterator[Server]:
    jack = Server(f"cadenza-lost-{os.getpid()}")
    yield jack
    jack.close()


@pytest.fixture()
def clip_wav(tmp_path: Path) -> Path:
    """A 30 s quiet stereo tone: long enough to be playing when the server is killed."""
    sr = 48000
    t = np.arange(30 * sr) / sr
    tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    path = tmp_path / "long-tone.wav"
    sf.write(path, np.stack([tone, tone], axis=1), sr)
    return path


class App:
    """``lost_devices_app.py`` in a process of its own, on the JACK server ``server``."""

    def __init__(self, mode: str, server: str, clip: Path, tmp: Path, artifacts: Path) -> None:
        env = dict(os.environ, JACK_DEFAULT_SERVER=server, QT_QPA_PLATFORM="offscreen",
                   PYTHONPATH=str(ROOT), CADENZA_NO_REALTIME="1")
        settings = tmp / f"settings-{mode}"
        settings.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, str(SCENARIO), mode, str(settings), str(clip), str(artifacts)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1)

    def expect(self, tag: str, timeout: float = 90.0) -> dict:
        """The data of the next ``TAG {...}`` line it prints."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(timeout=10)
                pytest.fail(f"the app ended before {tag} (code {self.proc.returncode}): "
                            f"{self.proc.stderr.read()[-3000:] if self.proc.stderr else ''}")
            if line.startswith(f"{tag} "):
                return json.loads(line[len(tag) + 1:])
            assert not line.startswith("FAILED"), line
        pytest.fail(f"no {tag} within {timeout} s")

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float) -> tuple[float, int, str]:
        """Seconds until the process ended (``timeout`` at most), its exit code, its stderr."""
        started = time.monotonic()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the app did not end within {timeout} s")
        took = time.monotonic() - started
        return took, self.proc.returncode, self.proc.stderr.read() if self.proc.stderr else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_quitting_after_the_server_was_killed_ends_at_once(server, clip_wav, tmp_path,
                                                           artifacts_dir):
    """Playing a clip through JACK, the server is SIGKILLed, then the app is quit at once (before
    or just after it noticed): the process ends within 1 s, cleanly, every time."""
    times = []
    for _ in range(3):
        server.start()
        app = App("play", server.name, clip_wav, tmp_path, artifacts_dir)
        try:
            app.expect("PLAYING")
            server.kill()
            app.send("quit")
            took, code, err = app.finish(timeout=15)
        finally:
            app.kill()
        times.append(round(took, 3))
        assert code == 0, err[-3000:]
        assert "Assertion" not in err and "Segmentation" not in err, err[-3000:]
    (artifacts_dir / "quit-after-jack-killed.txt").write_text(
        " ".join(f"{t:.3f}" for t in times) + " seconds from Quit to the end of the process\n")
    print("quit after the server was killed:", times)
    assert max(times) < 1.0, times


def test_the_app_notices_the_lost_server_and_reconnects(server, clip_wav, tmp_path,
                                                        artifacts_dir):
    """Playing through JACK with the Live dock's ports open, the server is killed: playback
    stops, the status bar and the live panel say so and offer Reconnect, export still works;
    with a server again, Reconnect brings audio and MIDI back and a clip plays."""
    server.start()
    app = App("live", server.name, clip_wav, tmp_path, artifacts_dir)
    try:
        app.expect("PLAYING")
        server.kill()
        app.send("killed")
        seen = app.expect("NOTICED")
        assert seen["ok"] and seen["seconds"] < 2.0, seen
        assert not seen["playing"] and seen["transport"] == "Audio lost", seen
        assert seen["audio"] == "Audio: lost" and "went away" in seen["audio_tip"], seen
        assert seen["midi"] == "MIDI: lost", seen
        assert seen["reconnect_visible"] and "Reconnect" in seen["message"], seen
        assert "lost" in seen["message"] and "\n" not in seen["message"], seen
        assert "lost" in seen["panel"] and seen["panel_reconnect"], seen
        assert not seen["panel_input"] and not seen["panel_output"], seen
        assert not seen["recording"], seen  # the take ended with the lost ports
        assert seen["export"], seen  # export still works
        assert Path(seen["screenshot"]).stat().st_size > 10_000
        server.start()
        app.send("up")
        back = app.expect("REPLAYED")
        assert back["reconnected"] and back["playing"], back
        assert back["audio"] == "Audio: ready" and back["midi"] == "MIDI: ready", back
        assert not back["reconnect_visible"] and back["beats"] > 10, back
        assert back["generations"] == 2, back  # a fresh PortAudio for the new server
        app.send("quit")
        took, code, err = app.finish(timeout=15)
    finally:
        app.kill()
    assert code == 0, err[-3000:]
    assert took < 3.0


_CLOSE = r"""
import json, os, signal, sys, time
import numpy as np
from app.devices import Devices
from models.audio_io import Audio

devices = Devices(audio_device="system")
engine = devices.audio()
engine.play(Audio(np.zeros((48000 * 30, 2), np.float32), 48000))
midi = devices.midi()
out = midi.open_virtual_output("CloseOut")
inp = midi.open_input("CloseOut", lambda m, d: None)
time.sleep(0.3)
assert engine.is_playing and engine.heartbeat > 10
print("READY", flush=True)
sys.stdin.readline()  # the server was killed
time.sleep(0.2)
took = {}
for name, close in (("engine", engine.close), ("midi_output", out.close),
                    ("midi_input", inp.close), ("devices", devices.close)):
    t0 = time.monotonic()
    close()
    took[name] = round(time.monotonic() - t0, 3)
print("CLOSED", json.dumps(took), flush=True)
"""


def test_close_returns_within_a_second_after_the_server_was_killed(server):
    server.start()
    env = dict(os.environ, JACK_DEFAULT_SERVER=server.name, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _CLOSE], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=1)
    try:
        assert proc.stdout.readline().startswith("READY"), proc.stderr.read()
        server.kill()
        proc.stdin.write("killed\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line.startswith("CLOSED"), proc.stderr.read()[-3000:]
        took = json.loads(line.split(" ", 1)[1])
        started = time.monotonic()
        code = proc.wait(timeout=10)
        exit_took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print("close after the server was killed:", took, f"exit {exit_took:.3f} s")
    assert all(seconds < 1.0 for seconds in took.values()), took
    assert code == 0 and exit_took < 2.0, (code, proc.stderr.read()[-3000:])


def test_only_devices_makes_an_audio_engine_or_a_midi_system():
    """One owner per device: outside app/devices.py nothing in app/ constructs either (code,
    comments and docstrings alike)."""
    sites: dict[str, list[str]] = {"AudioEngine(": [], "MidiSystem(": []}
    for path in sorted((ROOT / "app").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name in sites:
                if re.search(rf"\b{re.escape(name)}", line):
                    sites[name].append(f"{path.relative_to(ROOT)}:{number}")
    assert len(sites["AudioEngine("]) == 1 and sites["AudioEngine("][0].startswith(
        "app/devices.py:"), sites
    assert len(sites["MidiSystem("]) == 1 and sites["MidiSystem("][0].startswith(
        "app/devices.py:"), sites


_STALL = r"""
import json, sys, time
import numpy as np
from app.devices import Devices
from models.audio_io import Audio

devices = Devices(audio_device="system")
engine = devices.audio()
engine.play(Audio(np.zeros((48000 * 30, 2), np.float32), 48000))
time.sleep(0.3)
assert devices.check() == [] and engine.heartbeat > 10
print("READY", flush=True)
sys.stdin.readline()  # the server was stopped (SIGSTOP): it still answers, it plays no more
t0 = time.monotonic()
losses = []
while not losses and time.monotonic() - t0 < 6:
    losses = devices.check()
    time.sleep(0.05)
noticed = time.monotonic() - t0
t0 = time.monotonic()
devices.close()
print("LOST", json.dumps({"seconds": round(noticed, 3), "close": round(time.monotonic() - t0, 3),
                          "losses": [[loss.kind, loss.reason] for loss in losses],
                          "engine": devices.engine is None}), flush=True)
"""


def test_a_device_that_stops_asking_for_sound_is_noticed(server):
    """The server is frozen (SIGSTOP: its socket still answers, so only the heartbeat can tell):
    the engine's callback stops, the loss is noticed within the heartbeat's 2 s, and closing
    and exiting still return at once."""
    server.start()
    env = dict(os.environ, JACK_DEFAULT_SERVER=server.name, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _STALL], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=1)
    assert server.proc is not None
    try:
        assert proc.stdout.readline().startswith("READY"), proc.stderr.read()
        os.killpg(server.proc.pid, signal.SIGSTOP)
        proc.stdin.write("stopped\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line.startswith("LOST"), proc.stderr.read()[-3000:]
        seen = json.loads(line.split(" ", 1)[1])
        started = time.monotonic()
        code = proc.wait(timeout=10)
        exit_took = time.monotonic() - started
    finally:
        os.killpg(server.proc.pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print("a frozen server:", seen, f"exit {exit_took:.3f} s")
    assert seen["losses"] and seen["losses"][0][0] == "audio", seen
    assert "stopped asking for sound" in seen["losses"][0][1], seen
    assert 1.9 < seen["seconds"] < 3.5 and seen["close"] < 1.0 and seen["engine"], seen
    assert code == 0 and exit_took < 2.0, (code, proc.stderr.read()[-3000:])
