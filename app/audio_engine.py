"""Sound output through PortAudio (python-sounddevice): one stream, a mix of buses.

**The callback** runs on PortAudio's real-time thread and follows python-sounddevice's rules:
no lock, no I/O, no logging, and no allocation beyond the small Python objects any Python code
makes (ints, floats, a tuple, a loop's iterator; no array, not even a view). It silences
``outdata``, then adds one pre-rendered block from each :class:`Bus` (the next slot of that
bus's ring, whose arrays are made once and which producers copy into), clips the sum to ±1 in
place (ufuncs with ``out=`` and bounds made once) and counts a heartbeat. Producers wait for
room in a ring by sleeping until just after the callback is due, then polling (see
:meth:`Bus._nap`): the callback wakes no one, since setting an Event or notifying a Condition
takes a lock. Everything else happens elsewhere: ``play`` resamples to the device's rate and
cuts the audio into blocks on the calling (worker) thread, a feeder thread queues them; live
voices render blocks on their own threads (:mod:`app.transport`).

**One stream for everything.** The stream runs at the device's default sample rate (a JACK
server decides it, often 48 kHz) with small blocks (256 frames, 5.3 ms at 48 kHz) so that live
playing stays immediate. Each source gets a bus with the queue depth it needs: the ``clip`` bus
(clips and previews: 32 blocks, about 170 ms, so a busy worker never starves it), the ``live``
bus (``push_block``: 3 blocks, about 16 ms), and a bus of its own for each set of live voices
(:meth:`AudioEngine.open_bus`: the keyboard, the duet, the morph instrument). The list of buses
is a tuple the callback reads and other threads replace, never mutate. A queue's depth is not
always its latency: live voices that can render a new note on its own add it into the blocks
still queued (:meth:`Bus.pending_blocks`, see :class:`app.transport.LiveVoices`), so a key
press is heard from the next block the callback takes.

**Starting at a given time.** ``play(audio, at=t)`` makes a clip's first sample reach the
speaker at ``perf_counter()`` time ``t`` (the Play button on the bar of a synced session). The
engine counts the frames it hands to the device, and the callback keeps, for its latest block,
the first frame's number and PortAudio's time for that frame at the output
(``outputBufferDacTime``: the device's and the sound server's output latency included; over
JACK, the playback ports' latency). ``frame_at(t)`` turns ``t`` into the frame that will be
heard then, through the stream's clock as read now (``stream.time`` against ``perf_counter``).
The clip is cut into blocks with that frame's offset within its block as leading silence, and
queued at once; the bus's callback part leaves the queue alone until the block with that frame
is due, so the onset is exact to the frame however the feeder thread or the GIL are delayed (as
long as ``play`` is called some 50 ms ahead: the feeder needs the time to queue the first
block). Where PortAudio gives no stream times, the callback's own ``perf_counter`` time plus the
stream's reported latency stand in. The frames counted are the device's: when the callback is
held up (another thread keeps the GIL) JACK plays whole cycles without it, and the output
times then run ahead of the frames handed over; the callback counts those in (in whole blocks,
once they have lasted a few callbacks: a late wake-up is not a skip), so a start planned
before such a gap still lands on its time.

**Bounded close.** :meth:`AudioEngine.close` closes the stream on a helper thread and waits at
most :data:`CLOSE_SECONDS`; when the sound server or the device has vanished (PortAudio's JACK
backend then waits ten minutes for a process callback that will not come) the stream is
abandoned. :class:`PortAudio` remembers that such a library instance must never be terminated
(its ``Pa_Terminate`` would wait on the abandoned stream, or abort on JACK's dead client) and,
when devices are looked for again, loads a fresh copy of the library (see
:meth:`PortAudio.rescan`).

**Noticing a lost device.** :meth:`AudioEngine.lost_reason` says why the stream is gone: the
JACK server went away (a :class:`app.jack_watch.JackWatch`), PortAudio finished the stream, or
the callback stopped being called (the heartbeat did not move for :data:`HEARTBEAT_SECONDS`).
:class:`app.devices.Devices` asks it from the GUI's timer.
"""

from __future__ import annotations

import atexit
import builtins
import importlib.util
import math
import os
import shutil
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from app.bounded import call_within
from app.jack_watch import JackWatch
from models.audio_io import Audio
from models.errors import CadenzaError
from models.quiet import held_stderr

NO_DEVICE = (
    "no audio output device: install/start JACK or PulseAudio; "
    "Cadenza keeps working and can still export WAV"
)
CHANNELS = 2
JACK_HOSTAPI = "JACK Audio Connection Kit"
BLOCKSIZE = 256  # frames per callback: 5.3 ms at 48 kHz
CLIP_QUEUE_BLOCKS = 32  # the clip bus: ~170 ms at 48 kHz
LIVE_QUEUE_BLOCKS = 3  # live voices: ~16 ms at 48 kHz, plus the device's own buffer
CLOSE_SECONDS = 0.8  # the longest close() waits for the stream before abandoning it
HEARTBEAT_SECONDS = 2.0  # no callback for this long: the device is gone
SKIP_BLOCKS = 2  # the device ran this many blocks ahead of the callback: cycles were skipped
RECENT_CALLBACKS = 16  # a skip counts once it has lasted this long (2 cycles of 2048 frames)
MAX_SKIP_SECONDS = 0.5  # a longer jump of the output time starts the count again
WARMUP_CALLBACKS = 16  # a new stream's first output times can be off (JACK's: 0)
LAG_LEAK = 0.25  # frames a callback: the skip detector follows a device clock ~1000 ppm slow

