# ruff: noqa: F811 - the JACK fixtures are imported from test_live_transport
"""The Live panel's sync section on a real JACK server: MIDI clock out to a checked port in
Cadenza's own time, and following an external clock (tempo, beat indicator)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from app.clock import CLOCK, START, STOP
from tests.app.test_clock import Receiver, Sender
from tests.app.test_live_transport import live_jack, midi, realtime_thread  # noqa: F401 - fixtures

pytestmark = pytest.mark.jack


@pytest.fixture()
def panel_rig(live_jack, midi, window):  # noqa: ANN001, ANN201
    drums = Receiver(midi.api, "SyncDrums")
    daw = Sender(midi.api, "SyncDaw")
    panel = window.live_panel
    window.live_dock.toggleViewAction().trigger()
    deadline = time.monotonic() + 5
    while panel.midi is None and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    panel.poll_ports()
    yield window, panel, drums, daw
    panel.shutdown()
    drums.close()
    daw.close()


@pytest.mark.timing
def test_clock_out_from_the_live_panel(panel_rig, qtbot, artifacts_dir: Path) -> None:  # noqa: ANN001
    window, panel, drums, _daw = panel_rig
    box = panel.sync_box
    qtbot.waitUntil(lambda: box.check_output("SyncDrums"), timeout=3000)
    assert box.source_combo.currentText() == "Internal"
    assert box.choose_source("midi-clock", "SyncDaw client:SyncDaw")  # inputs are sources
    assert box.choose_source("internal")
    box.tempo_spin.setValue(150.0)
    box.run_button.click()
    assert box.session.running and box.run_button.text() == "Stop sync"
    qtbot.waitUntil(lambda: len(drums.pulse_times()) >= 60, timeout=3000)  # 1 s at 150
    qtbot.waitUntil(lambda: box.lights.beat is not None and box.lights.beat > 2.0, timeout=2000)
    assert box.state_label.text().startswith("150.0 BPM · bar 1, beat ")
    window.resize(1400, 1000)
    QApplication.processEvents()
    window.grab().save(str(artifacts_dir / "live-sync.png"))
    box.run_button.click()
    assert not box.session.running and box.state_label.text() == "Stopped"
    time.sleep(0.1)
    system = [m for m in drums.messages() if m[0] >= 0xF0 and m != [CLOCK]]
    assert system == [[START], [STOP]]


@pytest.mark.timing
def test_the_live_panel_follows_a_midi_clock(panel_rig, qtbot) -> None:  # noqa: ANN001
    _window, panel, _drums, daw = panel_rig
    box = panel.sync_box
    qtbot.waitUntil(lambda: box.choose_source("midi-clock", "SyncDaw client:SyncDaw"),
                    timeout=3000)
    box.run_button.click()
    assert not box.tempo_spin.isEnabled()  # the clock sets the tempo
    qtbot.waitUntil(lambda: box.state_label.text() == "Waiting for the clock's Start",
                    timeout=1000)
    realtime_thread()
    daw.send([START])
    daw.pulses(90, 3)
    box.refresh()
    bpm = float(box.state_label.text().split()[0])
    assert abs(bpm - 90) < 2.0, box.state_label.text()
    assert box.lights.beat is not None and 2.5 < box.lights.beat < 3.6, box.lights.beat
    daw.send([STOP])
    qtbot.waitUntil(lambda: box.state_label.text() == "Waiting for the clock's Start",
                    timeout=2000)
    box.run_button.click()
    assert not box.session.running


@pytest.mark.timing
def test_a_take_gets_the_session_tempo_and_starts_on_its_bar(panel_rig, qtbot) -> None:  # noqa: ANN001
    _window, panel, _drums, _daw = panel_rig
    box = panel.sync_box
    box.tempo_spin.setValue(150.0)
    box.run_button.click()
    time.sleep(0.3)  # into the first bar
    panel.count_in_spin.setValue(0)
    panel.record_button.click()
    rec = panel.recorder
    assert rec is not None and rec.qpm == 150.0 and panel.tempo_spin.value() == 150
    beat = box.session.beat(rec.t_start)
    assert beat is not None and abs(beat - 4.0) < 0.01, beat  # the next bar line
    panel.record_button.click()
    box.run_button.click()
    # without sync, the take keeps the panel's own tempo and starts at once
    panel.tempo_spin.setValue(90)
    panel.record_button.click()
    assert panel.recorder.qpm == 90.0
    assert abs(panel.recorder.t_start - time.perf_counter()) < 0.1
    panel.record_button.click()


@pytest.mark.timing
def test_the_metronome_clicks_on_the_session_beats(panel_rig, qtbot) -> None:  # noqa: ANN001
    """Recording with sync on: the clicks follow the session's beat, through a tempo change
    (the old metronome kept its own time: a beat of the take's tempo after the last click)."""
    _window, panel, drums, _daw = panel_rig
    box = panel.sync_box

    def clicks() -> list[float]:
        with drums.lock:
            return [t for t, m in drums.events if m[0] == 0x99 and m[2] > 0]

    qtbot.waitUntil(lambda: panel.choose_output("SyncDrums"), timeout=3000)
    box.tempo_spin.setValue(150.0)
    box.run_button.click()
    panel.count_in_spin.setValue(0)
    panel.metronome_check.setChecked(True)
    panel.record_button.click()
    rec = panel.recorder
    assert rec is not None and rec.grid is not None and rec.qpm == 150.0
    qtbot.waitUntil(lambda: len(clicks()) >= 2, timeout=4000)  # on the bar, then at 150
    box.tempo_spin.setValue(100.0)  # the session slows down
    changed = time.perf_counter()
    qtbot.wait(2700)
    session = box.session
    after = [t for t in clicks() if t > changed + 0.05]
    dues = [t for t in rec.click_times if changed + 0.05 < t < time.perf_counter()]
    beats = [session.beat(t) for t in after]
    due_beats = [session.beat(t) for t in dues]
    panel.record_button.click()
    box.run_button.click()
    assert len(after) >= 3, after
    # each click arrives on a beat of the session (JACK's 256-frame period: 5.3 ms = 0.01 beat)
    assert all(abs(b - round(b)) < 0.03 for b in beats), beats
    assert all(abs(b - round(b)) < 0.001 for b in due_beats), due_beats
    assert np.allclose(np.diff(after), 0.6, atol=0.02), np.diff(after)  # 100 BPM, not 150
