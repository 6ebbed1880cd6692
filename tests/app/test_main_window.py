"""The window: open real files, play through JACK, export, errors, settings, speed, screenshots."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

from app.clips import Clip
from app.main_window import NO_AUDIO, SYSTEM_STYLE_PROPERTY, MainWindow
from app.settings import Settings, load_settings, open_qsettings
from models.audio_io import read_audio
from models.midi_io import read_midi

ROOT = Path(__file__).resolve().parents[2]


def test_open_real_midi_shows_its_notes(window, piano_file):
    expected = read_midi(piano_file)
    added = window.open_files([piano_file])
    assert [c.name for c in added] == [piano_file.stem]
    assert [c.name for c in window.library.clips()] == [piano_file.stem]
    assert window.library.current_clip() is added[0]
    assert window.clip_stack.currentWidget() is window.piano_roll
    roll = window.piano_roll.roll
    assert roll.note_count == len(expected.notes) > 100
    t0, t1 = roll.visible_time_range()
    assert t0 == 0.0 and 0 < t1 < expected.total_time
    visible = roll.visible_notes()
    assert 0 < len(visible) < roll.note_count
    assert all(n.end > t0 and n.start <= t1 for n in visible)
    roll.grab()
    assert roll.painted_notes == len(visible)
    lo, hi = roll.visible_pitch_range()
    pitches = [n.pitch for n in expected.notes]
    assert lo <= min(pitches) and max(pitches) <= hi  # fitted to the piece
    # the workspaces now offer it as a primer / endpoint
    assert window.workspaces["Continue"].primer.currentText() == piano_file.stem
    assert "Opened" in window.last_message


def test_open_wav_shows_the_waveform(window, wav_file):
    (clip,) = window.open_files([wav_file])
    assert not clip.is_midi
    assert window.clip_stack.currentWidget() is window.waveform
    view = window.waveform.view
    assert view.frames == int(1.5 * 44100)
    assert view.duration == pytest.approx(1.5)
    mins, maxs = view.envelope()
    assert maxs.max() == pytest.approx(0.45, abs=0.01)  # mean of 0.6 and 0.3 peaks
    assert mins.min() == pytest.approx(-0.45, abs=0.01)
    assert maxs[-1] < 0.01  # it fades out


def test_a_bad_file_shows_one_line_and_loses_nothing(window, piano_file, tmp_path):
    window.open_files([piano_file])
    before = window.library.clips()
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    assert window.open_files([empty]) == []
    message = window.last_message
    assert message.startswith("Could not open") and "empty.mid" in message
    assert "\n" not in message
    assert window.statusBar().currentMessage() == message
    assert window.open_files([junk, tmp_path / "missing.wav"]) == []
    assert "notes.txt" in window.last_message and "missing.wav" in window.last_message
    assert window.library.clips() == before
    assert window.isVisible()
    assert window.piano_roll.roll.note_count > 0  # the view still shows the good clip


def test_drop_files_onto_the_library(window, piano_file, wav_file, qtbot):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(piano_file)), QUrl.fromLocalFile(str(wav_file))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.library.list.dropEvent(event)
    assert event.isAccepted()
    assert [c.name for c in window.library.clips()] == [piano_file.stem, "tone"]


def test_drag_out_writes_real_files(window, short_piano_clip, wav_file):
    window.add_clip(short_piano_clip)
    mime = window.library.mime_data_for(short_piano_clip)
    (url,) = mime.urls()
    path = Path(url.toLocalFile())
    assert path.suffix == ".mid" and path.is_file()
    assert len(read_midi(path).notes) == len(short_piano_clip.sequence.notes)
    (audio_clip,) = window.open_files([wav_file])
    (url,) = window.library.mime_data_for(audio_clip).urls()
    wav = Path(url.toLocalFile())
    assert wav.suffix == ".wav" and read_audio(wav).samples.shape[0] == int(1.5 * 44100)


def test_rename_and_remove(window, short_piano_clip, wav_file):
    window.add_clip(short_piano_clip)
    (audio_clip,) = window.open_files([wav_file])
    window.library.rename(short_piano_clip, "  My idea ")
    assert short_piano_clip.name == "My idea"
    assert window.workspaces["Continue"].primer.itemText(1) == "My idea"
    window.library.select(audio_clip)
    window.library.remove_current()
    assert window.library.clips() == [short_piano_clip]
    window.library.remove(short_piano_clip)
    assert window.library.clips() == []
    assert window.clip_stack.currentWidget() is window.empty_view


@pytest.mark.jack
def test_play_and_stop_through_jack(window, short_piano_clip, jack_server, qtbot):
    window.add_clip(short_piano_clip)
    window.play()
    qtbot.waitUntil(lambda: window.is_playing, timeout=30000)  # rendered in the worker
    engine = window.devices.engine
    assert engine is not None and engine.is_playing
    first = engine.position_seconds
    qtbot.wait(600)
    second = engine.position_seconds
    assert second > first + 0.2
    roll = window.piano_roll.roll
    assert roll.playhead is not None and roll.playhead > 0
    assert window.transport.position.text().startswith("0:0")
    assert window.audio_label.text() == "Audio: ready"
    window.stop()
    assert not engine.is_playing and not window.is_playing
    assert roll.playhead is None
    # a second Play reuses the render
    window.play()
    assert window.is_playing
    window.stop()


@pytest.mark.jack
def test_audio_clips_play_directly_and_end_by_themselves(window, wav_file, jack_server, qtbot):
    window.open_files([wav_file])
    window.play()
    qtbot.waitUntil(lambda: window.is_playing, timeout=10000)
    qtbot.waitUntil(lambda: window.waveform.view.playhead is not None, timeout=3000)
    qtbot.waitUntil(lambda: not window.is_playing, timeout=8000)  # 1.5 s clip ends
    assert not window.devices.engine.is_playing


@pytest.mark.jack
def test_without_an_audio_device_play_says_so(window, short_piano_clip, jack_server, qtbot,
                                              monkeypatch, tmp_path):
    import sounddevice as sd

    monkeypatch.setenv("JACK_DEFAULT_SERVER", "cadenza-no-such-server")  # PortAudio sees none
    try:
        window.add_clip(short_piano_clip)
        window.play()
        assert window.last_message.startswith(NO_AUDIO)
        assert "\n" not in window.last_message
        assert window.audio_label.text() == NO_AUDIO
        assert not window.is_playing and window.isVisible()
        assert window.export_midi(tmp_path / "still.mid")  # export still works
    finally:
        monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server)
        sd._terminate()
        sd._initialize()


def test_a_bogus_audio_device_setting_says_no_audio(window, short_piano_clip):
    window.apply_settings(Settings(audio_device="no-such-sound-card-cadenza"))
    window.add_clip(short_piano_clip)
    window.play()
    assert window.last_message.startswith(NO_AUDIO)
    assert "no-such-sound-card-cadenza" in window.last_message
    assert not window.is_playing and window.isVisible()


def test_export_midi_and_wav(window, short_piano_clip, tmp_path, qtbot):
    window.add_clip(short_piano_clip)
    mid = tmp_path / "out.mid"
    assert window.export_midi(mid)
    back = read_midi(mid)
    assert len(back.notes) == len(short_piano_clip.sequence.notes)
    assert [n.pitch for n in back.sorted().notes] == \
        [n.pitch for n in short_piano_clip.sequence.sorted().notes]
    wav = tmp_path / "out.wav"
    with qtbot.waitSignal(window.exported, timeout=60000) as blocker:
        window.export_wav(wav)
    assert blocker.args == [str(wav)]
    audio = read_audio(wav)
    assert audio.duration >= 4.5
    rms = float(np.sqrt(np.mean(audio.samples.astype(np.float64) ** 2)))
    assert rms > 0.005


def test_export_wav_of_an_audio_clip_and_to_a_bad_place(window, wav_file, tmp_path, qtbot):
    window.open_files([wav_file])
    with qtbot.waitSignal(window.exported, timeout=20000):
        window.export_wav(tmp_path / "copy")  # .wav is added
    assert read_audio(tmp_path / "copy.wav").samples.shape[0] == int(1.5 * 44100)
    with qtbot.waitSignal(window.export_failed, timeout=20000):
        window.export_wav(tmp_path / "no" / "such" / "dir" / "x.wav")
    assert window.last_message.startswith("Could not export audio")
    assert "\n" not in window.last_message


def test_settings_are_remembered_in_the_temporary_location(window, qtbot, settings_dir):
    new = Settings(audio_device="system", midi_in="Keystation", midi_out="Cadenza",
                   soundfont="/usr/share/sounds/sf2/FluidR3_GM.sf2", compute_device="cpu",
                   theme="light")
    window.apply_settings(new)
    ini_files = list(settings_dir.rglob("*.ini"))
    assert [p.name for p in ini_files] == ["Cadenza.ini"]
    assert "Keystation" in ini_files[0].read_text()
    assert load_settings(open_qsettings()) == new
    again = MainWindow(probe_compute=False)
    qtbot.addWidget(again)
    assert again.settings == new
    real = Path.home() / ".config" / "Cadenza" / "Cadenza.ini"
    assert not real.exists() or "Keystation" not in real.read_text()


def test_theme_setting_switches_the_look_and_system_restores_the_platform_style(window):
    import dataclasses

    app = QApplication.instance()
    platform_style = app.property(SYSTEM_STYLE_PROPERTY)
    assert platform_style  # recorded when the first theme was applied

    def window_lightness() -> int:
        return app.palette().color(QPalette.ColorRole.Window).lightness()

    try:
        window.apply_settings(dataclasses.replace(window.settings, theme="light"))
        light = window_lightness()
        window.apply_settings(dataclasses.replace(window.settings, theme="dark"))
        assert window_lightness() < light - 100
        window.apply_settings(dataclasses.replace(window.settings, theme="system"))
        platform = QStyleFactory.create(platform_style).standardPalette()
        assert window_lightness() == platform.color(QPalette.ColorRole.Window).lightness()
        assert app.property(SYSTEM_STYLE_PROPERTY) == platform_style  # not overwritten
    finally:
        window.apply_settings(dataclasses.replace(window.settings, theme="dark"))


def test_workspaces_say_plainly_that_the_model_is_missing(window):
    # Before the model list arrives: looking, not "missing", and nothing to click yet.
    for ws in window.workspaces.values():
        assert not ws.notice.isVisibleTo(ws) and "not installed" not in ws.notice.text()
        assert ws.model_combo.currentText() == "looking for models…"
        assert all(not b.isEnabled() for b in ws.action_buttons)
    window._models_listed([])  # the listing found none
    for title, ws in window.workspaces.items():
        assert window.tabs.tabText(window.tabs.indexOf(ws)) == title
        assert ws.notice.isVisibleTo(ws) and "not installed yet" in ws.notice.text()
        assert ws.action_buttons
        for button in ws.action_buttons:
            assert not button.isEnabled()
            assert "not installed yet" in button.toolTip()


@pytest.mark.parametrize("title", ["Continue", "Interpolate", "Morph"])
def test_screenshot_each_workspace(window, piano_file, wav_file, title, artifacts_dir, qtbot):
    window.open_files([wav_file])
    (clip,) = window.open_files([piano_file])
    window.library.select(clip)
    ws = window.show_workspace(title)
    qtbot.wait(50)
    assert window.clip_stack.currentWidget() is window.piano_roll
    assert window.piano_roll.roll.painted_notes > 0
    path = artifacts_dir / f"screenshot-{title.lower()}.png"
    image = window.grab()
    assert image.save(str(path))
    assert path.stat().st_size > 10_000
    assert image.width() >= 1200 and image.height() >= 750
    assert ws.isVisible()


_STARTUP = r"""
import sys, threading, time
t0 = time.perf_counter()
HEAVY = ("tensorflow", "keras", "jax", "torch")
gui_imports = []


