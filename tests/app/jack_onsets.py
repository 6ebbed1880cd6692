"""Hearing when the audio engine's sound starts, from outside it: a JACK client of its own.

:class:`OnsetProbe` runs a plain libjack client (through ctypes; the JACK-Client package is not
needed) in a process of its own, as a DAW listening to Cadenza would be: in the test's process
its Python process callback would compete for the GIL with the engine's and make JACK skip
cycles. The client has one input port connected to the engine's first output; its process
callback runs in each JACK cycle after the engine's (JACK orders a client after the ones feeding
it) and notes the JACK frame of every onset: the first sample above ``threshold`` after at least
``quiet`` silent frames. It also stamps each cycle's first frame with ``perf_counter()``
(CLOCK_MONOTONIC, the same in every process) on arrival. A cycle cannot be processed before it
starts, so the lower envelope of (arrival - frame / rate) over the cycles around an onset is the
wall time of frame 0 on that stretch of the time line, free of the callback's wake-up delays;
JACK's own ``jack_frames_to_time`` is not used: its filtered clock takes seconds to settle after
a stall of the dummy driver on a busy machine. A frame is heard the playback latency of
``system:playback_1`` after it is in a port buffer, so an onset at frame ``f`` is heard at
``envelope + (f + latency) / rate``. Nothing here uses PortAudio or the engine's own
bookkeeping: it is the independent witness the scheduled-start tests and
``benchmarks/bench_scheduled_start.py`` measure against.
"""

from __future__ import annotations

import collections
import ctypes
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

JACK_NO_START_SERVER = 0x01
JACK_PORT_IS_INPUT = 0x1
JACK_PLAYBACK_LATENCY = 1
AUDIO_TYPE = b"32 bit float mono audio"
AROUND = 0.1  # seconds of cycles either side of an onset that time it
MAX_PERIOD = 4096
PROCESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p)


class _Range(ctypes.Structure):
    _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]


def _libjack() -> ctypes.CDLL:
    lib = ctypes.CDLL("libjack.so.0")
    p, u32 = ctypes.c_void_p, ctypes.c_uint32
    for name, res, args in [
        ("jack_client_open", p, [ctypes.c_char_p, ctypes.c_int, p]),
        ("jack_client_close", ctypes.c_int, [p]),
        ("jack_activate", ctypes.c_int, [p]),
        ("jack_deactivate", ctypes.c_int, [p]),
        ("jack_port_register", p, [p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                                   ctypes.c_ulong]),
        ("jack_port_name", ctypes.c_char_p, [p]),
        ("jack_port_by_name", p, [p, ctypes.c_char_p]),
        ("jack_port_get_buffer", p, [p, u32]),
        ("jack_port_get_latency_range", None, [p, ctypes.c_int, ctypes.POINTER(_Range)]),
        ("jack_connect", ctypes.c_int, [p, ctypes.c_char_p, ctypes.c_char_p]),
        ("jack_set_process_callback", ctypes.c_int, [p, PROCESS, p]),
        ("jack_last_frame_time", u32, [p]),
        ("jack_get_sample_rate", u32, [p]),
    ]:
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


