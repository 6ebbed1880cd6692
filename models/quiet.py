"""Native libraries' start-up notes on stderr, held back.

TensorFlow 2.19+ writes notes through absl before its log level applies (oneDNN, "Could not
find cuda drivers"), and libjack prints several lines each time a client looks for a server
that is not running. Cadenza says in one line what it found instead; these are dropped. When
the code inside raises, what was held is written out after all, so nothing is lost on failure.
The descriptor is process-wide: use this around short calls, at start-up. One block holds it at
a time (a second thread waits), so two threads can never restore each other's descriptors.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_HOLD = threading.RLock()  # re-entrant: a nested block holds and restores in order


@contextmanager
def held_stderr() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file for the duration of the block."""
    with _HOLD:
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
            finally:
                os.dup2(saved, 2)
                os.close(saved)


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
            with held_stderr():
                exec_module(module)

        loader.exec_module = quiet_exec
        return spec


def quiet_backend_imports(names: tuple[str, ...] = ("tensorflow",)) -> None:
    """From now on, the first import of each of ``names`` (wherever it happens) runs with stderr
    held back: TensorFlow 2.19+ logs through absl before its log level applies. For the command
    line, where nothing else writes to stderr meanwhile; not for the app's worker thread."""
    pending = {n for n in names if n not in sys.modules}
    if pending:
        sys.meta_path.insert(0, _QuietFirstImport(pending))
