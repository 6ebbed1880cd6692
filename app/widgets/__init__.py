"""Custom widgets: piano roll, waveform, clip library, transport bar, XY pad, settings dialog."""