class _Listener:
    """The JACK client itself (runs in the probe's process): notes each onset's frame."""

    def __init__(self, source: str = "PortAudio:out_1", threshold: float = 0.05,
                 quiet: int = 2400, name: str = "cadenza-onset-probe") -> None:
        self.lib = lib = _libjack()
        self.threshold = float(threshold)
        self.quiet = int(quiet)
        self._silent = self.quiet  # silent frames just before the current cycle
        self._frames: list[int] = []  # JACK frames of the onsets
        self.cycles: collections.deque[tuple[int, float]] = collections.deque(maxlen=4000)
        self._lock = threading.Lock()
        self.client = lib.jack_client_open(name.encode(), JACK_NO_START_SERVER, None)
        if not self.client:
            raise RuntimeError("the onset probe could not open a JACK client")
        self.port = lib.jack_port_register(self.client, b"in", AUDIO_TYPE, JACK_PORT_IS_INPUT, 0)
        self.rate = int(lib.jack_get_sample_rate(self.client))
        self._process = PROCESS(self._on_process)  # kept referenced while the client lives
        lib.jack_set_process_callback(self.client, self._process, None)
        if lib.jack_activate(self.client):
            raise RuntimeError("the onset probe could not be activated")
        own = lib.jack_port_name(self.port)
        if lib.jack_connect(self.client, source.encode(), own):
            self.close()
            raise RuntimeError(f"could not connect {source} to the onset probe")
        speaker = lib.jack_port_by_name(self.client, b"system:playback_1")
        rng = _Range()
        if speaker:
            lib.jack_port_get_latency_range(speaker, JACK_PLAYBACK_LATENCY, ctypes.byref(rng))
        self.latency_frames = int(rng.max)

    def _on_process(self, nframes: int, _arg: object) -> int:
        arrived = time.perf_counter()
        cycle = int(self.lib.jack_last_frame_time(self.client))
        with self._lock:
            self.cycles.append((cycle, arrived))
        buf = self.lib.jack_port_get_buffer(self.port, nframes)
        x = np.ctypeslib.as_array(ctypes.cast(buf, ctypes.POINTER(ctypes.c_float)), (nframes,))
        loud = np.flatnonzero(np.abs(x) > self.threshold)
        if loud.size == 0:
            self._silent += nframes
            return 0
        first = int(loud[0])
        if self._silent + first >= self.quiet:
            frame = cycle + first
            with self._lock:
                self._frames.append(frame)
        self._silent = nframes - 1 - int(loud[-1])
        return 0

    def heard_at(self, frame: int, around: float = AROUND) -> float | None:
        """The perf_counter time ``frame`` is heard at (see the module); None until the cycles
        ``around`` seconds after it have come."""
        span = around * self.rate
        with self._lock:
            cycles = list(self.cycles)
        near = [(f, t) for f, t in cycles if abs(f - frame) <= span]
        if not near or max(f for f, _ in near) < frame + span - 2 * MAX_PERIOD:
            return None
        origin = min(t - (f - frame) / self.rate for f, t in near)
        return origin + self.latency_frames / self.rate

    def close(self) -> None:
        if self.client:
            self.lib.jack_deactivate(self.client)
            self.lib.jack_client_close(self.client)
            self.client = None


class OnsetProbe:
    """Listens to ``source`` (a JACK output port of the default server) from a process of its
    own; ``onsets()``: the perf_counter times each onset is heard at (see the module)."""

    def __init__(self, source: str = "PortAudio:out_1", threshold: float = 0.05,
                 quiet: int = 2400) -> None:
        root = Path(__file__).resolve().parents[2]
        env = dict(os.environ, PYTHONPATH=str(root))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.app.jack_onsets", source, str(threshold), str(quiet)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().split()  # "ready LATENCY" once connected
        if not first or first[0] != "ready":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.kill()
            raise RuntimeError(f"the onset probe did not start: {first} {err}")
        self.latency_frames = int(first[1])
        self._times: list[float] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, _, value = line.partition(" ")
            if word == "onset":
                with self._lock:
                    self._times.append(float(value))

    def onsets(self) -> list[float]:
        with self._lock:
            return list(self._times)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[float]:
        """The onsets once there are ``count`` of them (fewer after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.onsets()) < count:
            time.sleep(0.005)
        return self.onsets()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=2)

    def __enter__(self) -> OnsetProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _main(argv: list[str]) -> None:
    """The probe's process: listen, print "ready LATENCY", then "onset TIME" for each onset,
    until terminated."""
    import signal

    listener = _Listener(argv[0], float(argv[1]), int(argv[2]))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", listener.latency_frames, flush=True)
    told = 0
    try:
        while not stop.wait(0.005):
            with listener._lock:
                new = listener._frames[told:]
            for frame in new:
                heard = listener.heard_at(frame)
                if heard is None:
                    break
                print("onset", repr(heard), flush=True)
                told += 1
    finally:
        listener.close()


if __name__ == "__main__":
    _main(sys.argv[1:])