_END = -1  # a ring slot's valid frames: the clip or stream has ended there
ROOM_POLL_SECONDS = 0.0005  # how often a producer looks for room in a full ring, at most
ROOM_MARGIN_SECONDS = 0.0002  # a producer wakes this long after the callback is due


# ---------------------------------------------------------------------------- PortAudio
class _Generation:
    """One initialised instance of the PortAudio library: a sounddevice module bound to it,
    the watch on its JACK client (when it has one) and the streams it has open."""

    def __init__(self, sd: Any) -> None:
        self.sd = sd
        self.watch: JackWatch | None = None
        self.open_streams: list[Any] = []
        self.abandoned: list[Any] = []  # streams whose close never returned; kept referenced
        self.poisoned = False

    @property
    def streams(self) -> int:
        return len(self.open_streams)

    @property
    def jack_lost(self) -> bool:
        return self.watch is not None and self.watch.lost

    @property
    def lost(self) -> bool:
        """Never to be terminated or used again: a stream was abandoned, or the JACK server
        its client belongs to went away."""
        return self.poisoned or self.jack_lost

    def watch_jack(self) -> None:
        """Watch the JACK server when this instance's JACK host API has a client on one."""
        names = [str(h["name"]) for h in self.sd.query_hostapis()]
        self.watch = JackWatch() if JACK_HOSTAPI in names else None


class PortAudio:
    """The PortAudio library as one owner (:class:`app.devices.Devices`) uses it.

    PortAudio is initialised once per process and lists devices only at initialisation, so
    seeing a sound server started later means terminating and initialising it again
    (:meth:`rescan`), which is only done while no stream of this owner is open. After a stream
    had to be abandoned, or after the JACK server went away, this library instance can neither
    be terminated (``Pa_Terminate`` would wait for the abandoned stream, or assert on JACK's dead
    client and abort the process) nor list new devices; :meth:`rescan` then loads a private copy
    of the library file (dlopen'ed under another path, so it has its own state) and a
    sounddevice module bound to it, and the old instance is left alone for good.

    At exit (a bound method registered with ``atexit`` after each sounddevice module, so it runs
    before their own exit handlers) the lost instances are marked uninitialised, so sounddevice
    skips their ``Pa_Terminate``; healthy ones terminate normally (a JACK client left open while
    its server runs makes the process crash on its way out).
    """

    def __init__(self) -> None:
        self._gen: _Generation | None = None
        self._retired: list[_Generation] = []
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ the library
    def _current(self) -> _Generation:
        with self._lock:
            if self._gen is None:
                try:
                    with held_stderr():  # PortAudio's start-up probes of JACK and ALSA print
                        import sounddevice
                except OSError as exc:  # libportaudio2 missing
                    raise CadenzaError(f"PortAudio is not available ({exc}); install "
                                       "libportaudio2") from exc
                self._gen = self._adopt(sounddevice)
            return self._gen

    def _adopt(self, sd: Any) -> _Generation:
        gen = _Generation(sd)
        gen.watch_jack()
        atexit.unregister(self._at_exit)  # to the end of the list: it runs first
        atexit.register(self._at_exit)
        return gen

    @property
    def sd(self) -> Any:
        """The sounddevice module of the library instance in use."""
        return self._current().sd

    @property
    def lost(self) -> bool:
        """The instance in use is lost (see :class:`PortAudio`); False before first use."""
        gen = self._gen
        return gen is not None and gen.lost

    @property
    def jack_lost(self) -> bool:
        """The JACK server of the instance in use went away."""
        gen = self._gen
        return gen is not None and gen.jack_lost

    @property
    def lost_reason(self) -> str:
        gen = self._gen
        if gen is None or not gen.lost:
            return ""
        if gen.watch is not None and gen.watch.lost:
            return gen.watch.lost_reason()
        return "the audio stream could not be closed"

    @property
    def generations(self) -> int:
        """How many library instances this owner has used (1 until a lost one was replaced)."""
        return len(self._retired) + (self._gen is not None)

    def rescan(self) -> None:
        """Look for output devices again (a JACK server started since); skipped while a stream
        of this owner is open. A lost instance is replaced by a fresh copy of the library."""
        with self._lock:
            gen = self._current()
            if gen.streams:
                return
            if gen.lost:
                self._retire(gen)
                self._gen = self._adopt(_load_sounddevice_copy(gen.sd))
                return
            sd = gen.sd
            with held_stderr():
                if sd._initialized > 0:
                    sd._terminate()
                sd._initialize()
            gen.watch_jack()

    def _retire(self, gen: _Generation) -> None:
        """Leave a lost instance alone for good (never terminated, never asked again)."""
        gen.poisoned = True
        gen.sd._initialized = 0  # sounddevice's exit handler skips its Pa_Terminate
        self._retired.append(gen)

    def outputs(self, rescan: bool = True) -> list[dict]:
        """Output devices: ``index``, ``name``, ``hostapi`` (name), ``default_samplerate``,
        ``max_output_channels``."""
        if rescan:
            self.rescan()
        sd = self.sd
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

    # ------------------------------------------------------------------ streams
    def stream_opened(self, stream: Any) -> _Generation:
        with self._lock:
            gen = self._current()
            gen.open_streams.append(stream)
            return gen

    def stream_closed(self, gen: _Generation, stream: Any) -> None:
        with self._lock:
            gen.open_streams = [s for s in gen.open_streams if s is not stream]

    def stream_abandoned(self, gen: _Generation, stream: Any) -> None:
        with self._lock:
            gen.open_streams = [s for s in gen.open_streams if s is not stream]
            gen.abandoned.append(stream)
            gen.poisoned = True

    # ------------------------------------------------------------------ at exit
    def _at_exit(self) -> None:
        """Streams still open are closed within CLOSE_SECONDS (one that does not close makes
        its instance lost); lost instances are marked uninitialised for sounddevice."""
        for gen in [*self._retired, self._gen]:
            if gen is None:
                continue
            for stream in list(gen.open_streams):
                if gen.lost:
                    break
                if call_within(stream.close, CLOSE_SECONDS, "cadenza-audio-close") is None:
                    self.stream_closed(gen, stream)
                else:
                    self.stream_abandoned(gen, stream)
            if gen.lost:
                gen.sd._initialized = 0


