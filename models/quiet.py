"""Native libraries' start-up notes on stderr, held back.

TensorFlow 2.19+ writes notes through absl before its log level applies (oneDNN, "Could not
find cuda drivers"), and libjack prints several lines each time a client looks for a server
that is not running. Cadenza says in one line what it found instead; these are dropped. When
the code inside raises, what was held is written out after all, so nothing is lost on failure.
The descriptor is process-wide: use this around short calls, at start-up. One block holds it at
a time, so two threads can never restore each other's descriptors: a block entered while another
thread holds stderr runs without holding it (its lines land in the other block's hold), rather
than waiting, since the waiting thread may be the GUI's.
A block given ``drop`` writes back every held line it does not drop, so another thread's
messages written meanwhile (the app's GUI thread while the worker imports TensorFlow) still
appear, only later.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_HOLD = threading.RLock()  # re-entrant: a nested block holds and restores in order


# absl's notes from native code ("I0000 00:00:1796 ... port.cc:153] oneDNN custom operations
# ..."), and its banner before its logging is set up. Errors (E, F) are kept.
_ABSL_NOTE = re.compile(r"^(?:[IW]\d{4} |WARNING: All log messages before absl::InitializeLog)")


def is_backend_note(line: str) -> bool:
    """Whether a stderr line is one of absl's start-up notes (info or warning)."""
    return bool(_ABSL_NOTE.match(line))


@contextmanager
def held_stderr(drop: Callable[[str], bool] | None = None) -> Iterator[None]:
    """Send file descriptor 2 to a temporary file for the duration of the block.

    Without ``drop`` everything held is dropped (unless the block raises); with it, the held
    lines ``drop`` does not match are written back when the block ends.
    """
    if not _HOLD.acquire(blocking=False):  # another thread holds stderr: never wait for it
        yield
        return
    try:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except OSError:  # no stderr to hold
            yield
            return
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            except BaseException:
                os.dup2(saved, 2)
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))
                raise
            else:
                os.dup2(saved, 2)
                if drop is not None:
                    held.seek(0)
                    kept = [line for line in held.read().decode(errors="replace")
                            .splitlines(keepends=True) if not drop(line)]
                    if kept:
                        sys.stderr.write("".join(kept))
                        sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
    finally:
        _HOLD.release()


class _QuietFirstImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it wraps the loading of the named top-level modules, once each, in
    :func:`held_stderr`."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.names:
            return None
        self.names.discard(fullname)
        if not self.names and self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def quiet_exec(module: Any) -> None:
            with held_stderr(drop=is_backend_note):
                exec_module(module)

        loader.exec_module = quiet_exec
        return spec


def quiet_backend_imports(names: tuple[str, ...] = ("tensorflow",)) -> None:
    """From now on, the first import of each of ``names`` (wherever it happens) runs with stderr
    held back: TensorFlow 2.19+ logs through absl before its log level applies. Only absl's
    info and warning notes are dropped; any other line written meanwhile, from any thread, is
    written out when the import ends, so the app's worker thread may import under it too."""
    pending = {n for n in names if n not in sys.modules}
    if pending:
        sys.meta_path.insert(0, _QuietFirstImport(pending))
