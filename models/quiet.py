"""Native libraries' start-up notes on stderr, held back.

TensorFlow 2.19+ writes notes through absl before its log level applies (oneDNN, "Could not
find cuda drivers"), and libjack prints several lines each time a client looks for a server
that is not running. Cadenza says in one line what it found instead; these are dropped. When
the code inside raises, what was held is written out after all, so nothing is lost on failure.
The descriptor is process-wide: use this around short calls, at start-up.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def held_stderr() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file for the duration of the block."""
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


def import_backend_quietly() -> None:
    """Import Keras (and with it the backend) without TensorFlow's start-up notes."""
    if "keras" in sys.modules:
        return
    with held_stderr():
        import keras  # noqa: F401
