"""The widgets on their own: piano roll, waveform, XY pad, settings dialog, transport."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from app.settings import Settings, load_settings, open_qsettings, save_settings
from app.widgets.piano_roll import PianoRoll, PianoRollPanel, velocity_colour
from app.widgets.settings_dialog import SettingsDialog
from app.widgets.transport import TransportBar
from app.widgets.waveform import WaveformView
from app.widgets.xy_pad import XYPad
from models.audio_io import Audio
from models.sequence import Note, NoteSequence


def _many_notes(n: int = 10_000, seconds: float = 600.0) -> NoteSequence:
    rng = random.Random(1)
    notes = []
    for _ in range(n):
        start = rng.uniform(0, seconds)
        notes.append(Note(rng.randint(36, 96), rng.randint(1, 127), start,
                          start + rng.uniform(0.05, 2.0)))
    return NoteSequence(notes=notes)


def _wheel(widget, dy: int, modifiers=Qt.KeyboardModifier.NoModifier, x: float = 300.0):
    event = QWheelEvent(QPointF(x, 100), QPointF(x, 100), QPoint(0, 0), QPoint(0, dy),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    widget.wheelEvent(event)


@pytest.fixture()
def roll(qtbot):
    w = PianoRoll()
    qtbot.addWidget(w)
    w.resize(900, 400)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_piano_roll_draws_only_the_visible_notes_fast(roll):
    seq = _many_notes()
    roll.set_sequence(seq)
    assert roll.note_count == 10_000
    t0, t1 = roll.visible_time_range()
    expected = [n for n in seq.notes if n.end > t0 and n.start <= t1]
    assert len(roll.visible_notes()) == len(expected)
    start = time.perf_counter()
    for _ in range(10):
        roll.grab()
    per_frame = (time.perf_counter() - start) / 10
    assert 0 < roll.painted_notes < 1000
    assert per_frame < 0.1, f"{per_frame * 1000:.0f} ms per frame"
    # scrolled to the end, the visible set follows
    roll.set_x_offset(590.0)
    t0, t1 = roll.visible_time_range()
    assert all(n.end > t0 and n.start <= t1 for n in roll.visible_notes())


def test_piano_roll_zoom_and_scroll(roll):
    roll.set_sequence(_many_notes(500, 60.0))
    pps = roll.pixels_per_second
    _wheel(roll, 120, Qt.KeyboardModifier.ControlModifier)  # Ctrl+wheel: zoom time
    assert roll.pixels_per_second == pytest.approx(pps * 1.2)
    key = roll.key_height
    _wheel(roll, 120, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert roll.key_height > key  # Ctrl+Shift+wheel: zoom pitch
    top = roll.top_pitch
    _wheel(roll, -120)  # wheel: scroll pitch down
    assert roll.top_pitch < top
    x = roll.x_offset
    _wheel(roll, -120, Qt.KeyboardModifier.ShiftModifier)  # Shift+wheel: scroll time
    assert roll.x_offset > x
    roll.zoom_out()
    assert roll.pixels_per_second < pps * 1.2


def test_piano_roll_panel_buttons_and_scrollbar(qtbot):
    panel = PianoRollPanel()
    qtbot.addWidget(panel)
    panel.resize(800, 300)
    panel.show()
    panel.set_sequence(_many_notes(300, 120.0), "test")
    pps = panel.roll.pixels_per_second
    panel.bar.buttons["in"].click()
    assert panel.roll.pixels_per_second > pps
    panel.scroll.setValue(panel.scroll.maximum())
    assert panel.roll.x_offset > 50
    panel.bar.buttons["fit"].click()
    t0, t1 = panel.roll.visible_time_range()
    assert t0 == 0 and t1 >= panel.roll.total_time - 0.01


def test_piano_roll_marks_drums_and_shades_velocity(roll):
    seq = NoteSequence(notes=[Note(36, 100, 0.5, 0.6, is_drum=True),
                              Note(60, 20, 0.5, 1.0), Note(64, 127, 0.5, 1.0)])
    roll.set_sequence(seq)
    roll.grab()
    assert roll.painted_notes == 3
    soft, loud = velocity_colour(20), velocity_colour(127)
    assert soft.alphaF() < loud.alphaF()
    assert soft.saturationF() < loud.saturationF()
    assert velocity_colour(100, drum=True).hue() != velocity_colour(100).hue()
    image = roll.grab().toImage()
    x = int(roll.time_to_x(0.5))
    y = int(roll.pitch_to_y(36.5))
    drum_pixel = image.pixelColor(x, y)
    assert drum_pixel.green() > drum_pixel.red()  # the drum diamond is green


def test_piano_roll_playhead_follows(roll):
    roll.set_sequence(_many_notes(200, 300.0))
    roll.set_playhead(250.0)
    t0, t1 = roll.visible_time_range()
    assert t0 <= 250.0 < t1
    roll.set_playhead(None)
    assert roll.playhead is None


def test_waveform_envelope_is_cached_per_zoom(qtbot):
    view = WaveformView()
    qtbot.addWidget(view)
    view.resize(600, 200)
    view.show()
    qtbot.waitExposed(view)
    samples = np.zeros((48000, 2), dtype=np.float32)
    samples[1000:1100, 0] = 1.0
    samples[30000, :] = -0.5
    view.set_audio(Audio(samples, 48000))
    view.grab()  # paints
    computed = view.envelope_computations
    assert computed == 1
    mins, maxs = view.envelope()
    spp = view.samples_per_pixel
    assert len(mins) == -(-48000 // spp)
    assert maxs[1000 // spp] == pytest.approx(0.5)  # mono mix of 1.0 and 0.0
    assert mins[30000 // spp] == pytest.approx(-0.5)
    view.grab()
    view.grab()
    assert view.envelope_computations == computed  # cached, not recomputed per paint
    view.zoom_in()
    view.grab()
    assert view.envelope_computations == computed + 1
    view.zoom_out()
    view.grab()
    assert view.envelope_computations == computed + 1  # that zoom level was cached
    assert spp in view.cached_zoom_levels
    view.set_playhead(0.5)
    assert view.playhead == 0.5


def test_waveform_shows_a_new_clip_whole_from_its_start(qtbot):
    """Fit after a clip at another zoom (and after a resize) starts at 0 s and ends at the
    clip's end: it used to keep the old zoom's centre and scroll part of the clip away."""
    view = WaveformView()
    qtbot.addWidget(view)
    view.resize(220, 100)
    view.show()
    qtbot.waitExposed(view)
    view.set_audio(Audio(np.zeros((400, 1), np.float32), 16000))  # short: the finest zoom
    view.zoom_in()
    for seconds, rate in ((4.0, 16000), (1.5, 44100)):
        view.set_audio(Audio(np.zeros((int(seconds * rate), 1), np.float32), rate))
        t0, t1 = view.visible_time_range()
        assert t0 == 0.0 and seconds <= t1 < seconds * 1.05, (t0, t1)
        view.resize(420, 100)
        qtbot.wait(10)
        t0, t1 = view.visible_time_range()
        assert t0 == 0.0 and seconds <= t1 < seconds * 1.05, (t0, t1)
        view.resize(220, 100)
        qtbot.wait(10)


def test_xy_pad_moves_with_the_mouse(qtbot):
    pad = XYPad()
    qtbot.addWidget(pad)
    pad.resize(200, 200)
    pad.show()
    with qtbot.waitSignal(pad.moved) as blocker:
        qtbot.mouseClick(pad, Qt.MouseButton.LeftButton, pos=QPoint(150, 50))
    x, y = blocker.args
    assert x > 0.6 and y < 0.4
    pad.setEnabled(False)
    qtbot.mouseClick(pad, Qt.MouseButton.LeftButton, pos=QPoint(20, 180))
    assert pad.position == (x, y)


def test_transport_signals(qtbot):
    bar = TransportBar()
    qtbot.addWidget(bar)
    with qtbot.waitSignal(bar.play_clicked):
        bar.play_button.click()
    with qtbot.waitSignal(bar.loop_toggled) as blocker:
        bar.loop_button.click()
    assert blocker.args == [True] and bar.loop
    bar.set_position(65.25, 130.0)
    assert bar.position.text() == "1:05.2 / 2:10.0"


def test_settings_round_trip_in_a_temporary_location(settings_dir):
    assert load_settings() == Settings()  # nothing stored yet: defaults
    chosen = Settings(audio_device="system", midi_in="Keystation", midi_out="Synth",
                      soundfont="/tmp/x.sf2", compute_device="gpu", theme="light")
    save_settings(chosen)
    assert open_qsettings().fileName().startswith(str(settings_dir))
    assert load_settings() == chosen
    store = open_qsettings()
    store.setValue("prefs/theme", "purple")
    assert load_settings(store).theme == "dark"  # unknown values fall back


def test_settings_dialog_edits_a_copy(qtbot):
    start = Settings(audio_device="system", midi_out="Synth")
    dialog = SettingsDialog(start, ["system", "Speakers"], ["Keys"], ["Synth", "Other"])
    qtbot.addWidget(dialog)
    dialog.audio.setCurrentText("Speakers")
    dialog.midi_in.setCurrentIndex(dialog.midi_in.findText("Keys"))
    dialog.midi_out.setCurrentIndex(0)  # None
    dialog.soundfont.setText(" /tmp/font.sf2 ")
    dialog.compute.setCurrentIndex(dialog.compute.findData("cpu"))
    dialog.theme.setCurrentIndex(dialog.theme.findData("light"))
    result = dialog.result_settings()
    assert result == Settings(audio_device="Speakers", midi_in="Keys", midi_out="",
                              soundfont="/tmp/font.sf2", compute_device="cpu", theme="light")
    assert start == Settings(audio_device="system", midi_out="Synth")
