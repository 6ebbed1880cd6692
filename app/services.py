"""What the application owns and hands to the window, the workspaces and the live panel.

``run_app`` makes one :class:`Services` (the devices and the worker) before the window, passes it
to whoever needs it, and closes it after the event loop ends, as Anki hands ``mw.col`` to its
operations. A window made without one (tests) makes its own with :meth:`Services.create`, the
same single construction site, and closes it with itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.devices import Devices
from app.settings import Settings
from app.worker import Worker


@dataclass
class Services:
    """The devices (the one sound output and MIDI system) and the one background worker."""

    devices: Devices
    worker: Worker

    @classmethod
    def create(cls, settings: Settings) -> Services:
        """Devices as the settings choose them, and a started worker."""
        devices = Devices(audio_device=settings.audio_device or None,
                          midi_out=settings.midi_out or None)
        worker = Worker(None, soundfont=settings.soundfont)
        worker.start()
        return cls(devices=devices, worker=worker)

    def close(self, timeout: float = 3.0) -> None:
        """Stop the worker (at most ``timeout`` seconds), then close the devices (bounded)."""
        self.worker.shutdown(timeout=timeout)
        self.devices.close()
