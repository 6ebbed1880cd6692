"""Live MIDI pieces on a real JACK server: port watching, thru, panic at exit, the transport,
the scheduler, live FluidSynth voices captured back through JACK, and recording."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest

from app.devices import Devices
from app.midi_ports import (
    MidiSystem,
    PortWatcher,
    normal_thread,
)
from app.recorder import CLICK_BEAT, CLICK_DOWNBEAT, Recorder, events_to_sequence
from app.transport import (
    LiveSynth,
    Scheduler,
    Transport,
    percentile,
    realtime_thread,
    wait_until,
)
from models.errors import CadenzaError
from models.sequence import Note, NoteSequence

pytestmark = pytest.mark.jack


# ---------------------------------------------------------------------------- helpers
class Listener:
    """A separate JACK MIDI client with one input port: what a synthesizer would receive.

    Like :class:`app.midi_ports.MidiInput` it polls rtmidi's queue from a thread of its own
    (stamping arrival with ``perf_counter``), so JACK's thread never waits for the GIL.
    """

    def __init__(self, system: MidiSystem, name: str) -> None:
        import rtmidi

        self.name = name
        self.events: list[tuple[float, list[int]]] = []
        self.lock = threading.Lock()
        self.port = rtmidi.MidiIn(system.api, name=f"{name} client", queue_size_limit=4096)
        self.port.ignore_types(sysex=True, timing=True, active_sense=True)
        self.port.open_virtual_port(name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="test-listener", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        realtime_thread()  # it stands for a hardware synthesizer
        while not self._stop.is_set():
            event = self.port.get_message()
            if event is None:
                time.sleep(0.0005)
                continue
            with self.lock:
                self.events.append((time.perf_counter(), list(event[0])))

    def messages(self) -> list[list[int]]:
        with self.lock:
            return [m for _, m in self.events]

    def notes(self) -> list[tuple[float, list[int]]]:
        with self.lock:
            return [(t, m) for t, m in self.events if m[0] & 0xF0 in (0x80, 0x90)]

    def note_ons(self) -> list[tuple[float, list[int]]]:
        return [(t, m) for t, m in self.notes() if m[0] & 0xF0 == 0x90 and m[2] > 0]

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.005)
        return predicate(self)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.port.close_port()
        self.port.delete()


class Keyboard:
    """A separate JACK MIDI client with one output port: the player's keyboard."""

    def __init__(self, system: MidiSystem, name: str) -> None:
        import rtmidi

        self.name = name
        self.port = rtmidi.MidiOut(system.api, name=f"{name} client")
        self.port.open_virtual_port(name)
        self.closed = False

    def send(self, message: list[int]) -> float:
        self.port.send_message(message)
        return time.perf_counter()

    def play(self, notes: list[tuple[int, float]], velocity: int = 80, gap: float = 0.0) -> float:
        """Each (pitch, seconds) in turn; returns the perf_counter time of the last note-off."""
        last = time.perf_counter()
        for pitch, seconds in notes:
            self.send([0x90, pitch, velocity])
            time.sleep(seconds)
            last = self.send([0x80, pitch, 0])
            if gap:
                time.sleep(gap)
        return last

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.port.close_port()
            self.port.delete()


def open_connected(midi: MidiSystem, name: str):  # noqa: ANN201
    """An output connected to ``name``; JACK makes a new connection part of the graph a cycle
    or two later, so wait a moment before sending."""
    out = midi.open_output(name)
    time.sleep(0.05)
    return out


