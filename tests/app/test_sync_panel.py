# ruff: noqa: F811 - the JACK fixtures are imported from test_live_transport
"""The Live panel's sync section on a real JACK server: MIDI clock out to a checked port in
Cadenza's own time, and following an external clock (tempo, beat indicator)."""

from __future__ import annotations

import time
from pathlib import Path

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
