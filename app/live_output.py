"""The live panel's built-in outputs, opened off the GUI thread.

Opening built-in sound takes a while: the audio engine starts on first use, FluidSynth loads
the General MIDI soundfont (75-260 ms measured), a morph instrument is resampled to the
engine's rate. :func:`open_voices_job` does it as a job of the application's opener
(:attr:`app.services.Services.opener`, a :class:`app.worker.Worker`); meanwhile the panel plays
into a :class:`PendingOutput`, which is a sink like the output itself and forwards to it once
it is open.

What is played while the output opens (the keyboard, a duet's answer, the metronome):

* a key still held when the output is ready sounds then (late, rather than not at all), after
  the latest controller, program and pitch-bend values of each channel;
* a key pressed *and* released before then is not played late (it would sound out of time):
  it is counted in :attr:`PendingOutput.dropped`, and the panel's "ready" line says how many
  were lost.

The hand-over is safe against the musician changing their mind: an output that is not wanted
any more (another one was chosen, the panel closed) is closed by whichever side has it: the job
when it finishes after :meth:`PendingOutput.abandon`, the panel when it was finished before.
Nothing opened is ever left running. Closing is off the GUI thread too
(:class:`BackgroundCloser`: FluidSynth's deletion and the end of the render thread take some
20-30 ms), on the same worker, so an output is closed before the next one opens.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from app.midi_ports import NoteSink
from app.worker import Job, JobContext

__all__ = ["BackgroundCloser", "PendingOutput", "open_voices_job", "prepare_fluidsynth"]

log = logging.getLogger(__name__)

_CONTROLS = (0xB0, 0xC0, 0xD0, 0xE0)  # controller, program, channel pressure, pitch bend


class PendingOutput(NoteSink):
    """A sink for a built-in output that is being opened (``what`` names it for the panel's
    status line: "built-in audio"); :meth:`attach` hands it the output once open, and from then
    on every message goes straight to it. ``plays_drums``: whether the output will play General
    MIDI drums on channel 10 (a metronome's clicks)."""

    def __init__(self, what: str, plays_drums: bool = True) -> None:
        self.what = what
        self.plays_drums = plays_drums
        self.dropped = 0  # notes begun and ended before the output was open
        self._lock = threading.Lock()
        self._held: set[tuple[int, int]] = set()
        self._waiting: dict[tuple[int, int], list[int]] = {}  # held keys' note-ons
        self._controls: dict[tuple[int, int, int], list[int]] = {}  # the latest of each
        self._sink: Any = None
        self._product: Any = None
        self._abandoned = False

    # ------------------------------------------------------------------ sink
    def send(self, message: list[int]) -> None:
        """One MIDI message from any thread: to the output once open, else kept (see the
        module docstring)."""
        data = list(message)
        if not data:
            return
        with self._lock:
            if self._abandoned:
                return
            if self._sink is not None:
                self._sink.send(data)
                return
            self._keep(data)

    def _keep(self, data: list[int]) -> None:
        status, channel = data[0] & 0xF0, data[0] & 0x0F
        if status == 0x90 and len(data) >= 3 and data[2] > 0:
            self._waiting.pop((channel, data[1]), None)  # a key struck again: once
            self._waiting[(channel, data[1])] = data
            self._held.add((channel, data[1]))
        elif status in (0x80, 0x90) and len(data) >= 3:
            if self._waiting.pop((channel, data[1]), None) is not None:
                self.dropped += 1
            self._held.discard((channel, data[1]))
        elif status == 0xB0 and len(data) >= 3 and data[1] in (120, 123):  # all notes off
            for key in [k for k in self._waiting if k[0] == channel]:
                del self._waiting[key]
                self._held.discard(key)
        elif status in _CONTROLS and len(data) >= 2:
            key = (status, channel, data[1] if status == 0xB0 else -1)
            self._controls.pop(key, None)  # the latest value, in the order they came
            self._controls[key] = data

    def panic(self) -> None:
        with self._lock:
            if self._sink is not None:
                self._sink.panic()
            self._waiting.clear()
            self._held.clear()

    @property
    def latency(self) -> float:
        """The output's latency once open (a metronome sends that early); 0 until then."""
        sink = self._sink
        return float(getattr(sink, "latency", 0.0) or 0.0) if sink is not None else 0.0

    @property
    def held_notes(self) -> set[tuple[int, int]]:
        sink = self._sink
        if sink is not None and hasattr(sink, "held_notes"):
            return set(sink.held_notes)
        with self._lock:
            return set(self._held)

    @property
    def waiting(self) -> int:
        """Keys held down that will sound once the output is open."""
        with self._lock:
            return len(self._waiting)

    # ------------------------------------------------------------------ hand-over
    @property
    def abandoned(self) -> bool:
        return self._abandoned

    @property
    def attached(self) -> bool:
        return self._sink is not None

    def deliver(self, product: Any) -> bool:
        """The job made the output (any thread): kept for :meth:`take`; False when it is not
        wanted any more (the caller closes it)."""
        with self._lock:
            if self._abandoned:
                return False
            self._product = product
            return True

    def take(self) -> Any:
        """What :meth:`deliver` kept, once (then None); None when abandoned."""
        with self._lock:
            product, self._product = self._product, None
            return product

    def attach(self, sink: Any) -> bool:
        """From now on messages go to ``sink``: the kept controls, then the held keys, are
        played on it first. False (nothing sent) when this was abandoned."""
        with self._lock:
            if self._abandoned:
                return False
            for data in self._controls.values():
                sink.send(data)
            for data in self._waiting.values():
                sink.send(data)
            self._controls.clear()
            self._waiting.clear()
            self._sink = sink
            return True

    def abandon(self) -> Any:
        """Not wanted any more: nothing more is played or kept. Returns what was delivered and
        not taken yet (the caller closes it); a job still running closes its own."""
        with self._lock:
            self._abandoned = True
            self._sink = None
            self._waiting.clear()
            self._controls.clear()
            self._held.clear()
            product, self._product = self._product, None
            return product


def open_voices_job(devices: Any, pending: PendingOutput,
                    make: Callable[[Any], Any]) -> Job:
    """A job: the devices' audio engine (started on first use), then ``make(engine)``, the
    voices on it (a :class:`~app.transport.LiveSynth`, :class:`~app.sampler.SamplerSynth` or
    :class:`~app.sampler.DDSPSynth`), delivered to ``pending`` as ``(engine, voices)``.
    Returns True when delivered, False when ``pending`` was abandoned (then nothing is made, or
    what was made is closed here). Errors (no audio output, no soundfont) raise as one-line
    ``CadenzaError``s."""

    def job(ctx: JobContext) -> bool:
        if pending.abandoned:
            return False
        engine = devices.audio()
        if pending.abandoned:
            return False
        voices = make(engine)
        if not pending.deliver((engine, voices)):
            voices.close()
            return False
        return True

    return job


def prepare_fluidsynth(ctx: JobContext) -> None:
    """A job for the opener at the application's start: FluidSynth's one-time set-up
    (:func:`models.render.prepare`), so that the first built-in output opened later does not
    hold up the window."""
    from models.render import prepare

    prepare()


class BackgroundCloser:
    """Closes outputs (anything with ``close()``) as jobs of ``worker``, in the order asked;
    :meth:`close_now` closes, on the calling thread, those whose job has not run yet (the
    panel closing: the worker's queue is about to be cancelled). Each is closed exactly once.
    """

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[Any, str]] = {}
        self._ids = itertools.count(1)

    @property
    def waiting(self) -> int:
        """How many wait for their job."""
        with self._lock:
            return len(self._waiting)

    def close(self, thing: Any, what: str) -> None:
        """Close ``thing`` on the worker (``what`` names it in the log if closing fails)."""
        key = next(self._ids)
        with self._lock:
            self._waiting[key] = (thing, what)

        def job(_ctx: JobContext) -> None:
            self._close(key)

        self.worker.submit(job, on_failure=lambda exc: log.error("closing %s: %s", what, exc),
                           label=f"close {what}")

    def close_now(self) -> None:
        """Close here what still waits for its job."""
        with self._lock:
            keys = list(self._waiting)
        for key in keys:
            self._close(key)

    def _close(self, key: int) -> None:
        with self._lock:
            item = self._waiting.pop(key, None)
        if item is None:
            return
        thing, what = item
        try:
            thing.close()
        except Exception:  # noqa: BLE001 - closing must not stop the others
            log.exception("closing %s", what)
