# ruff: noqa: F811 - the JACK fixtures are imported from test_live_transport
"""The Live dock in the main window, on a real JACK server: pickers, hot-plug, activity from
the MIDI thread reaching the GUI, the duet run by the app's worker, and recording a take."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from app.widgets.live_panel import ANSWER, AUDIO_OUT, CALL
from tests.app.test_live_duet import PHRASE, tiny_model_dir
from tests.app.test_live_transport import (  # noqa: F401 - fixtures
    Capture,
    Keyboard,
    Listener,
    live_jack,
    midi,
    player_thread,
    unbalanced,
)

pytestmark = pytest.mark.jack


@pytest.fixture()
def rig(live_jack, midi, window):  # noqa: ANN001, ANN201
    """Keyboard and listener ports, and the window (made after them, on the same server)."""
    kb = Keyboard(midi, "PanelKeys")
    ear = Listener(midi, "PanelEar")
    panel = window.live_panel
    assert not window.live_dock.isVisible() and panel.midi is None  # until asked for
    window.live_dock.toggleViewAction().trigger()
    deadline = time.monotonic() + 5
    while panel.midi is None and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    panel.poll_ports()
    yield window, panel, kb, ear
    panel.shutdown()
    kb.close()
    ear.close()


def test_live_dock_lists_ports_and_follows_hot_plug(rig, qtbot, artifacts_dir: Path):
    window, panel, kb, ear = rig
    assert window.live_dock.isVisible() and window.live_dock.widget() is panel
    qtbot.waitUntil(lambda: panel.input_combo.findData("PanelKeys client:PanelKeys") >= 0,
                    timeout=3000)
    assert panel.output_combo.itemData(0) == AUDIO_OUT
    assert panel.output_combo.findData("PanelEar client:PanelEar") >= 0
    assert not any("Cadenza" in (panel.input_combo.itemText(i) or "")
                   for i in range(panel.input_combo.count()))  # not our own ports
    late = Keyboard(panel.midi, "LateKeys")
    try:
        qtbot.waitUntil(lambda: panel.input_combo.findData("LateKeys client:LateKeys") >= 0,
                        timeout=3000)  # the 1 s QTimer poll
        assert panel.choose_input("LateKeys")
    finally:
        late.close()
    qtbot.waitUntil(lambda: panel.input_combo.findData("LateKeys client:LateKeys") < 0,
                    timeout=3000)
    assert panel.input_combo.currentData() is None  # the chosen port went away
    window.grab().save(str(artifacts_dir / "live-panel.png"))


def test_keyboard_activity_reaches_the_gui(rig, qtbot):
    window, panel, kb, ear = rig
    assert panel.choose_input("PanelKeys")
    assert panel.input is not None
    time.sleep(0.1)
    kb.play(PHRASE)
    qtbot.waitUntil(lambda: len(panel.roll_notes(CALL)) == 4, timeout=3000)
    assert [n.pitch for n in panel.roll_notes(CALL)] == [60, 64, 67, 72]
    assert panel.in_meter.value() > 0 or panel.in_level > 0
    qtbot.waitUntil(lambda: panel.roll.note_count == 4, timeout=2000)


def test_duet_in_the_window(rig, qtbot, datasets_dir, artifacts_dir: Path):
    from models.registry import ModelRegistry

    window, panel, kb, ear = rig
    # the installed default (a shipped model marked so) is the duet's and Continue's first pick
    installed = ModelRegistry().list()
    default = ModelRegistry().default("performance")
    panel.set_models(installed)
    assert panel.model_combo.currentData() == str(default.path)
    window.workspaces["Continue"].set_models(installed)
    assert window.workspaces["Continue"].model_combo.currentData() == default.name
    entry = ModelRegistry().get(str(tiny_model_dir(datasets_dir)))
    panel.set_models([entry])
    assert panel.duet_button.isEnabled()
    assert panel.choose_input("PanelKeys") and panel.choose_output("PanelEar")
    panel.silence_spin.setValue(300)
    panel.seconds_spin.setValue(1.5)
    panel.duet_button.click()
    assert panel.duet is not None and panel.duet_button.text() == "Stop duet"
    qtbot.waitUntil(lambda: panel.duet is not None and panel.duet.running, timeout=60000)
    # Quantizing is off by default; the combos change a running duet's settings.
    assert panel.duet.settings.quantize == 0.0
    panel.quantize_combo.setCurrentIndex(panel.quantize_combo.findText("soft (50 %)"))
    panel.quantize_grid_combo.setCurrentIndex(panel.quantize_grid_combo.findText("1/8 triplet"))
    assert panel.duet.settings.quantize == 0.5
    assert panel.duet.settings.quantize_every == pytest.approx(1 / 3)
    time.sleep(0.1)
    kb.play(PHRASE)
    qtbot.waitUntil(lambda: panel.last_latency_ms is not None, timeout=5000)
    assert panel.last_latency_ms < 100
    assert "Latency:" in panel.latency_label.text()
    qtbot.waitUntil(lambda: len(panel.roll_notes(ANSWER)) > 0, timeout=3000)
    qtbot.wait(1500)
    window.grab().save(str(artifacts_dir / "live-duet.png"))
    assert ear.note_ons()
    panel.duet_button.click()
    assert panel.duet is None and panel.duet_button.text() == "Start duet"
    qtbot.waitUntil(lambda: not window.worker.busy, timeout=5000)
    assert ear.wait_for(lambda e: unbalanced(e.messages()) == {}, timeout=2)
    # The duet's model is in the worker's one model cache, where the workspaces' jobs find it.
    found: list = []
    window.worker.submit(lambda ctx: (ctx.registry().loaded(), ctx.model(str(entry.path))),
                         on_success=found.append)
    qtbot.waitUntil(lambda: bool(found), timeout=5000)
    loaded, model = found[0]
    assert loaded == [entry.path.resolve()] and model.path == entry.path


def test_record_a_take_into_the_library(rig, qtbot):
    window, panel, kb, ear = rig
    assert panel.choose_input("PanelKeys") and panel.choose_output("PanelEar")
    panel.count_in_spin.setValue(1)
    panel.tempo_spin.setValue(240)  # a 1 s count-in
    panel.metronome_check.setChecked(True)
    before = len(window.library.clips())
    panel.record_button.click()
    assert panel.recorder is not None and panel.recorder.counting_in
    qtbot.wait(1100)
    kb.play([(60, 0.1), (62, 0.1), (64, 0.1)])
    panel.record_button.click()
    clips = window.library.clips()
    assert len(clips) == before + 1
    take = clips[-1]
    assert take.name == "Live take 1" and [n.pitch for n in take.sequence.notes] == [60, 62, 64]
    assert take.tempo is None  # sync off: no session tempo remembered
    clicks = [m for _, m in ear.note_ons() if m[0] == 0x99]
    assert len(clicks) >= 4  # the count-in, on channel 10
    assert ear.wait_for(lambda e: unbalanced(e.messages()) == {}, timeout=2)


def test_a_take_recorded_while_sync_runs_remembers_the_session_tempo(rig, qtbot, tmp_path):
    """Sync at 150 BPM: the take starts on the session's next bar, its file says 150 BPM and
    the clip remembers it (the library shows it, a session keeps it)."""
    window, panel, kb, _ear = rig
    assert panel.choose_input("PanelKeys")
    panel.count_in_spin.setValue(0)
    panel.metronome_check.setChecked(False)
    box = panel.sync_box
    assert box.choose_source("internal")
    box.tempo_spin.setValue(150.0)
    box.run_button.click()
    try:
        assert window.session_bpm() == 150.0
        panel.record_button.click()
        rec = panel.recorder
        assert rec is not None and rec.qpm == 150.0
        qtbot.waitUntil(lambda: time.perf_counter() > rec.t_zero + 0.05, timeout=3000)
        kb.play([(60, 0.1), (67, 0.1)])
        panel.record_button.click()
    finally:
        box.run_button.click()
    take = window.library.clips()[-1]
    assert [n.pitch for n in take.sequence.notes] == [60, 67]
    assert take.tempo == 150.0 and take.sequence.qpm == 150.0 and "150 BPM" in take.summary
    saved = window.save_session(tmp_path / "take.cadenza")
    assert saved is not None
    from app.session import read_session

    assert read_session(saved).clips[-1].tempo == 150.0


def test_keyboard_plays_the_morph_instrument_and_clips_sound_with_it(
        rig, qtbot, flute_instrument_dir, short_piano_clip, tmp_path, artifacts_dir: Path):
    import numpy as np

    from app.sampler import SamplerSynth
    from app.widgets.live_panel import MORPH_OUT
    from models.audio_io import read_audio
    from models.nsynth.evaluate import estimate_f0
    from models.nsynth.instrument import MorphInstrument
    from models.nsynth.voices import render_sequence

    window, panel, kb, ear = rig
    morph = window.workspaces["Morph"]
    # the rendered instrument's way (a DDSP model plays live instead: test_live_morph.py)
    morph.set_models([e for e in morph.models if e.family != "ddsp"])
    assert not morph.keyboard_button.isEnabled()  # no instrument yet
    assert not window.transport.use_instrument and not window.transport.sound.isEnabled()
    inst = MorphInstrument.load(flute_instrument_dir)
    morph.instrument, morph.instrument_dir = inst, flute_instrument_dir
    morph._update_buttons()
    morph.instrument_ready.emit(inst)  # what a finished "Make instrument" job does
    assert window.transport.use_instrument and panel.output_combo.findData(MORPH_OUT) >= 0
    assert panel.choose_input("PanelKeys")
    morph.keyboard_button.click()
    assert window.live_dock.isVisible()
    # opened by the opener worker: "Opening …", then "… ready"
    assert panel.opening and "Opening the morph instrument" in panel.status_label.text()
    qtbot.waitUntil(lambda: panel.output is not None, timeout=5000)
    assert isinstance(panel.output, SamplerSynth) and panel.engine is not None
    assert panel.status_label.text().startswith("The morph instrument ready: playing")
    cap = Capture(panel.engine)
    try:
        time.sleep(0.1)
        kb.play([(69, 0.8)], velocity=110)
        qtbot.waitUntil(lambda: panel.out_meter.value() > 0, timeout=2000)
        time.sleep(0.4)
        rec = cap.audio()[:, 0]
    finally:
        cap.close()
    assert np.abs(rec).max() > 0.05
    loud = np.flatnonzero(np.abs(rec) > 0.01)
    f0 = estimate_f0(rec[loud[0]: loud[0] + 24000], 48000)
    assert abs(69 + 12 * np.log2(f0 / 440) - 69) < 0.2
    window.tabs.setCurrentWidget(morph)
    qtbot.wait(50)
    window.grab().save(str(artifacts_dir / "morph-instrument-keyboard.png"))

    # A MIDI clip exported as WAV now sounds with the morph instrument.
    window.add_clip(short_piano_clip)
    wav = tmp_path / "morph.wav"
    with qtbot.waitSignal(window.exported, timeout=60000):
        window.export_wav(wav)
    got = read_audio(wav).samples
    want = render_sequence(inst, short_piano_clip.sequence).samples
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 2 / 32768  # 16-bit WAV of the same render
    window.transport.sound.setCurrentIndex(0)  # back to General MIDI
    assert not window.transport.use_instrument


def test_a_chosen_output_that_goes_away_is_noticed(rig, qtbot):
    """The synthesizer's own client closes its port: the panel says so and falls back to
    built-in audio; a port going away is not a lost MIDI system."""
    window, panel, kb, ear = rig
    synth = Listener(panel.midi, "GoneSynth")
    try:
        qtbot.waitUntil(lambda: panel.output_combo.findData("GoneSynth client:GoneSynth") >= 0,
                        timeout=3000)
        assert panel.choose_input("PanelKeys") and panel.choose_output("GoneSynth")
        panel.count_in_spin.setValue(0)
        panel.metronome_check.setChecked(True)
        panel.set_recording(True)  # the metronome opens the chosen output
        assert panel.output is not None and panel.output.name.endswith("GoneSynth")
        panel.set_recording(False)
    finally:
        synth.close()
    qtbot.waitUntil(lambda: "went away" in panel.status_label.text(), timeout=3000)
    assert "GoneSynth" in panel.status_label.text()
    assert panel.output_combo.findData("GoneSynth client:GoneSynth") < 0
    # the keyboard is heard on built-in audio now: voices on a bus of the window's one engine
    from app.transport import LiveSynth

    assert panel.output_combo.currentData() == AUDIO_OUT
    qtbot.waitUntil(lambda: panel.output is not None, timeout=5000)
    assert isinstance(panel.output, LiveSynth) and panel.engine is window.devices.engine
    assert panel.output.bus in window.devices.engine.buses
    assert window.check_devices() == [] and window.midi_label.text() == "MIDI: ready"
    kb.close()  # the keyboard goes too
    qtbot.waitUntil(lambda: panel.input is None, timeout=3000)
    assert "PanelKeys" in panel.status_label.text() and "went away" in panel.status_label.text()
