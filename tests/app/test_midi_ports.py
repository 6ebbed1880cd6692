"""MIDI ports through rtmidi on a real JACK server (this machine has no ALSA sequencer)."""

from __future__ import annotations

import os
import threading
import time

import mido
import pytest

from app.devices import Devices
from app.midi_ports import play_sequence
from models.errors import CadenzaError
from models.sequence import Note, NoteSequence

pytestmark = pytest.mark.jack


class Collector:
    def __init__(self) -> None:
        self.messages: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, message: list[int], delta: float) -> None:
        with self.lock:
            self.messages.append(message)

    def wait_for(self, n: int, timeout: float = 2.0) -> list[list[int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.01)
        with self.lock:
            return list(self.messages)


@pytest.fixture()
def devices(jack_server):
    owner = Devices()
    yield owner
    owner.close()


@pytest.fixture()
def midi(devices):
    system = devices.midi()
    assert system.available, system.reason
    return system


@pytest.fixture()
def loopback(midi):
    out = midi.open_virtual_output("Cadenza")
    got = Collector()
    inp = midi.open_input("Cadenza:Cadenza", got)
    time.sleep(0.05)
    yield out, got
    inp.close()
    out.close()


def test_picks_jack_here(midi):
    assert os.environ["JACK_NO_START_SERVER"] == "1"
    expected = "ALSA" if os.path.exists("/dev/snd/seq") else "JACK"
    assert midi.api_name == expected
    assert midi.reason == ""


def test_no_midi_system_without_a_server(jack_server, monkeypatch):
    if os.path.exists("/dev/snd/seq"):
        pytest.skip("this machine has an ALSA sequencer")
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "cadenza-no-such-server")
    devices = Devices()
    system = devices.midi()
    assert not system.available and system.api_name == "none"
    assert "no ALSA sequencer" in system.reason and "no JACK server" in system.reason
    assert system.list_outputs() == [] and system.list_inputs() == []
    with pytest.raises(CadenzaError, match="no MIDI system"):
        system.open_output(None)
    with pytest.raises(CadenzaError, match="no MIDI system"):
        devices.open_midi_output()
    assert system.describe() == [system.reason]
    assert devices.describe()[0] == ("MIDI", [system.reason])
    devices.close()


def test_virtual_output_sends_exact_bytes(loopback, midi):
    out, got = loopback
    assert any("Cadenza" in p for p in midi.list_inputs())
    out.send([0x90, 60, 100])
    out.send(mido.Message("note_on", channel=3, note=64, velocity=77))
    out.send(bytes([0xB0, 64, 127]))
    out.send([0x80, 60, 0])
    msgs = got.wait_for(4)
    assert msgs == [[0x90, 60, 100], [0x93, 64, 77], [0xB0, 64, 127], [0x80, 60, 0]]
    assert out.held_notes == {(3, 64)}


def test_panic_releases_held_notes(loopback):
    out, got = loopback
    out.note_on(0, 60, 90)
    out.note_on(0, 64, 90)
    out.note_on(9, 38, 90)
    out.note_off(0, 64)
    got.wait_for(4)
    got.messages.clear()
    out.panic()
    msgs = got.wait_for(2 + 16 * 3)
    assert msgs[:2] == [[0x80, 60, 0], [0x89, 38, 0]]
    assert [0xB0, 123, 0] in msgs and [0xB9, 120, 0] in msgs and [0xBF, 64, 0] in msgs
    assert out.held_notes == set()


def test_play_sequence_timing(loopback):
    out, got = loopback
    seq = NoteSequence(notes=[Note(60 + i, 80, 0.1 * i, 0.1 * i + 0.05) for i in range(5)])
    stop = threading.Event()
    started = time.perf_counter()
    thread = play_sequence(out, seq, stop)
    thread.join(timeout=3)
    assert not thread.is_alive()
    assert 0.44 < time.perf_counter() - started < 0.6
    msgs = got.wait_for(11)
    notes = [m for m in msgs if m[0] & 0xF0 in (0x80, 0x90)]
    assert [m[1] for m in notes if m[0] & 0xF0 == 0x90] == [60, 61, 62, 63, 64]
    assert out.held_notes == set()


def test_stop_event_panics(loopback):
    out, got = loopback
    seq = NoteSequence(notes=[Note(60, 80, 0.0, 5.0)])
    stop = threading.Event()
    thread = play_sequence(out, seq, stop)
    got.wait_for(2)
    assert (0, 60) in out.held_notes
    stop.set()
    thread.join(timeout=1)
    assert not thread.is_alive() and out.held_notes == set()
    assert [0x80, 60, 0] in got.wait_for(3 + 48)


def test_substring_matching_errors(midi):
    a = midi.open_virtual_output("CadenzaTestA")
    b = midi.open_virtual_output("CadenzaTestB")
    try:
        time.sleep(0.05)
        with pytest.raises(CadenzaError, match="several"):
            midi.open_input("cadenzatest", lambda m, d: None)
        with pytest.raises(CadenzaError, match="no MIDI input port matches"):
            midi.open_input("no-such-synth", lambda m, d: None)
        with midi.open_input("CADENZATESTB", lambda m, d: None) as inp:
            assert inp.name.endswith("CadenzaTestB")
    finally:
        a.close()
        b.close()


def test_describe_lists_ports(midi, devices):
    out = midi.open_virtual_output("Cadenza")
    try:
        ((title, lines), (audio_title, outputs)) = devices.describe()
        assert title == "MIDI" and audio_title == "Audio outputs"
        assert any("system" in line and "48000 Hz" in line for line in outputs)
        assert lines[0] == "API: JACK" or lines[0] == "API: ALSA"
        assert any("Cadenza" in line for line in lines)
    finally:
        out.close()