def unbalanced(messages: list[list[int]]) -> dict[tuple[int, int], int]:
    """(channel, pitch) -> note-ons still sounding for a synthesizer that received
    ``messages``: a note-off (or note-on with velocity 0) ends one, All Notes Off (CC 123) or
    All Sound Off (CC 120) ends every note of its channel. Empty when nothing is stuck."""
    count: Counter[tuple[int, int]] = Counter()
    for m in messages:
        if len(m) < 3:
            continue
        channel, status = m[0] & 0x0F, m[0] & 0xF0
        key = (channel, m[1])
        if status == 0x90 and m[2] > 0:
            count[key] += 1
        elif status in (0x80, 0x90) and count[key] > 0:
            count[key] -= 1
        elif status == 0xB0 and m[1] in (120, 123):
            for k in [k for k in count if k[0] == channel]:
                count[k] = 0
    return {k: v for k, v in count.items() if v}


def subsequence(got: list, expected: list) -> bool:
    """``got`` is ``expected`` with some items missing (JACK drops MIDI of a client that misses
    its cycle: on this busy shared machine the JACK server runs without real-time priority)."""
    it = iter(expected)
    return all(any(g == e for e in it) for g in got)


def _server_up(name: str) -> bool:
    probe = subprocess.run(["jack_lsp", "-s", name], capture_output=True, text=True, timeout=10)
    return probe.returncode == 0 and "system:" in probe.stdout


def _reinit_portaudio() -> None:
    # Through the devices, so that PortAudio's exit guard (it aborts at exit when the JACK server
    # it last saw is gone) is in place too.
    with Devices() as devices:
        devices.audio_outputs(rescan=True)


