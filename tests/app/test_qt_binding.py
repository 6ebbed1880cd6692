"""The Qt binding in use must keep Python's reference counts straight.

PySide6 6.12.0 on CPython 3.11 returns ``None`` from every void C++ method without taking a
reference; a second of painting then aborts the interpreter. requirements.lock pins a good build;
this test fails if a bad one comes back.
"""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QLabel


def test_void_methods_do_not_steal_references_to_none(qtbot) -> None:
    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for _ in range(1000):
        label.setText("x")
    # Other threads may create or drop a few references meanwhile; a leak is 1000.
    assert abs(sys.getrefcount(None) - before) < 200
