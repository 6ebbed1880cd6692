"""Sound output through PortAudio (python-sounddevice), by the callback rules.

The audio callback runs on PortAudio's real-time thread and only does a ``get_nowait`` from a
bounded queue and a copy into ``outdata`` (zeros and an underrun count when the queue is empty
while playing): no allocation of its own, no locks beyond the queue's, no I/O, no logging.

Everything else happens elsewhere: ``play`` resamples to the device's rate and cuts the audio
into pre-allocated blocks on the calling (worker) thread, and a feeder thread pushes the blocks
into the queue. ``push_block`` / ``play_stream`` feed live audio (the duet, the morph instrument).

The stream runs at the device's default sample rate (a JACK server decides it, often 48 kHz).
"""

from __future__ import annotations

import atexit
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from models.audio_io import Audio
from models.errors import CadenzaError
from models.quiet import held_stderr

NO_DEVICE = (
    "no audio output device: install/start JACK or PulseAudio; "
    "Cadenza keeps working and can still export WAV"
)
CHANNELS = 2

_END = None  # queue item: the clip or stream has ended
_streams_open = 0
_streams_lock = threading.Lock()
_exit_hook = False


def _sd() -> Any:
    global _exit_hook
    try:
        with held_stderr():  # PortAudio's start-up probes of JACK and ALSA print on their own
            import sounddevice
    except OSError as exc:  # libportaudio2 missing
        raise CadenzaError(f"PortAudio is not available ({exc}); install libportaudio2") from exc
    if not _exit_hook:
        _exit_hook = True
        atexit.register(_skip_terminate_at_exit, sounddevice)
    return sounddevice


def _skip_terminate_at_exit(sd: Any) -> None:
    """Runs before sounddevice's own exit handler (atexit is last-in, first-out).

    PortAudio's JACK host API asserts, and aborts the process, when ``Pa_Terminate`` closes a
    JACK client whose server has already stopped; so when no JACK server answers any more,
    sounddevice's final terminate is skipped. While the server runs, PortAudio must terminate
    normally: leaving its JACK client open makes the process crash on its way out.
    """
    if sd._initialized and not _jack_server_alive():
        sd._initialized = 0


