"""What the application owns and hands to the window, the workspaces and the live panel.

``run_app`` makes one :class:`Services` (the devices and the workers) before the window, passes it
to whoever needs it, and closes it after the event loop ends, as Anki hands ``mw.col`` to its
operations. A window made without one (tests) makes its own with :meth:`Services.create`, the
same single construction site, and closes it with itself.

There are two :class:`~app.worker.Worker` queues of the same kind: ``worker``, which owns the
models (and runs the duet as one long job while it is on), and ``opener``, which opens the live
panel's built-in outputs (FluidSynth and its soundfont, the morph's voices, the audio engine's
start): an output the musician picks must not wait behind a model job of minutes or behind the
duet, and the GUI thread never waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.devices import Devices
from app.live_output import prepare_fluidsynth
from app.settings import Settings
from app.worker import Worker


@dataclass
class Services:
    """The devices (the one sound output and MIDI system), the background worker that owns the
    models, and the one that opens live outputs."""

    devices: Devices
    worker: Worker
    opener: Worker

    @classmethod
    def create(cls, settings: Settings) -> Services:
        """Devices as the settings choose them, and the started workers."""
        devices = Devices(audio_device=settings.audio_device or None,
                          midi_out=settings.midi_out or None)
        worker = Worker(None, soundfont=settings.soundfont)
        worker.start()
        opener = Worker(None, soundfont=settings.soundfont, thread_name="cadenza-opener")
        opener.start()
        # No FluidSynth: said when an output is chosen, not now.
        opener.submit(prepare_fluidsynth, on_failure=lambda _exc: None, label="prepare FluidSynth")
        return cls(devices=devices, worker=worker, opener=opener)

    def close(self, timeout: float = 3.0) -> None:
        """Stop the workers (at most ``timeout`` seconds each: an output being opened is closed
        by its job), then close the devices (bounded)."""
        self.opener.shutdown(timeout=timeout)
        self.worker.shutdown(timeout=timeout)
        self.devices.close()