def _loaded_portaudio_path() -> str:
    """The file of the PortAudio library this process has loaded (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(None, 5)  # address perms offset dev inode path
                path = fields[5].strip() if len(fields) == 6 else ""
                if path.startswith("/") and "libportaudio" in os.path.basename(path):
                    return path
    except OSError:
        pass
    raise CadenzaError("the PortAudio library file was not found; restart Cadenza to use the "
                       "audio output again")


def _load_sounddevice_copy(sd: Any) -> Any:
    """A new sounddevice module bound to a private copy of the PortAudio library file.

    The copy is dlopen'ed under its own path, so it is a separate instance with its own state;
    the file is deleted right away (the mapping stays). Only this module's own ``from
    ctypes.util import find_library`` is pointed at the copy (through the module's builtins),
    nothing global is patched.
    """
    source = _loaded_portaudio_path()
    folder = tempfile.mkdtemp(prefix="cadenza-portaudio-")
    copy = os.path.join(folder, os.path.basename(source))
    try:
        shutil.copyfile(source, copy)
        spec = importlib.util.find_spec(sd.__name__)
        if spec is None or spec.loader is None:
            raise CadenzaError("sounddevice cannot be loaded again; restart Cadenza")
        module = importlib.util.module_from_spec(spec)
        real_import = builtins.__import__

        def find_library(name: str) -> str | None:
            import ctypes.util

            return copy if name == "portaudio" else ctypes.util.find_library(name)

        shim = types.SimpleNamespace(find_library=find_library)

        def load(name: str, globals: Any = None, locals: Any = None,  # noqa: A002
                 fromlist: Any = (), level: int = 0) -> Any:
            if name == "ctypes.util" and fromlist:
                return shim
            return real_import(name, globals, locals, fromlist, level)

        module.__dict__["__builtins__"] = {**vars(builtins), "__import__": load}
        try:
            with held_stderr():
                spec.loader.exec_module(module)
        except OSError as exc:
            raise CadenzaError(f"PortAudio could not be loaded again ({exc}); restart "
                               "Cadenza to use the audio output") from exc
        return module
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------- buses
def clip_blocks(x: np.ndarray, blocksize: int, lead: int = 0,
                looping: Callable[[], bool] = lambda: False
                ) -> Iterator[tuple[np.ndarray, int]]:
    """``(block, valid frames)`` of a clip ``x`` (frames, channels), ``lead`` frames of silence
    first; while ``looping()`` says so at the clip's end, the next pass follows at once, inside
    the same block, so a loop keeps its length to the frame (a pass padded to whole blocks
    would drift by up to a block a pass). Every block is a new array (they are queued)."""
    n = x.shape[0]
    pos = -int(lead)  # in the clip; below 0: the leading silence
    while True:
        block = np.zeros((blocksize, x.shape[1]), dtype=np.float32)
        filled = 0
        while filled < blocksize:
            if pos < 0:
                take = min(-pos, blocksize - filled)
            elif pos < n:
                take = min(n - pos, blocksize - filled)
                block[filled:filled + take] = x[pos:pos + take]
            elif n and looping():
                pos = 0
                continue
            else:
                break
            pos += take
            filled += take
        if filled:
            yield block, filled
        if filled < blocksize:
            return
        if pos >= n:  # a pass ended with the block
            if not (n and looping()):
                return
            pos = 0


class Bus:
    """One source in the engine's mix: a ring of ``queue_blocks`` blocks of the stream's
    blocksize, one taken per callback. A clip (``play``), a stream of blocks from an iterable on
    a feeder thread (``play_stream``) or blocks pushed by live voices (``push_block``); the
    ring's depth is the bus's latency.

    **The ring** has one consumer, the audio callback (:meth:`mix_into`), and takes no lock
    there. The ``i``-th block queued lives in slot ``i % queue_blocks``: its samples (an array
    made once per slot and copied into: a producer never hands its own array to the callback),
    its valid frames (:data:`_END` marks where the clip or stream ended) and the generation it
    was queued in. Two counters only ever grow: ``_write``, the blocks queued, is moved by a
    producer after it has filled the slot, holding ``_put_lock`` (the feeder thread,
    ``push_block`` and ``end_stream`` all produce, one at a time; the callback never takes that
    lock); ``_read``, the blocks taken, is moved by the callback alone, after it has mixed the
    block, so a slot is never refilled while it is read. The blocks queued are those from
    ``_read`` to ``_write``. Each counter has one writer and is moved by one attribute store,
    which the GIL makes atomic and visible in program order (what this relies on).

    ``stop()`` takes nothing out of the ring (only the callback moves ``_read``): it bumps the
    generation, and the callback skips the blocks of older ones all at once. A producer that
    finds the ring full sleeps until just after the callback is next due, then polls
    (:meth:`_nap`): the callback cannot wake it (setting an Event or notifying a Condition
    takes a lock).
    """

    def __init__(self, engine: AudioEngine, name: str, queue_blocks: int,
                 loop: bool = False) -> None:
        if queue_blocks < 1:
            raise CadenzaError("a bus needs a queue of at least one block")
        self.engine = engine
        self.name = name
        self.blocksize = engine.blocksize
        self.loop = loop
        size = int(queue_blocks)
        self._size = size
        # the ring (see the class's docstring); a slot's array is remade by a producer only
        # when the stream's channels differ (a mono device), while the slot is free
        self._blocks = [np.zeros((self.blocksize, CHANNELS), np.float32) for _ in range(size)]
        self._valid = [0] * size
        self._gens = [0] * size
        self._read = 0  # blocks taken: moved by the callback only
        self._write = 0  # blocks queued: moved by a producer holding _put_lock only
        self._put_lock = threading.Lock()  # producers only, never the callback
        self._feeder: threading.Thread | None = None
        self._stop = threading.Event()
        self._playing = False
        self._underruns = 0
        self._frames = 0
        self._clip_frames = 0
        self._gen = 0  # bumped by stop(): the callback skips blocks queued before it
        self._closed = False
        self._start_frame = 0  # the engine frame whose block starts the clip (play(at=))
        self._started_frame = -1  # the engine frame where it did start (-1: not yet)
        self.start_time: float | None = None  # perf_counter time it is heard from (play(at=))

    # ------------------------------------------------------------------ state
    @property
    def queue_blocks(self) -> int:
        return self._size

    @property
    def underruns(self) -> int:
        """Blocks the callback found missing while this bus was playing."""
        return self._underruns

    @property
    def is_playing(self) -> bool:
        return self._playing

    @property
    def frames_played(self) -> int:
        """Frames of the current clip or stream handed to the device so far (0 until a
        scheduled start: its leading silence is not counted)."""
        return max(0, self._frames)

    @property
    def waiting(self) -> bool:
        """A scheduled start (``play(at=)``) whose first block has not gone out yet."""
        return self._playing and self._started_frame < 0 and self._start_frame > 0

    @property
    def start_late_frames(self) -> int:
        """How many frames after its planned block the clip's first block went out (0 when on
        time; a ``play(at=)`` called too close to ``at``); -1 before it went out."""
        if self._started_frame < 0:
            return -1
        return self._started_frame - self._start_frame

    @property
    def position_seconds(self) -> float:
        """Playhead in seconds (wraps around when looping a clip)."""
        rate = self.engine.sample_rate
        if not rate:
            return 0.0
        frames = max(0, self._frames)
        if self.loop and self._clip_frames:
            frames %= self._clip_frames
        return frames / rate

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ the callback's part
    def mix_into(self, outdata: np.ndarray, frame: int = 0) -> None:
        """Add this bus's next block to ``outdata`` (called by the audio callback only);
        ``frame``: the engine frame of ``outdata``'s first frame. A scheduled clip waits, its
        blocks queued, until its block is due. Takes no lock and makes no array (the counters'
        Python ints aside)."""
        read, write, gen, size = self._read, self._write, self._gen, self._size
        while read < write and self._gens[read % size] != gen:
            read += 1  # queued before a stop(): room for the blocks of what plays now
        self._read = read
        if frame < self._start_frame:
            return
        if read == write:
            if self._playing:
                self._underruns += 1
            return
        slot = read % size
        valid = self._valid[slot]
        if valid == _END:
            self._read = read + 1
            self._playing = False
            return
        if self._started_frame < 0:
            self._started_frame = frame
        self._frames += valid
        np.add(outdata, self._blocks[slot], out=outdata)
        self._read = read + 1  # mixed: the slot may be refilled now

    # ------------------------------------------------------------------ the producers' part
    def _put(self, block: np.ndarray | None, valid: int, gen: int, timeout: float | None,
             stop: threading.Event | None = None) -> bool:
        """Queue ``block`` (frames <= blocksize, channels; copied into the next slot, the rest
        of the slot silenced) with ``valid`` frames, or the end marker (``block`` None,
        ``valid`` :data:`_END`), once the ring has room. False when ``timeout`` seconds passed
        first, ``stop`` was set or the bus was closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._put_lock:
                write = self._write
                if write - self._read < self._size:
                    slot = write % self._size
                    if block is not None:
                        self._copy_into(slot, block)
                    self._valid[slot] = valid
                    self._gens[slot] = gen
                    self._write = write + 1  # the slot is filled: the callback may take it
                    return True
            if self._closed or (stop is not None and stop.is_set()):
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._nap(deadline)

    def _nap(self, deadline: float | None) -> None:
        """Sleep while the ring is full: until just after the callback is next due (it makes
        room then), or :data:`ROOM_POLL_SECONDS` when it is due sooner or overdue; never past
        ``deadline``. Polling at a fixed short interval instead woke the waiting thread ten
        times a block, and each wake-up that took the GIL from another thread delayed it (a
        key press was heard ~1.7 ms later at the median on a busy two-core machine)."""
        pause = self.engine.to_next_block()
        pause = pause + ROOM_MARGIN_SECONDS if ROOM_POLL_SECONDS < pause < 0.1 \
            else ROOM_POLL_SECONDS
        if deadline is not None:
            pause = min(pause, max(0.0, deadline - time.monotonic()))
        time.sleep(pause)

    def _copy_into(self, slot: int, block: np.ndarray) -> None:
        """Copy ``block`` into a free slot's array (``_put_lock`` held)."""
        channels = self.engine.channels
        dst = self._blocks[slot]
        if dst.shape[1] != channels:
            dst = self._blocks[slot] = np.zeros((self.blocksize, channels), np.float32)
        n = block.shape[0]
        dst[:n] = block[:, :channels]  # one channel in: on every channel
        dst[n:] = 0.0

    def _checked(self, block: np.ndarray) -> np.ndarray:
        """``block`` as (frames, channels), at most a blocksize of frames."""
        b = np.asarray(block, dtype=np.float32)
        if b.ndim == 1:
            b = b[:, None]
        n = b.shape[0]
        if n > self.blocksize:
            raise CadenzaError(f"a block has {n} frames; the blocksize is {self.blocksize}")
        return b

    # ------------------------------------------------------------------ playing
    def _require(self) -> int:
        if self._closed:
            raise CadenzaError("the audio output is closed")
        rate = self.engine.sample_rate
        if not rate:
            raise CadenzaError("the audio engine is not started")
        return rate

    @staticmethod
    def _frames_of(audio: Audio) -> np.ndarray:
        """The samples as float32 (frames, CHANNELS) (at the rate they come in)."""
        x = np.asarray(audio.samples, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] == 1:
            x = np.repeat(x, CHANNELS, axis=1)
        return x[:, :CHANNELS]

    def play(self, audio: Audio, loop: bool | None = None, at: float | None = None) -> None:
        """Play a clip from the start (stopping whatever this bus plays). Call from a worker
        thread: resampling a long clip takes a moment.

        ``at``: the ``perf_counter()`` time its first sample is to be heard (see the module's
        docstring); ``start_time`` says the time it was planned for. A time already due (or
        too close to make) starts it at once, as without ``at``.
        """
        rate = self._require()
        if loop is not None:
            self.loop = loop
        if audio.sample_rate != rate:
            audio = audio.resampled(rate)
        start_frame, lead = 0, 0
        if at is not None:
            frame = self.engine.frame_at(at)
            if frame is not None and frame > self.engine.frames_out + self.blocksize:
                start_frame = frame - frame % self.blocksize
                lead = frame - start_frame
        x = self._frames_of(audio)
        self.stop()
        gen = self._gen
        self._clip_frames = x.shape[0]
        blocks = clip_blocks(x, self.blocksize, lead, lambda: self.loop)
        items = ((block, valid, gen) for block, valid in blocks)
        self._start_frame = start_frame
        self.start_time = None if at is None else (at if start_frame else time.perf_counter())
        self._start_feeder(items, frames=-lead)

    def play_stream(self, blocks: Iterable[np.ndarray]) -> None:
        """Play blocks from an iterable (a generator, say) until it ends or ``stop()``.

        Each block is float32 ``(frames <= blocksize, channels)`` at the engine's sample rate.
        """
        self._require()
        self.stop()
        self._clip_frames = 0
        self._start_frame = 0
        self.start_time = None
        gen = self._gen
        items = ((b, b.shape[0], gen) for b in map(self._checked, blocks))
        self._start_feeder(items)

    def push_block(self, block: np.ndarray, timeout: float | None = None) -> bool:
        """Queue one live block (at the engine's sample rate; copied); waits while the ring is
        full.

        Returns False when it timed out. Starts live playing if nothing plays; raises
        :class:`CadenzaError` once the bus (or the engine) is closed.
        """
        self._require()
        b = self._checked(block)
        gen = self._gen
        if not self._playing:
            self._clip_frames = 0
            self._frames = 0
            self._start_frame = 0
            self._playing = True
        if self._put(b, b.shape[0], gen, timeout):
            return True
        self._require()  # closed while it waited
        return False

    def wait_room(self, timeout: float) -> bool:
        """Wait until the ring has room for a block (the callback took one): a live player
        renders its next block then, so that every block it has rendered is queued, where
        :meth:`pending_blocks` finds it. False when it timed out; raises :class:`CadenzaError`
        once the bus (or the engine) is closed. Wakes around the callback's time
        (:meth:`_nap`)."""
        self._require()
        deadline = time.monotonic() + timeout
        while self._write - self._read >= self._size:
            if self._closed:
                self._require()
            if time.monotonic() >= deadline:
                return False
            self._nap(deadline)
        return True

    def pending_blocks(self) -> list[np.ndarray]:
        """The pushed blocks still queued, the next one the callback takes first: the ring's
        own arrays, which a live player adds a note that has just begun into, in place (what it
        adds to a block the callback has taken meanwhile is not heard). A slot's array is
        refilled once the callback has taken it, so add into them before queueing more blocks
        (:class:`app.transport.LiveVoices` does both under one lock)."""
        with self._put_lock:  # no producer refills a slot meanwhile
            read, write, gen, size = self._read, self._write, self._gen, self._size
            return [self._blocks[i % size] for i in range(read, write)
                    if self._valid[i % size] != _END and self._gens[i % size] == gen]

    def end_stream(self) -> None:
        """Mark the end of pushed blocks: playing stops once they have been heard."""
        if not self._put(None, _END, self._gen, timeout=1.0):
            self._playing = False

    def _start_feeder(self, items: Iterator[tuple[np.ndarray, int, int]],
                      frames: int = 0) -> None:
        self._stop.clear()
        self._frames = frames  # before the feeder: the callback may take a block at once
        self._started_frame = -1
        self._playing = True
        self._feeder = threading.Thread(
            target=self._feed, args=(items, self._gen), name="cadenza-audio-feeder",
            daemon=True)
        self._feeder.start()

    def _feed(self, items: Iterator[tuple[np.ndarray, int, int]], gen: int) -> None:
        stop = self._stop
        for block, valid, item_gen in items:
            if stop.is_set() or not self._put(block, valid, item_gen, None, stop):
                return
        if not stop.is_set():
            self._put(None, _END, gen, None, stop)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the clip has been played out; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._playing:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        """Stop playing at once: the feeder thread ends, and the blocks queued are skipped
        (the callback takes them all out at its next call)."""
        self._stop.set()
        self._gen += 1
        feeder, self._feeder = self._feeder, None
        if feeder is not None and feeder is not threading.current_thread():
            feeder.join(timeout=2.0)
        self._playing = False

    def close(self) -> None:
        """Stop, and take this bus out of the mix; ``push_block`` raises from now on."""
        self._closed = True
        self.stop()
        self.engine.remove_bus(self)


