"""Noticing that the JACK server went away (or was restarted), without libjack.

Why it matters, beyond telling the user: libjack keeps one table of clients per process. When a
server goes away, each client's notification thread notices, and the next ``jack_client_open``
anywhere in the process then closes and frees every client libjack still has (jack2's
``JackLibGlobals::Init``). Touching one of those old clients afterwards (closing an rtmidi port,
PortAudio's ``Pa_Terminate``) uses freed memory and crashes the process, or makes PortAudio's
JACK backend assert. So once the server is gone, every old client must be closed, or never
touched again, before the first new one opens; the owners of the clients
(:class:`app.audio_engine.PortAudio`, :class:`app.midi_ports.MidiSystem`, coordinated by
:class:`app.devices.Devices`) do that in order, told by a :class:`JackWatch`.

The watch asks the server's request socket itself (a ``connect`` and ``close``, which the server
ignores), not libjack: a libjack probe after a loss would be exactly the new client that frees
the old ones. A server that was restarted under the same name has a new socket file, so it is
told apart from the one the clients belong to. The socket's place is jack2's on Linux
(``/dev/shm/jack_<server>_<uid>_0``); where it is not found, the watch knows nothing and says
nothing (the audio engine's heartbeat still notices a lost output).
"""

from __future__ import annotations

import os
import socket

JACK_SERVER_DIR = "/dev/shm"  # jack2's jack_server_dir on Linux


def server_name() -> str:
    """The JACK server clients of this process connect to (``JACK_DEFAULT_SERVER``)."""
    return os.environ.get("JACK_DEFAULT_SERVER") or "default"


def server_instance(name: str | None = None) -> tuple[str, int] | None:
    """(socket path, inode) of the running JACK server called ``name`` (the default one), or
    None when none accepts connections there. Never starts a server."""
    name = (name or server_name()).replace("/", "_").replace("\\", "_")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    for path in (f"{JACK_SERVER_DIR}/jack_{name}_{uid}_0", f"{JACK_SERVER_DIR}/jack_{name}_0"):
        try:
            inode = os.stat(path).st_ino
        except OSError:
            continue
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(0.5)
        try:
            sock.connect(path)
        except OSError:  # a server that was killed leaves its socket file behind
            return None
        finally:
            sock.close()
        return path, inode
    return None


class JackWatch:
    """Remembers the JACK server running when it was made, and says when that one is gone.

    ``known``: a server was found (else the watch says nothing). ``lost_reason()``: "" while
    the same server runs, else why (gone, or restarted: its clients from before are dead all
    the same); once lost, it stays lost. Cheap (a local socket connect): call it a few times a
    second.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or server_name()
        self.instance = server_instance(self.name)
        self._lost = ""

    @property
    def known(self) -> bool:
        return self.instance is not None

    def lost_reason(self) -> str:
        if self._lost or self.instance is None:
            return self._lost
        now = server_instance(self.name)
        if now is None:
            self._lost = f"the JACK server {self.name!r} went away"
        elif now != self.instance:
            self._lost = f"the JACK server {self.name!r} was restarted"
        return self._lost

    @property
    def lost(self) -> bool:
        return bool(self.lost_reason())
