"""Work around a reference-count bug of PySide6 6.12.0 on CPython 3.11.

In that build every C++ method returning ``void`` hands back ``None`` without taking a reference
(``QPainter.drawLine``, ``QLabel.setText``, ``QWidget.update``...): each call lowers ``None``'s
reference count by one, and after some thousands of calls (one second of painting) CPython aborts
with "Fatal Python error: none_dealloc: deallocating None". CPython 3.12+ made ``None``, ``True``
and ``False`` immortal (PEP 683), so the bug is harmless there. On older versions we do the same
by hand: give those singletons a reference count so large that no app run can bring it to zero.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 48
_done = False


def make_singletons_immortal() -> bool:
    """Apply the workaround once (CPython < 3.12 only); whether it was applied now."""
    global _done
    if _done or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += _HEADROOM
    _done = True
    return True


make_singletons_immortal()
