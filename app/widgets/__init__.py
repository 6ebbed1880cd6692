"""Custom widgets: piano roll, waveform, clip library, transport bar, XY pad, settings dialog."""

from app.widgets import pyside_fix as _pyside_fix  # noqa: F401 - must run before any painting
