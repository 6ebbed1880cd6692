"""The hostile suite: files, arguments, model folders, full disks, kills and two writers.

Almost every case runs in this process through the command line's ``main(argv)`` and must
answer with exit status 2 and one line ``cadenza: error: ...`` on stderr, no traceback, fast,
and without leaving a file behind. The few that must be processes of their own (a kill, a file
size limit, two writers at once) are in ``test_writes.py``.
"""

from __future__ import annotations

import shutil
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "assets" / "examples"


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    seconds: float
    """Wall time: bounded generously (a hang fails it, the machine's load does not)."""
    cpu: float
    """This thread's processor time: the work the command did, whatever else runs."""


Run = Callable[[Sequence[str]], Outcome]


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """``cli([...])``: run ``cadenza ...`` in this process; its exit code, output and time."""

    def run(argv: Sequence[str]) -> Outcome:
        capsys.readouterr()
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
        took, used = time.perf_counter() - started, time.thread_time() - cpu
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err, took, used)

    return run


def assert_refused(outcome: Outcome, *words: str, within: float = 1.0) -> None:
    """Exit 2, one line ``cadenza: error: ...`` naming ``words``, no traceback, in time:
    ``within`` seconds of work (processor time, which a loaded machine does not stretch), and
    ten times that of wall time at most."""
    assert "Traceback" not in outcome.err, outcome.err
    assert outcome.code == 2, (outcome.code, outcome.err, outcome.out)
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1, outcome.err
    assert lines[0].startswith("cadenza: error: "), lines[0]
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])
    assert outcome.cpu < within, f"{outcome.cpu:.2f} s of work: {lines[0]}"
    assert outcome.seconds < 10 * within, f"{outcome.seconds:.2f} s: {lines[0]}"


# ------------------------------------------------------------------------------ MIDI bytes
def vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def smf(*tracks: bytes, fmt: int = 1, division: int = 480) -> bytes:
    """A Standard MIDI File of the given track bodies (end-of-track added)."""
    data = b"MThd" + struct.pack(">LHHh", 6, fmt, len(tracks), division)
    for body in tracks:
        body = body + b"\x00\xff\x2f\x00"
        data += b"MTrk" + struct.pack(">L", len(body)) + body
    return data


def notes_track(count: int, gap: int = 10, pitch: int = 60) -> bytes:
    """``count`` notes with running status: on, ``gap`` ticks, off, next."""
    one = bytes([pitch, 64]) + vlq(gap) + bytes([pitch, 0]) + b"\x00"
    return b"\x00\x90" + (one * count)[:-1]


def tempo_track(count: int) -> bytes:
    """``count`` tempo changes, one every tick, alternating 100 and 140 qpm."""
    slow, fast = (600_000).to_bytes(3, "big"), (428_571).to_bytes(3, "big")
    return b"".join(b"\x01\xff\x51\x03" + (slow if i % 2 else fast) for i in range(count))


def notes_apart(hours: float) -> bytes:
    """Two notes ``hours`` apart at 120 qpm, 480 ticks per quarter."""
    ticks = int(hours * 3600 * 2 * 480)
    first = b"\x00\x90\x3c\x40\x83\x60\x80\x3c\x00"
    return smf(first + vlq(ticks) + b"\x90\x3e\x40\x83\x60\x80\x3e\x00")


def write_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    return path


@pytest.fixture()
def primer(tmp_path: Path) -> Path:
    path = tmp_path / "primer.mid"
    shutil.copy(EXAMPLES / "piano-phrase.mid", path)
    return path


@pytest.fixture()
def melodies(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a.mid", tmp_path / "b.mid"
    shutil.copy(EXAMPLES / "melody-a.mid", a)
    shutil.copy(EXAMPLES / "melody-b.mid", b)
    return a, b


@pytest.fixture()
def sounds(tmp_path: Path) -> list[Path]:
    out = []
    for name in ("sound-cello.wav", "sound-flute.wav", "sound-organ.wav"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
        out.append(tmp_path / name)
    return out
