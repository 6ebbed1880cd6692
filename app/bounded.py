"""Calls that may hang in a native library, given a deadline.

Closing a PortAudio stream or an rtmidi port talks to the sound server; when the server (JACK,
PulseAudio) or the device has vanished, some of those calls never return (PortAudio's JACK
backend waits ten minutes for a process callback that will not come). :func:`call_within` runs
such a call on a daemon thread and waits for it at most ``seconds``; past that the call is
abandoned, still running, so the caller (the GUI thread, an exit handler) goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def call_within(fn: Callable[[], object], seconds: float, name: str) -> threading.Thread | None:
    """Run ``fn()`` on a daemon thread called ``name`` and wait at most ``seconds``.

    Returns None when it finished in time (an exception it raised is logged, not raised), else
    the thread, still running: the caller may keep it to wait for it later or forget it.
    """

    def run() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - a closing call that fails has still finished
            log.debug("%s failed", name, exc_info=True)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(max(0.0, seconds))
    return thread if thread.is_alive() else None


def keep_forever(obj: object) -> None:
    """Keep ``obj`` alive until the process ends, never deallocated, not even when the
    interpreter exits: for a native object whose destructor must not run (an rtmidi output of
    a JACK server that went away: its destructor waits a second for the dead server, holding
    the GIL, and may touch a client libjack has freed)."""
    import ctypes

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