def _jack_server_alive() -> bool:
    """Whether a JACK server answers, asked through libjack without ever starting one."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("jack")
    if name is None:
        return False
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return False
    lib.jack_client_open.restype = ctypes.c_void_p
    lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.jack_client_close.argtypes = [ctypes.c_void_p]
    status = ctypes.c_int(0)
    jack_no_start_server = 0x01
    with held_stderr():  # libjack prints its own lines when no server answers
        client = lib.jack_client_open(b"cadenza-probe", jack_no_start_server,
                                      ctypes.byref(status))
    if not client:
        return False
    lib.jack_client_close(client)
    return True


def _rescan() -> None:
    """Make PortAudio enumerate devices again (it only does at initialisation).

    A JACK server started after import is seen only after this. Skipped while a stream of ours
    is open, since re-initialising PortAudio would pull it down.
    """
    sd = _sd()
    with _streams_lock:
        if _streams_open == 0:
            with held_stderr():
                if sd._initialized > 0:
                    sd._terminate()
                sd._initialize()


def list_audio_outputs(rescan: bool = True) -> list[dict]:
    """Output devices: ``index``, ``name``, ``hostapi`` (name), ``default_samplerate``, channels."""
    sd = _sd()
    if rescan:
        _rescan()
    apis = sd.query_hostapis()
    outputs = []
    for dev in sd.query_devices():
        if dev["max_output_channels"] > 0:
            outputs.append({
                "index": dev["index"],
                "name": dev["name"],
                "hostapi": apis[dev["hostapi"]]["name"],
                "default_samplerate": float(dev["default_samplerate"]),
                "max_output_channels": int(dev["max_output_channels"]),
            })
    return outputs


class AudioEngine:
    """Plays ``Audio`` clips or a live stream of blocks on one output device.

    ``device``: an index, a case-insensitive name substring (as sounddevice matches it, e.g.
    ``"JACK"`` or ``"system"``) or None for the default output. ``queue_blocks`` bounds the
    queue: with 1024-frame blocks at 48 kHz, 8 blocks is about 170 ms of latency for live input.
    """

    def __init__(
        self,
        device: int | str | None = None,
        blocksize: int = 1024,
        queue_blocks: int = 8,
        loop: bool = False,
    ) -> None:
        if blocksize < 16 or queue_blocks < 1:
            raise CadenzaError("blocksize must be >= 16 frames and queue_blocks >= 1")
        self.device = device
        self.blocksize = int(blocksize)
        self.loop = loop
        self._queue: queue.Queue = queue.Queue(maxsize=int(queue_blocks))
        self._stream: Any = None
        self._sample_rate = 0
        self._device_index: int | None = None
        self._feeder: threading.Thread | None = None
        self._stop = threading.Event()
        self._playing = False
        self._underruns = 0
        self._frames = 0
        self._clip_frames = 0
        self._gen = 0  # bumped by stop(): the callback drops blocks queued before it

    # ------------------------------------------------------------------ devices
    @staticmethod
    def available() -> tuple[bool, str]:
        """Whether any output device exists, and a plain reason when none does."""
        try:
            outputs = list_audio_outputs()
        except CadenzaError as exc:
            return False, str(exc)
        if not outputs:
            return False, NO_DEVICE
        return True, f"{len(outputs)} audio output(s)"

    def _resolve(self) -> tuple[int, float]:
        sd = _sd()
        outputs = list_audio_outputs()
        if not outputs:
            raise CadenzaError(NO_DEVICE)
        try:
            if self.device is None:
                index = sd.default.device[1]
                if index is None or index < 0:
                    index = outputs[0]["index"]
                info = sd.query_devices(index)
            else:
                info = sd.query_devices(self.device, kind="output")
        except (ValueError, sd.PortAudioError) as exc:
            names = ", ".join(f"{o['name']} [{o['hostapi']}]" for o in outputs)
            raise CadenzaError(f"audio output {self.device!r}: {exc}; outputs: {names}") from exc
        if info["max_output_channels"] < 1:
            raise CadenzaError(f"audio device {info['name']!r} has no outputs")
        return int(info["index"]), float(info["default_samplerate"])

    # ------------------------------------------------------------------ lifetime
    def start(self) -> None:
        """Open and start the output stream at the device's default sample rate."""
        global _streams_open
        if self._stream is not None:
            return
        sd = _sd()
        index, rate = self._resolve()
        channels = min(CHANNELS, int(sd.query_devices(index)["max_output_channels"]))
        try:
            stream = sd.OutputStream(
                device=index,
                samplerate=rate,
                channels=channels,
                dtype="float32",
                blocksize=self.blocksize,
                callback=self._callback if channels == CHANNELS else self._callback_mono,
            )
            stream.start()
        except sd.PortAudioError as exc:
            raise CadenzaError(f"could not open the audio output: {exc}") from exc
        with _streams_lock:
            _streams_open += 1
        self._stream = stream
        self._device_index = index
        self._sample_rate = int(round(rate))

    def close(self) -> None:
        global _streams_open
        self.stop()
        if self._stream is not None:
            stream, self._stream = self._stream, None
            try:
                stream.stop()
                stream.close()
            finally:
                with _streams_lock:
                    _streams_open -= 1

    def __enter__(self) -> AudioEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ state
    @property
    def sample_rate(self) -> int:
        """The stream's rate (0 before ``start``)."""
        return self._sample_rate

    @property
    def device_index(self) -> int | None:
        return self._device_index

    @property
    def underruns(self) -> int:
        """Blocks the callback had to fill with silence while playing."""
        return self._underruns

    @property
    def is_playing(self) -> bool:
        return self._playing

    @property
    def frames_played(self) -> int:
        """Frames of the current clip or stream handed to the device so far."""
        return self._frames

    @property
    def position_seconds(self) -> float:
        """Playhead in seconds (wraps around when looping a clip)."""
        if not self._sample_rate:
            return 0.0
        frames = self._frames
        if self.loop and self._clip_frames:
            frames %= self._clip_frames
        return frames / self._sample_rate

    # ------------------------------------------------------------------ the callback
    def _next_block(self, outdata: np.ndarray) -> np.ndarray | None:
        """The next queued block, or None after silencing ``outdata`` (underrun, end, stale)."""
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            outdata.fill(0)
            if self._playing:
                self._underruns += 1
            return None
        if item is _END:
            outdata.fill(0)
            self._playing = False
            return None
        block, valid, gen = item
        if gen != self._gen:  # left over from before a stop()
            outdata.fill(0)
            return None
        self._frames += valid
        return block

    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        block = self._next_block(outdata)
        if block is not None:
            outdata[:] = block

    def _callback_mono(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        block = self._next_block(outdata)
        if block is not None:
            outdata[:, 0] = block[:, 0]

    # ------------------------------------------------------------------ playing
    def _blocks(self, audio: Audio) -> tuple[np.ndarray, np.ndarray]:
        """Audio at the device rate as (n_blocks, blocksize, 2) float32, and valid frames."""
        if audio.sample_rate != self._sample_rate:
            audio = audio.resampled(self._sample_rate)
        x = np.asarray(audio.samples, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] == 1:
            x = np.repeat(x, CHANNELS, axis=1)
        x = x[:, :CHANNELS]
        n = x.shape[0]
        n_blocks = max(1, -(-n // self.blocksize))
        blocks = np.zeros((n_blocks * self.blocksize, CHANNELS), dtype=np.float32)
        blocks[:n] = x
        valid = np.full(n_blocks, self.blocksize, dtype=np.int64)
        valid[-1] = n - (n_blocks - 1) * self.blocksize
        return blocks.reshape(n_blocks, self.blocksize, CHANNELS), valid

    def play(self, audio: Audio, loop: bool | None = None) -> None:
        """Play a clip from the start (stopping whatever plays). Call from a worker thread:
        resampling a long clip takes a moment."""
        self._require_started()
        if loop is not None:
            self.loop = loop
        blocks, valid = self._blocks(audio)
        self.stop()
        gen = self._gen
        items = [(blocks[i], int(valid[i]), gen) for i in range(len(blocks))]
        self._clip_frames = int(valid.sum())

        def clip() -> Iterator[tuple[np.ndarray, int, int]]:
            while True:
                yield from items
                if not self.loop:
                    return

        self._start_feeder(clip())

    def play_stream(self, blocks: Iterable[np.ndarray]) -> None:
        """Play blocks from an iterable (a generator, say) until it ends or ``stop()``.

        Each block is float32 ``(frames <= blocksize, channels)`` at ``sample_rate``.
        """
        self._require_started()
        self.stop()
        self._clip_frames = 0
        self._start_feeder(self._as_item(b) for b in blocks)  # items made after stop(): new gen

    def push_block(self, block: np.ndarray, timeout: float | None = None) -> bool:
        """Queue one live block (at ``sample_rate``); waits while the queue is full.

        Returns False when it timed out. Starts live playing if nothing plays.
        """
        self._require_started()
        item = self._as_item(block)
        if not self._playing:
            self._clip_frames = 0
            self._frames = 0
            self._playing = True
        try:
            self._queue.put(item, timeout=timeout)
        except queue.Full:
            return False
        return True

    def end_stream(self) -> None:
        """Mark the end of pushed blocks: playing stops once they have been heard."""
        self._queue.put(_END)

    def _as_item(self, block: np.ndarray) -> tuple[np.ndarray, int, int]:
        b = np.asarray(block, dtype=np.float32)
        if b.ndim == 1:
            b = b[:, None]
        n = b.shape[0]
        if n > self.blocksize:
            raise CadenzaError(f"a block has {n} frames; the blocksize is {self.blocksize}")
        if b.shape[1] == 1:
            b = np.repeat(b, CHANNELS, axis=1)
        out = np.zeros((self.blocksize, CHANNELS), dtype=np.float32)
        out[:n] = b[:, :CHANNELS]
        return out, n, self._gen

    def _start_feeder(self, items: Iterator[tuple[np.ndarray, int, int]]) -> None:
        self._stop.clear()
        self._frames = 0
        self._playing = True
        self._feeder = threading.Thread(
            target=self._feed, args=(items,), name="cadenza-audio-feeder", daemon=True
        )
        self._feeder.start()

    def _feed(self, items: Iterator[tuple[np.ndarray, int, int]]) -> None:
        for item in items:
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set():
                return
        while not self._stop.is_set():
            try:
                self._queue.put(_END, timeout=0.05)
                return
            except queue.Full:
                continue

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the clip has been played out; False on timeout."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while self._playing:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        """Stop playing at once: the feeder thread ends and the queue is emptied."""
        self._stop.set()
        self._gen += 1
        feeder, self._feeder = self._feeder, None
        if feeder is not None:
            feeder.join(timeout=2.0)
        self._playing = False
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break

    def _require_started(self) -> None:
        if self._stream is None:
            raise CadenzaError("the audio engine is not started")