# ---------------------------------------------------------------------------- the engine
class AudioEngine:
    """One output stream on one device, mixing its buses (see the module's docstring).

    ``device``: an index, a case-insensitive name substring (as sounddevice matches it, e.g.
    ``"JACK"`` or ``"system"``) or None for the default output. ``portaudio``: the library as
    its owner uses it. Made by :class:`app.devices.Devices` (the one owner of the sound output);
    ``play``, ``play_stream``, ``stop``, ``wait`` and the position are the ``clip`` bus's,
    ``push_block`` and ``end_stream`` the ``live`` bus's.
    """

    def __init__(
        self,
        portaudio: PortAudio,
        device: int | str | None = None,
        blocksize: int = BLOCKSIZE,
        clip_queue_blocks: int = CLIP_QUEUE_BLOCKS,
        live_queue_blocks: int = LIVE_QUEUE_BLOCKS,
        loop: bool = False,
    ) -> None:
        if blocksize < 16 or clip_queue_blocks < 1 or live_queue_blocks < 1:
            raise CadenzaError("blocksize must be >= 16 frames and queues >= 1 block")
        self.portaudio = portaudio
        self.device = device
        self.blocksize = int(blocksize)
        self.live_queue_blocks = int(live_queue_blocks)
        self._stream: Any = None
        self._pa_gen: _Generation | None = None
        self._sample_rate = 0
        self._channels = CHANNELS
        self._device_index: int | None = None
        self._heartbeat = 0
        self._frames_out = 0  # the device's frames since the stream started (see _callback)
        self._skipped = 0  # frames the device played while the callback was not called
        self._lag_base = math.inf  # the least (output time x rate - frame) seen
        # the latest lags over the base: Python floats in a list, so that the callback's
        # min() makes no array (a NumPy reduction allocates its scratch each call)
        self._recent_excess: list[float] = [0.0] * RECENT_CALLBACKS
        self._ceiling = np.array(1.0, np.float32)  # the callback clips to these (made once)
        self._floor = np.array(-1.0, np.float32)
        # the latest callback's (first frame, its stream time at the output, perf_counter);
        # replaced whole, so other threads read one consistent tuple
        self._last_block: tuple[int, float, float] = (0, 0.0, 0.0)
        self._seen_beat = (0, 0.0)  # (heartbeat, monotonic time) when it last moved
        self._asked = 0.0  # when lost_reason() last looked at the heartbeat
        self._finished = False
        self._lost = ""
        self._bus_lock = threading.Lock()  # for adding and removing buses (not the callback)
        self.clip = Bus(self, "clip", clip_queue_blocks, loop=loop)
        self.live = Bus(self, "live", live_queue_blocks)
        self._buses: tuple[Bus, ...] = (self.clip, self.live)

    # ------------------------------------------------------------------ devices
    def _resolve(self) -> tuple[Any, int, float]:
        outputs = self.portaudio.outputs()
        if not outputs:
            raise CadenzaError(NO_DEVICE)
        sd = self.portaudio.sd
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
        return sd, int(info["index"]), float(info["default_samplerate"])

    # ------------------------------------------------------------------ lifetime
    def start(self) -> None:
        """Open and start the output stream at the device's default sample rate."""
        if self._stream is not None:
            return
        if self.clip.closed:
            raise CadenzaError("the audio engine is closed")
        if self._lost:
            raise CadenzaError(f"the audio output was lost ({self._lost})")
        sd, index, rate = self._resolve()
        channels = min(CHANNELS, int(sd.query_devices(index)["max_output_channels"]))
        self._channels = channels
        self._sample_rate = int(round(rate))
        self._finished = False
        self._frames_out = 0
        self._skipped = 0
        self._lag_base = math.inf
        self._recent_excess[:] = [0.0] * RECENT_CALLBACKS
        self._last_block = (0, 0.0, 0.0)
        try:
            stream = sd.OutputStream(
                device=index,
                samplerate=rate,
                channels=channels,
                dtype="float32",
                blocksize=self.blocksize,
                callback=self._callback,
                finished_callback=self._on_finished,
            )
            stream.start()
        except sd.PortAudioError as exc:
            self._sample_rate = 0
            raise CadenzaError(f"could not open the audio output: {exc}") from exc
        self._pa_gen = self.portaudio.stream_opened(stream)
        self._stream = stream
        self._device_index = index
        self._seen_beat = (self._heartbeat, time.monotonic())
        self._asked = time.monotonic()

    def close(self, timeout: float = CLOSE_SECONDS) -> bool:
        """Stop every bus and close the stream, waiting at most ``timeout`` seconds; False when
        the stream had to be abandoned (the device or sound server is gone). Safe to call
        twice."""
        for bus in self._buses:
            bus.close()
        stream, self._stream = self._stream, None
        gen, self._pa_gen = self._pa_gen, None
        if stream is None or gen is None:
            return True
        if gen.lost:  # the JACK server went away: closing could only wait, never finish
            timeout = 0.0
        thread = call_within(stream.close, timeout, "cadenza-audio-close")
        if thread is None:
            self.portaudio.stream_closed(gen, stream)
            return True
        self.portaudio.stream_abandoned(gen, stream)
        self._lost = self._lost or "the audio stream could not be closed"
        return False

    def abandon(self, reason: str, timeout: float = 0.3) -> None:
        """The device is gone: let go of the stream, waiting at most ``timeout`` for it (not at
        all when the JACK server went away; see ``close``)."""
        self._lost = reason
        self.close(timeout=timeout)

    def __enter__(self) -> AudioEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ buses
    def open_bus(self, name: str, queue_blocks: int | None = None) -> Bus:
        """A new bus in the mix (live voices get one each); ``Bus.close()`` removes it."""
        bus = Bus(self, name, queue_blocks or self.live_queue_blocks)
        with self._bus_lock:
            self._buses = (*self._buses, bus)
        return bus

    def remove_bus(self, bus: Bus) -> None:
        with self._bus_lock:
            self._buses = tuple(b for b in self._buses if b is not bus)

    @property
    def buses(self) -> tuple[Bus, ...]:
        return self._buses

    # ------------------------------------------------------------------ state
    @property
    def started(self) -> bool:
        return self._stream is not None

    @property
    def sample_rate(self) -> int:
        """The stream's rate (0 before ``start``)."""
        return self._sample_rate

    @property
    def channels(self) -> int:
        """The stream's channels (2, or 1 on a mono device)."""
        return self._channels

    @property
    def device_index(self) -> int | None:
        return self._device_index

    @property
    def heartbeat(self) -> int:
        """Callbacks so far: it moves about every 5 ms while the device asks for sound."""
        return self._heartbeat

    def lost_reason(self) -> str:
        """Why the stream is gone ("" while it works): the JACK server went away, PortAudio
        finished the stream, or the callback stopped being called. Call it regularly, more
        often than once a second (the GUI's timer does): the heartbeat is compared with the
        last call's, and a stall counts only while it is being watched."""
        if self._lost:
            return self._lost
        if self._stream is None:
            return ""
        gen = self._pa_gen
        if gen is not None and gen.lost:
            return self.portaudio.lost_reason or "the audio stream could not be closed"
        if self._finished:
            return "the audio device stopped the stream"
        beat, now = self._heartbeat, time.monotonic()
        seen, since = self._seen_beat
        asked, self._asked = self._asked, now
        if beat != seen or now - asked > HEARTBEAT_SECONDS / 2:
            # it moved, or this is the first question in a long while (the GUI was busy, the
            # machine slept): start counting from now
            self._seen_beat = (beat, now)
        elif now - since > HEARTBEAT_SECONDS:
            return f"the audio device stopped asking for sound ({now - since:.1f} s)"
        return ""

    # clip bus
    @property
    def loop(self) -> bool:
        return self.clip.loop

    @loop.setter
    def loop(self, on: bool) -> None:
        self.clip.loop = on

    @property
    def underruns(self) -> int:
        """The clip bus's underruns (each bus counts its own)."""
        return self.clip.underruns

    @property
    def is_playing(self) -> bool:
        """Whether the clip bus plays."""
        return self.clip.is_playing

    @property
    def frames_played(self) -> int:
        return self.clip.frames_played

    @property
    def position_seconds(self) -> float:
        return self.clip.position_seconds

    # ------------------------------------------------------------------ the callback
    def _callback(self, outdata: np.ndarray, frames: int, times: Any, status: Any) -> None:
        self._heartbeat += 1
        frame = self._frames_out
        dac = times.outputBufferDacTime
        if dac > 0 and self._heartbeat > WARMUP_CALLBACKS:
            # The device may go on without us (JACK skips a client whose callback is held up
            # for whole cycles): the output time then runs ahead of the frames counted. Its
            # lead over the least seen (the base; wake-up delays only add to it, and the base
            # creeps up by LAG_LEAK a callback to follow a device clock slower than the
            # stream's), when it lasts RECENT_CALLBACKS callbacks (a late wake-up does not)
            # and is SKIP_BLOCKS blocks or more, is counted in, in whole blocks: frames stay on
            # the device's time line and a scheduled start keeps its time.
            lag = dac * self._sample_rate - frame
            recent = self._recent_excess
            recent[self._heartbeat % RECENT_CALLBACKS] = lag - self._lag_base
            excess = min(recent)  # a late wake-up passes; skipped cycles stay
            if excess > MAX_SKIP_SECONDS * self._sample_rate:  # a new time line, not a skip
                recent[:] = [0.0] * RECENT_CALLBACKS
                self._lag_base = lag
            elif excess >= SKIP_BLOCKS * self.blocksize:
                missed = int(round(excess / self.blocksize)) * self.blocksize
                frame += missed
                lag -= missed
                for k in range(RECENT_CALLBACKS):
                    recent[k] -= missed
                self._skipped += missed
            self._lag_base = min(lag, self._lag_base + LAG_LEAK)
        self._last_block = (frame, dac, time.perf_counter())
        outdata.fill(0)
        for bus in self._buses:
            bus.mix_into(outdata, frame)
        np.minimum(outdata, self._ceiling, out=outdata)  # np.clip: a Python wrapper, and
        np.maximum(outdata, self._floor, out=outdata)  # float bounds made into arrays each call
        self._frames_out = frame + frames

    # ------------------------------------------------------------------ the stream's clock
    def to_next_block(self) -> float:
        """Seconds until the callback is next due (from the latest one's ``perf_counter``
        time); one block's time before the first callback."""
        period = self.blocksize / self._sample_rate if self._sample_rate else 0.0
        last = self._last_block[2]
        if not last:
            return period
        return last + period - time.perf_counter()

    @property
    def frames_out(self) -> int:
        """The device's frames since the stream started: those handed to it by the callback,
        plus any it played while the callback was not called (``skipped_frames``)."""
        return self._frames_out

    @property
    def skipped_frames(self) -> int:
        """Frames the device played without our callback (whole blocks; JACK skips a client
        whose callback is held up, by another thread holding the GIL say)."""
        return self._skipped

    def _stream_offset(self) -> float | None:
        """``perf_counter() - stream.time`` now (the pair read closest together of three);
        None when the stream has no clock."""
        stream = self._stream
        if stream is None:
            return None
        best: tuple[float, float] | None = None
        for _ in range(3):
            t0 = time.perf_counter()
            try:
                st = float(stream.time)
            except Exception:  # noqa: BLE001 - PortAudioError: no stream time on this API
                return None
            t1 = time.perf_counter()
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, (t0 + t1) / 2 - st)
        return None if best is None else best[1]

    def frame_at(self, t: float) -> int | None:
        """The engine frame that will be heard at ``perf_counter()`` time ``t`` (None before
        the first callback). Through PortAudio's output time of the latest block and the
        stream's clock; without those, the callback's own time plus the stream's latency."""
        rate = self._sample_rate
        frame, dac, called = self._last_block
        stream = self._stream
        if not rate or stream is None or not called:
            return None
        offset = self._stream_offset() if dac > 0 else None
        if offset is not None:
            heard = dac + offset
        else:
            heard = called + float(stream.latency or 0.0)
        return frame + int(round((t - heard) * rate))

    @property
    def output_latency(self) -> float:
        """Seconds from a block's callback to its sound at the output, as the latest callback
        was told (PortAudio's output time less its current time; 0 before the first)."""
        frame, dac, called = self._last_block
        offset = self._stream_offset() if dac > 0 and called else None
        if offset is None:
            stream = self._stream
            return float(stream.latency or 0.0) if stream is not None else 0.0
        return max(0.0, dac + offset - called)

    def _on_finished(self) -> None:
        if self._stream is not None:
            self._finished = True

    # ------------------------------------------------------------------ playing
    def play(self, audio: Audio, loop: bool | None = None, at: float | None = None) -> None:
        """Play a clip on the clip bus, heard from ``perf_counter()`` time ``at`` when given
        (see :meth:`Bus.play`)."""
        self._require_started()
        self.clip.play(audio, loop=loop, at=at)

    def play_stream(self, blocks: Iterable[np.ndarray]) -> None:
        self._require_started()
        self.clip.play_stream(blocks)

    def push_block(self, block: np.ndarray, timeout: float | None = None) -> bool:
        """Queue one block on the live bus (see :meth:`Bus.push_block`)."""
        self._require_started()
        return self.live.push_block(block, timeout=timeout)

    def end_stream(self) -> None:
        self.live.end_stream()

    def wait(self, timeout: float | None = None) -> bool:
        return self.clip.wait(timeout)

    def stop(self) -> None:
        """Stop the clip bus at once."""
        self.clip.stop()

    def _require_started(self) -> None:
        if self._stream is None:
            raise CadenzaError(f"the audio output was lost ({self._lost})" if self._lost
                               else "the audio engine is not started")