@pytest.fixture(scope="module")
def live_jack(jack_server: str) -> Iterator[str]:
    """A private JACK dummy server with real-time scheduling (``jackd -R``, JACK's default),
    used as the default server while this module runs.

    The session's ``jack_server`` may be one that already ran, started ``--no-realtime``; on a
    busy machine its clients miss cycles and JACK drops their MIDI (measured here: a dozen of
    600 messages lost at load 13 on 2 cores, none with ``-R``). Live MIDI needs the real-time
    server musicians run. Falls back to ``jack_server`` where real-time is not allowed.
    """
    name = f"cadenza-live-{os.getpid()}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    assert shutil.which("jackd")
    proc = subprocess.Popen(["jackd", "-R", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + 15
    while proc.poll() is None and not _server_up(name) and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is not None or not _server_up(name):
        proc.kill()
        proc.wait()
        yield jack_server
        return
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    _reinit_portaudio()
    try:
        yield name
    finally:
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old
        _reinit_portaudio()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def midi(live_jack) -> Iterator[MidiSystem]:  # noqa: ANN001
    devices = Devices()
    system = devices.midi()
    assert system.available, system.reason
    yield system
    devices.close()


@pytest.fixture()
def listener(midi):  # noqa: ANN001, ANN201
    ear = Listener(midi, "LiveEar")
    time.sleep(0.05)
    yield ear
    ear.close()


@pytest.fixture(autouse=True)
def player_thread():  # noqa: ANN201
    """The test's own thread plays the keyboard and keeps time like a musician would; on this
    busy shared machine it gets real-time scheduling while the test runs (as the keyboard and
    synthesizer it stands for would not be slowed down by our CPU load)."""
    realtime_thread()
    yield
    normal_thread()


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


# ---------------------------------------------------------------------------- ports
def test_port_watcher_sees_ports_come_and_go(midi):
    seen: list = []
    with PortWatcher(midi, on_change=seen.append, interval=0.1) as watcher:
        assert not watcher.poll()
        watcher.start()
        kb = Keyboard(midi, "HotPlugKeys")
        try:
            deadline = time.monotonic() + 3
            while not any("HotPlugKeys" in n for c in seen for n in c.added_inputs):
                assert time.monotonic() < deadline, seen
                time.sleep(0.02)
            assert any("HotPlugKeys" in n for n in watcher.inputs)
        finally:
            kb.close()
        deadline = time.monotonic() + 3
        while not any("HotPlugKeys" in n for c in seen for n in c.removed_inputs):
            assert time.monotonic() < deadline, seen
            time.sleep(0.02)
        assert "input removed" in seen[-1].describe()
    assert "cadenza-midi-watch" not in _threads()


def test_midi_thru_forwards_every_message(midi, listener):
    kb = Keyboard(midi, "ThruKeys")
    out = open_connected(midi, "LiveEar")
    got: list[list[int]] = []
    inp = midi.open_input("ThruKeys", lambda m, d: got.append(m), thru=out)
    try:
        time.sleep(0.05)
        kb.send([0x90, 60, 100])
        kb.send([0xB0, 64, 127])
        kb.send([0x80, 60, 0])
        assert listener.wait_for(lambda ear: len(ear.messages()) >= 3)
        assert listener.messages() == [[0x90, 60, 100], [0xB0, 64, 127], [0x80, 60, 0]]
        assert got == listener.messages() and inp.received == 3
        inp.set_thru(None)
        kb.send([0x90, 62, 90])
        time.sleep(0.1)
        assert len(listener.messages()) == 3 and len(got) == 4
    finally:
        inp.close()
        out.close()
        kb.close()


def test_outputs_are_panicked_at_exit(midi, listener):
    out = open_connected(midi, "LiveEar")
    try:
        assert out in midi.open_outputs()
        out.note_on(0, 64, 100)
        midi.panic_all()  # what atexit runs
        assert listener.wait_for(lambda ear: [0x80, 64, 0] in ear.messages()), \
            listener.messages()
        assert listener.wait_for(lambda ear: [0xB0, 123, 0] in ear.messages())
        assert out.held_notes == set()
    finally:
        out.close()
    assert out not in midi.open_outputs()
    out.send([0x90, 60, 1])  # a closed output ignores messages instead of crashing


def test_exit_of_a_process_panics_its_outputs(midi, listener):
    code = (
        "from app.devices import Devices\n"
        "o = Devices().midi().open_output('LiveEar')\n"
        "o.note_on(2, 70, 100)\n"
        "import time; time.sleep(0.1)\n"
    )
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    assert result.returncode == 0, result.stderr
    assert listener.wait_for(lambda ear: [0x82, 70, 0] in ear.messages(), timeout=3), \
        listener.messages()


# ---------------------------------------------------------------------------- transport
def _scale(n: int = 12, step: float = 0.05, length: float = 0.04) -> NoteSequence:
    return NoteSequence(notes=[Note(60 + i, 70 + i, i * step, i * step + length)
                               for i in range(n)])


@pytest.mark.timing
def test_wait_until_is_precise():
    late = []
    for _ in range(40):
        due = time.perf_counter() + 0.004
        wait_until(due)
        late.append(time.perf_counter() - due)
    assert min(late) >= 0
    assert percentile(late, 50) < 0.001, late


@pytest.mark.timing
def test_transport_plays_on_time_with_low_jitter(midi, listener):
    out = open_connected(midi, "LiveEar")
    transport = Transport([out])
    try:
        seq = _scale(20, 0.05, 0.04)
        started = time.perf_counter()
        transport.play(seq)
        assert transport.is_playing
        assert transport.wait(timeout=5)
        took = time.perf_counter() - started
        assert 0.99 <= took < 1.2, took
        listener.wait_for(lambda ear: len(ear.notes()) >= 40, timeout=1)
        ons = [m[1] for _, m in listener.note_ons()]
        assert subsequence(ons, [60 + i for i in range(20)]) and len(ons) >= 17, ons
        late = list(transport.lateness)
        assert len(late) == 41 and min(late) >= 0  # sent: a program change and 40 notes
        # nothing stuck at the listener, when JACK delivered all of them (on this busy machine
        # its server now and then drops a client's MIDI for a missed cycle, as counted above)
        if listener.wait_for(lambda ear: len(ear.messages()) >= 41, timeout=1):
            assert listener.wait_for(lambda ear: unbalanced(ear.messages()) == {})
        # 5 ms p95 is the target on a quiet machine; this one is shared with training jobs
        assert percentile(late, 95) < 0.010, [round(x * 1000, 2) for x in late]
    finally:
        transport.close()
        out.close()


@pytest.mark.timing
def test_transport_tempo_scaling_and_change_while_playing(midi, listener):
    out = open_connected(midi, "LiveEar")
    transport = Transport([out], tempo=2.0)
    try:
        started = time.perf_counter()
        transport.play(_scale(10, 0.1, 0.08))  # 1.0 s written
        assert transport.wait(5)
        assert 0.48 < time.perf_counter() - started < 0.65
        started = time.perf_counter()
        transport.play(_scale(10, 0.1, 0.08), tempo=1.0)
        time.sleep(0.5)  # halfway at tempo 1
        assert 0.4 < transport.position < 0.6
        transport.set_tempo(0.5)  # the rest (0.5 s written) takes 1 s
        assert transport.wait(5)
        assert 1.35 < time.perf_counter() - started < 1.7
        listener.wait_for(lambda ear: len(ear.note_ons()) == 20, timeout=1)
        assert len(listener.note_ons()) >= 17
        assert listener.wait_for(lambda ear: unbalanced(ear.messages()) == {})
    finally:
        transport.close()
        out.close()


def test_transport_loops_and_stops_without_stuck_notes(midi, listener):
    out = open_connected(midi, "LiveEar")
    transport = Transport([out])
    try:
        seq = NoteSequence(notes=[Note(60, 90, 0.0, 0.1), Note(67, 90, 0.1, 0.3)])
        transport.play(seq, loop=True)
        time.sleep(0.75)  # 2.5 loops
        assert transport.is_playing
        ons = [m[1] for _, m in listener.note_ons()]
        assert subsequence(ons, [60, 67] * 3) and len(ons) >= 4, ons
        assert transport.position < 0.3
        held = out.held_notes
        transport.stop()
        assert not transport.is_playing and out.held_notes == set()
        assert held, "a note of the loop was sounding when it stopped"
        assert listener.wait_for(lambda ear: [0xB0, 123, 0] in ear.messages())
        assert listener.wait_for(lambda ear: unbalanced(ear.messages()) == {})
    finally:
        transport.close()
        out.close()
    assert "cadenza-transport" not in _threads()


def test_scheduler_cancel_releases_sounding_notes(midi, listener):
    out = open_connected(midi, "LiveEar")
    sent: list = []
    sched = Scheduler([out], on_sent=lambda tag, m, at, due: sent.append((tag, m)))
    try:
        now = time.perf_counter()
        sched.schedule(now + 0.02, [0x90, 60, 100], "a")
        sched.schedule(now + 0.02, [0x91, 48, 100], "b")
        sched.schedule(now + 0.5, [0x80, 60, 0], "a")
        sched.schedule(now + 0.05, [0x81, 48, 0], "b")
        time.sleep(0.15)
        assert sched.sounding("a") == {(0, 60)} and sched.sounding("b") == set()
        assert sched.pending("a") == 1
        sched.cancel("a")
        assert sched.pending() == 0 and sched.sounding() == set()
        assert [m for tag, m in sent] == [[0x90, 60, 100], [0x91, 48, 100], [0x81, 48, 0]]
        late = list(sched.lateness)
        assert len(late) == 3 and max(late) < 0.02
    finally:
        sched.stop()
        out.close()
    assert listener.wait_for(lambda ear: unbalanced(ear.messages()) == {})
    assert [0x80, 60, 0] in listener.messages() or [0xB0, 123, 0] in listener.messages()
    assert "cadenza-scheduler" not in _threads()


# ---------------------------------------------------------------------------- live audio
def _jack_ports() -> list[str]:
    out = subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=10).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


class Capture:
    """Records what the audio engine plays: a PortAudio input stream wired to its outputs."""

    def __init__(self, engine) -> None:  # noqa: ANN001
        import sounddevice as sd

        self.chunks: list[np.ndarray] = []
        self.stream = sd.InputStream(device=engine.device_index, channels=2, samplerate=48000,
                                     dtype="float32",
                                     callback=lambda d, f, t, s: self.chunks.append(d.copy()))
        self.stream.start()
        ports = _jack_ports()
        ins = sorted(p for p in ports if p.startswith("PortAudio:in_"))
        outs = sorted(p for p in ports if p.startswith("PortAudio:out_"))
        assert len(ins) == 2 and len(outs) == 2, ports
        for cap in ("system:capture_1", "system:capture_2"):
            for port in ins:
                subprocess.run(["jack_disconnect", cap, port], capture_output=True, timeout=10)
        for src, dst in zip(outs, ins, strict=True):
            subprocess.run(["jack_connect", src, dst], check=True, timeout=10)
        self.chunks.clear()

    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros((0, 2), np.float32)

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


@pytest.fixture()
def live_engine(live_jack):  # noqa: ANN001, ANN201
    """The one engine of a Devices: live voices get a bus of their own in its mix."""
    devices = Devices(audio_device="system")
    yield devices.audio()
    devices.close()


def test_live_synth_plays_into_jack(live_engine):
    cap = Capture(live_engine)
    synth = LiveSynth(live_engine)
    try:
        time.sleep(0.2)
        quiet = cap.audio()
        synth.note_on(0, 69, 110)
        time.sleep(0.6)
        synth.note_off(0, 69)
        time.sleep(0.1)
        assert synth.held_notes == set()
        rec = cap.audio()[len(quiet):, 0]
    finally:
        synth.close()
        cap.close()
    assert np.abs(quiet).max() < 1e-4
    assert np.abs(rec).max() > 0.02
    loud = np.flatnonzero(np.abs(rec) > 0.01)
    part = rec[loud[0] + 2400: loud[0] + 2400 + 19200]
    spec = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    f0 = np.fft.rfftfreq(len(part), 1 / 48000)[np.argmax(spec)]
    assert abs(f0 - 440) < 6, f0
    assert "cadenza-live-synth" not in _threads()


def test_transport_to_live_audio_and_stop_silences(live_engine):
    cap = Capture(live_engine)
    synth = LiveSynth(live_engine)
    transport = Transport([synth])
    try:
        transport.play(NoteSequence(notes=[Note(60, 100, 0.0, 3.0), Note(64, 100, 0.0, 3.0)]))
        time.sleep(0.5)
        assert synth.held_notes == {(0, 60), (0, 64)}
        transport.stop()
        assert synth.held_notes == set()
        time.sleep(0.6)  # release tail
        n = len(cap.audio())
        time.sleep(0.2)
        tail = cap.audio()[n:]
    finally:
        transport.close()
        synth.close()
        cap.close()
    rec = cap.audio()
    assert np.abs(rec).max() > 0.02
    assert np.abs(tail).max() < 0.005, np.abs(tail).max()


def _f0(x: np.ndarray, rate: int = 48000) -> float:
    from models.nsynth.evaluate import estimate_f0

    return estimate_f0(x, rate)


def test_morph_instrument_voices_play_into_jack(live_engine, flute_instrument_dir):
    from app.sampler import SamplerSynth
    from models.nsynth.instrument import MorphInstrument

    cap = Capture(live_engine)
    synth = SamplerSynth(live_engine, MorphInstrument.load(flute_instrument_dir))
    try:
        time.sleep(0.2)
        quiet = len(cap.audio())
        synth.note_on(0, 69, 110)  # between the key centers 64 and 72: repitched
        time.sleep(0.8)
        assert synth.held_notes == {(0, 69)} and synth.active_voices == 1
        synth.note_off(0, 69)
        time.sleep(0.4)  # the 0.2 s release
        assert synth.held_notes == set() and synth.active_voices == 0
        rec = cap.audio()[quiet:, 0]
    finally:
        synth.close()
        cap.close()
    assert np.abs(rec).max() > 0.05
    loud = np.flatnonzero(np.abs(rec) > 0.01)
    assert 69 + 12 * np.log2(_f0(rec[loud[0]: loud[0] + 24000]) / 440) == pytest.approx(69, abs=0.2)
    assert np.abs(rec[-4800:]).max() < 1e-3  # silent after the release
    assert "cadenza-sampler" not in _threads()


def test_transport_plays_a_sequence_on_the_morph_instrument(live_engine, flute_instrument_dir):
    from app.sampler import SamplerSynth
    from models.nsynth.instrument import MorphInstrument

    cap = Capture(live_engine)
    synth = SamplerSynth(live_engine, MorphInstrument.load(flute_instrument_dir))
    transport = Transport([synth])
    try:
        transport.play(NoteSequence(notes=[Note(60, 100, 0.0, 0.3), Note(67, 100, 0.5, 3.0),
                                           Note(72, 100, 0.5, 3.0)]))
        time.sleep(0.9)
        assert synth.held_notes == {(0, 67), (0, 72)}
        transport.stop()  # mid-note: released, then silence
        assert synth.held_notes == set()
        time.sleep(0.4)
        assert synth.active_voices == 0
        n = len(cap.audio())
        time.sleep(0.2)
        tail = cap.audio()[n:]
    finally:
        transport.close()
        synth.close()
        cap.close()
    assert np.abs(cap.audio()).max() > 0.05
    assert np.abs(tail).max() < 1e-4
    assert max(transport.lateness) < 0.02


# ---------------------------------------------------------------------------- recording
def test_events_to_sequence_pairs_notes_and_keeps_the_pedal():
    t0 = 100.0
    events = [
        (99.5, [0x90, 40, 90]),  # during the count-in: dropped
        (99.55, [0x80, 40, 0]),
        (99.95, [0x90, 60, 80]),  # a hair early for beat 1: starts at 0
        (100.5, [0xB0, 64, 127]),
        (100.6, [0x90, 60, 0]),  # velocity-0 note-on is a note-off
        (100.7, [0x90, 64, 70]),
        (100.8, [0x90, 64, 75]),  # the same key again before its note-off
        (101.0, [0x80, 64, 0]),
        (101.1, [0xB0, 64, 0]),
        (101.2, [0x80, 99, 0]),  # an unpaired note-off is ignored
        (101.3, [0x90, 72, 100]),  # still held at the end
    ]
    seq = events_to_sequence(events, t0, 102.0, qpm=90, beats_per_bar=3, name="take")
    got = [(n.pitch, n.velocity, round(n.start, 3), round(n.end, 3)) for n in seq.notes]
    assert got == [(60, 80, 0.0, 0.6), (64, 70, 0.7, 1.0), (64, 75, 0.8, 2.0),
                   (72, 100, 1.3, 2.0)]
    assert [(round(c.time, 3), c.number, c.value) for c in seq.control_changes] == [
        (0.5, 64, 127), (1.1, 64, 0)]
    assert seq.qpm == 90 and seq.time_signature.numerator == 3 and seq.name == "take"
    assert seq.apply_sustain().notes[0].end == pytest.approx(1.1)  # held by the pedal


@pytest.mark.timing
def test_recorder_with_count_in_and_metronome(midi, listener):
    kb = Keyboard(midi, "RecKeys")
    clicks = open_connected(midi, "LiveEar")
    beats: list = []
    rec = Recorder(qpm=240, beats_per_bar=4, count_in_bars=1, metronome=True,
                   click_sinks=[clicks], name="My take", on_beat=lambda *b: beats.append(b))
    inp = midi.open_input("RecKeys", lambda m, d: rec.feed(m))
    try:
        time.sleep(0.05)
        t_zero = rec.start()
        assert rec.counting_in
        sent = []
        wait_until(t_zero + 0.25)
        sent.append(kb.send([0x90, 60, 90]))
        wait_until(t_zero + 0.5)
        kb.send([0xB0, 64, 127])
        sent.append(kb.send([0x80, 60, 0]))
        wait_until(t_zero + 0.75)
        kb.send([0xB0, 64, 0])
        sent.append(kb.send([0x90, 67, 70]))
        wait_until(t_zero + 1.1)
        clip = rec.stop_clip()
        sent.append(rec.t_stop)
    finally:
        inp.close()
        clicks.close()
        kb.close()
    assert clip is not None and clip.name == "My take" and clip.is_midi
    seq = clip.sequence
    assert [n.pitch for n in seq.notes] == [60, 67]
    # times of arrival: what was sent plus JACK's period (512 frames = 10.7 ms here)
    got = [seq.notes[0].start, seq.notes[0].end, seq.notes[1].start]
    expected = [t - t_zero for t in sent[:3]]
    assert np.allclose(got, expected, atol=0.025), (got, expected)
    assert seq.notes[1].end == pytest.approx(sent[3] - t_zero, abs=0.001)  # held at stop
    assert [c.value for c in seq.control_changes] == [127, 0]
    assert seq.qpm == 240
    # 4 count-in beats + 5 while recording (t = 0, .25, .5, .75, 1.0)
    assert beats[:5] == [(-1, 0, True), (-1, 1, True), (-1, 2, True), (-1, 3, True),
                         (0, 0, False)]
    assert len(beats) == 9
    click_ons = [(t, m) for t, m in listener.note_ons() if m[0] == 0x99]
    bar = [CLICK_DOWNBEAT, CLICK_BEAT, CLICK_BEAT, CLICK_BEAT]
    assert subsequence([m[1] for _, m in click_ons], bar * 3) and len(click_ons) >= 7
    assert listener.wait_for(lambda ear: unbalanced(ear.messages()) == {})
    assert "cadenza-metronome" not in _threads()


@pytest.mark.timing
def test_metronome_clicks_are_heard_on_their_beats(live_engine):
    """On the built-in sound the clicks go out the synth's latency early (its queue and the
    output's: some 30 ms here), so an independent JACK client hears each one on its beat,
    within a few ms; a take played along with them then lands on the grid."""
    from tests.app.jack_onsets import OnsetProbe

    synth = LiveSynth(live_engine)
    rec = Recorder(qpm=150, count_in_bars=2, click_sinks=[synth])
    try:
        with OnsetProbe(threshold=0.01, quiet=4800) as probe:
            time.sleep(0.4)
            latency = synth.latency
            rec.start()
            time.sleep(8 * 0.4 + 0.3)
            heard = probe.onsets()
            rec.stop()
    finally:
        synth.close()
    assert 0.02 < latency < 0.1, latency  # 3.5 blocks of 5.3 ms and the playback port's
    assert len(rec.click_times) == 8 and len(heard) >= 6, heard
    errors_ms = [1000 * (min(heard, key=lambda h, t=t: abs(h - t)) - t) for t in rec.click_times]
    print("heard - beat, ms:", [round(e, 1) for e in errors_ms])
    # late by the latency (some 30 ms) before; in a whole suite's run a steady 4-5 ms remains
    assert abs(float(np.median(errors_ms))) < 8.0, errors_ms
    assert sorted(abs(e) for e in errors_ms)[5] < 12.0, errors_ms


def test_recorder_rejects_bad_settings_and_empty_takes():
    with pytest.raises(CadenzaError, match="tempo"):
        Recorder(qpm=5)
    rec = Recorder()
    with pytest.raises(CadenzaError, match="not recording"):
        rec.stop()
    rec.start()
    with pytest.raises(CadenzaError, match="already"):
        rec.start()
    assert rec.stop_clip() is None