class Watch:
    # records heavy imports made on the GUI (main) thread; imports nothing itself
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY and threading.current_thread() is threading.main_thread():
            gui_imports.append(name)
        return None


sys.meta_path.insert(0, Watch())
from PySide6.QtCore import QSettings
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, sys.argv[1])
from app.main_window import MainWindow, apply_theme, create_app
app = create_app()
w = MainWindow()
apply_theme(app, w.settings.theme)
w.show()
app.processEvents()
shown = time.perf_counter() - t0
time.sleep(0.5)  # let the worker start importing the backend (on its own thread)
app.processEvents()
print(f"{shown:.3f} {','.join(sorted(set(gui_imports))) or '-'}")
sys.stdout.flush()
import os
os._exit(0)
"""


def test_window_appears_within_three_seconds(tmp_path, artifacts_dir):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    times = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", _STARTUP, str(tmp_path / "settings")],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        seconds, heavy = out.stdout.split()[-2:]
        assert heavy == "-", f"the GUI thread imported {heavy}"
        times.append(float(seconds))
    (artifacts_dir / "time-to-window.txt").write_text(
        " ".join(f"{t:.3f}" for t in times) + " seconds (offscreen, start of import to shown)\n")
    print("time to window:", times)
    assert max(times) < 3.0, times


@pytest.mark.slow
def test_the_worker_reports_the_compute_device(qtbot, tmp_path):
    win = MainWindow(probe_compute=True, drag_folder=tmp_path / "drag")
    qtbot.addWidget(win)
    win.show()
    assert win.compute_label.text() == "Compute: starting…"
    t0 = time.monotonic()
    qtbot.waitUntil(lambda: win.compute_device != "", timeout=180000)
    assert win.compute_device == "CPU" or win.compute_device.startswith("GPU: ")
    assert win.compute_label.text() == f"Compute: {win.compute_device}"
    assert time.monotonic() - t0 > 0  # the GUI kept running meanwhile (waitUntil processes)
    # the model list came from the worker too
    qtbot.waitUntil(lambda: not win.worker.busy, timeout=60000)
    assert all("not installed" in ws.notice.text() or ws.models
               for ws in win.workspaces.values())


def test_clip_requires_exactly_one_payload():
    with pytest.raises(ValueError):
        Clip("nothing")


def test_a_broken_model_folder_is_said_and_skipped(window, tmp_path):
    """A broken folder in the models folder (here nested 100,000 deep) comes in the listing
    marked broken: the status bar says so with its reason; no workspace offers it."""
    from models.registry import SHIPPED_DIR, ModelRegistry

    folder = tmp_path / "models" / "deep"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"config": ' + "[" * 100_000 + "]" * 100_000 + "}")
    entries = [e for e in ModelRegistry([SHIPPED_DIR, tmp_path / "models"]).list()
               if e.has_weights or e.broken]
    window._models_listed(entries)
    assert "'deep' is broken" in window.last_message and "nested" in window.last_message
    assert "deep" in window.broken_models
    for ws in window.workspaces.values():
        names = [ws.model_combo.itemText(i) for i in range(ws.model_combo.count())]
        assert "deep" not in names and names
