"""Cadenza (``run_app``) on a JACK server that the test kills, driven over stdin and stdout.

Run by ``tests/app/test_lost_devices.py`` in a process of its own: when a JACK server goes away,
libjack frees every client of the process at the next new one, so the test's own process never
has a client on the server it kills. ``JACK_DEFAULT_SERVER`` names that server.

    python tests/app/lost_devices_app.py MODE SETTINGS_DIR CLIP_WAV ARTIFACTS_DIR

Once the worker's start-up jobs are done it plays ``CLIP_WAV`` and prints ``PLAYING {...}``;
then it follows one command per stdin line: ``quit`` (File ▸ Quit), ``killed`` (the server was
killed: wait until the window says so, print ``NOTICED {...}`` with what it shows, save a
screenshot), ``up`` (a server runs again: reconnect, play again, print ``REPLAYED {...}``).
MODE ``live`` also opens the Live dock first, with a keyboard and a synthesizer port (clients of
this process) chosen as its input and output, and records with the metronome on.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QObject, QSettings, Signal  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def say(tag: str, **data: Any) -> None:
    print(tag, json.dumps(data), flush=True)


def wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents()
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


class Commands(QObject):
    line = Signal(str)


def main() -> int:
    mode, settings_dir, clip, artifacts = sys.argv[1:5]
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, settings_dir)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)

    from app.main_window import AUDIO_LOST, MIDI_LOST, run_app

    commands = Commands()
    own_ports: list[Any] = []  # this process's keyboard and synthesizer clients

    def read_stdin() -> None:
        for line in sys.stdin:
            commands.line.emit(line.strip())

    def playing(window: Any) -> bool:
        engine = window.devices.engine
        return bool(window.is_playing and engine is not None and engine.position_seconds > 0.2)

    def open_live_ports(window: Any) -> None:
        import rtmidi

        window.live_dock.show()
        panel = window.live_panel
        assert wait_for(lambda: panel.watcher is not None, 10), panel.status_label.text()
        keys = rtmidi.MidiOut(panel.midi.api, name="LostKeys client")
        keys.open_virtual_port("LostKeys")
        ear = rtmidi.MidiIn(panel.midi.api, name="LostEar client")
        ear.open_virtual_port("LostEar")
        own_ports.extend([keys, ear])
        assert wait_for(lambda: bool(panel.poll_ports() or True)
                        and panel.input_combo.findData("LostKeys client:LostKeys") >= 0, 5)
        assert panel.choose_input("LostKeys") and panel.choose_output("LostEar")
        panel.metronome_check.setChecked(True)
        panel.count_in_spin.setValue(0)
        panel.set_recording(True)  # the metronome clicks on the chosen output
        assert panel.input is not None and panel.output is not None and panel.recorder

    def noticed(window: Any) -> None:
        panel = window.live_panel
        wanted = [lambda: window.audio_label.text() == AUDIO_LOST]
        if mode == "live":
            wanted.append(lambda: window.midi_label.text() == MIDI_LOST)
        t0 = time.monotonic()
        ok = wait_for(lambda: all(w() for w in wanted), 5)
        seconds = time.monotonic() - t0
        message = window.last_message  # before the export below says its own
        window.resize(1400, 860)
        wait_for(lambda: False, 0.2)
        shot = Path(artifacts) / f"lost-audio{'-live' if mode == 'live' else ''}.png"
        window.grab().save(str(shot))
        exported: list[str] = []
        window.exported.connect(exported.append)
        window.export_wav(Path(settings_dir) / "still-exports.wav")
        export_ok = wait_for(lambda: bool(exported), 30)
        for port in own_ports:  # this process's clients of the dead server, closed first
            port.close_port()
            port.delete()
        own_ports.clear()
        say("NOTICED", ok=ok, seconds=round(seconds, 3), playing=window.is_playing,
            transport=window.transport.state.text(), audio=window.audio_label.text(),
            audio_tip=window.audio_label.toolTip(), midi=window.midi_label.text(),
            reconnect_visible=window.reconnect_button.isVisible(),
            message=message, panel=panel.status_label.text(),
            panel_reconnect=panel.reconnect_button.isVisible(),
            panel_input=panel.input is not None, panel_output=panel.output is not None,
            recording=panel.recorder is not None,
            export=export_ok, screenshot=str(shot))

    def replay(window: Any) -> None:
        ok = window.reconnect_devices()
        window.play()
        started = wait_for(lambda: playing(window), 20)
        engine = window.devices.engine
        beat = engine.heartbeat if engine is not None else 0
        wait_for(lambda: False, 0.3)
        say("REPLAYED", reconnected=ok, playing=started, audio=window.audio_label.text(),
            midi=window.midi_label.text(), reconnect_visible=window.reconnect_button.isVisible(),
            beats=(engine.heartbeat - beat) if engine is not None else 0,
            generations=window.devices.portaudio.generations,
            panel=window.live_panel.status_label.text())

    def on_shown(window: Any) -> None:
        # Up and idle first: the worker's start-up jobs (the model list, the backend's import
        # in the compute probe) are done, as in a session where music is played.
        if not wait_for(lambda: bool(window.compute_device) and not window.worker.busy, 180):
            say("FAILED", message="the worker did not finish its start-up jobs")
            window.close()
            return
        if mode == "live":
            open_live_ports(window)
        window.open_files([Path(clip)])
        window.play()
        if not wait_for(lambda: playing(window), 30):
            say("FAILED", message=window.last_message)
            window.close()
            return

        def handle(command: str) -> None:
            if command == "quit":
                window.close()
            elif command == "killed":
                noticed(window)
            elif command == "up":
                replay(window)

        commands.line.connect(handle)
        threading.Thread(target=read_stdin, name="test-stdin", daemon=True).start()
        say("PLAYING", position=window.devices.engine.position_seconds)

    return run_app([], on_shown=on_shown)


if __name__ == "__main__":
    from app.main_window import end_process

    end_process(main())  # as app/cli.py ends the app's process
