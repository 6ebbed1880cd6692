"""The audio engine on a real JACK dummy server, captured back through JACK."""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import pytest

from app.audio_engine import AudioEngine, list_audio_outputs
from models.audio_io import Audio
from models.errors import CadenzaError
from models.render import Renderer
from models.sequence import Note, NoteSequence

pytestmark = pytest.mark.jack


def _jack_ports(flags: list[str]) -> list[str]:
    out = subprocess.run(["jack_lsp", *flags], capture_output=True, text=True, timeout=10).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


@pytest.fixture()
def engine(jack_server):
    eng = AudioEngine(device="system", blocksize=1024, queue_blocks=8)
    eng.start()
    yield eng
    eng.close()


def test_jack_output_is_listed(jack_server):
    outputs = list_audio_outputs()
    jack = [o for o in outputs if o["hostapi"] == "JACK Audio Connection Kit"]
    assert jack, outputs
    assert jack[0]["default_samplerate"] == 48000
    ok, reason = AudioEngine.available()
    assert ok, reason


def test_plays_a_rendered_clip_into_jack(engine):
    import sounddevice as sd

    assert engine.sample_rate == 48000
    with Renderer(sample_rate=44100) as r:  # a different rate: play() resamples
        clip = r.render(NoteSequence(notes=[Note(69, 110, 0.0, 1.5)]), tail=0.3)
    captured: list[np.ndarray] = []
    stream = sd.InputStream(device=engine.device_index, channels=2, samplerate=48000,
                            dtype="float32", callback=lambda d, f, t, s: captured.append(d.copy()))
    stream.start()
    try:
        ins = [p for p in _jack_ports([]) if p.startswith("PortAudio:in_")]
        outs = [p for p in _jack_ports([]) if p.startswith("PortAudio:out_")]
        assert len(ins) == 2 and len(outs) == 2, _jack_ports([])
        for cap in ("system:capture_1", "system:capture_2"):
            for port in ins:
                subprocess.run(["jack_disconnect", cap, port], capture_output=True, timeout=10)
        for src, dst in zip(sorted(outs), sorted(ins), strict=True):
            subprocess.run(["jack_connect", src, dst], check=True, timeout=10)
        captured.clear()
        engine.play(clip)
        assert engine.is_playing
        assert engine.wait(timeout=10)
        time.sleep(0.1)
    finally:
        stream.stop()
        stream.close()
    assert engine.frames_played == int(round(clip.samples.shape[0] * 48000 / 44100))
    assert abs(engine.position_seconds - 1.8) < 0.01
    rec = np.concatenate(captured)[:, 0]
    assert np.abs(rec).max() > 0.02
    loud = np.flatnonzero(np.abs(rec) > 0.01)
    part = rec[loud[0] + 4800: loud[0] + 4800 + 48000]
    spec = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    f0 = np.fft.rfftfreq(len(part), 1 / 48000)[np.argmax(spec)]
    assert abs(f0 - 440) <= 4.4, f0


def test_underruns_when_the_queue_starves(engine):
    block = np.full((engine.blocksize, 2), 0.1, dtype=np.float32)
    assert engine.push_block(block, timeout=1)
    time.sleep(0.3)  # the dummy driver pulls ~47 blocks/s and gets none after the first
    assert engine.is_playing
    assert engine.underruns >= 5
    assert engine.frames_played == engine.blocksize
    engine.end_stream()
    assert engine.wait(timeout=2)
    counted = engine.underruns
    time.sleep(0.1)
    assert engine.underruns == counted  # silence while not playing is no underrun


def test_live_stream_and_loop(engine):
    def blocks():
        for _ in range(20):
            yield np.zeros((engine.blocksize, 2), dtype=np.float32)

    engine.play_stream(blocks())
    assert engine.wait(timeout=5)
    assert engine.frames_played == 20 * engine.blocksize
    clip = Audio(np.zeros((4800, 2), dtype=np.float32), 48000)
    engine.play(clip, loop=True)
    time.sleep(0.4)
    assert engine.is_playing and engine.frames_played > 4800
    assert 0 <= engine.position_seconds < 0.1


def test_stop_is_quick_and_leaves_no_thread(engine):
    long_clip = Audio(np.zeros((48000 * 60, 2), dtype=np.float32), 48000)
    before = {t.name for t in threading.enumerate()}
    engine.play(long_clip)
    time.sleep(0.2)
    assert "cadenza-audio-feeder" in {t.name for t in threading.enumerate()}
    started = time.perf_counter()
    engine.stop()
    assert time.perf_counter() - started < 0.3
    assert not engine.is_playing
    assert {t.name for t in threading.enumerate()} <= before
    played = engine.frames_played
    time.sleep(0.1)
    assert engine.frames_played == played


def test_no_device_gives_one_line_error(jack_server):
    with pytest.raises(CadenzaError, match="no-such-sound-card"):
        AudioEngine(device="no-such-sound-card").start()
    eng = AudioEngine()
    with pytest.raises(CadenzaError, match="not started"):
        eng.play(Audio(np.zeros((10, 2), dtype=np.float32), 48000))


def test_no_sound_server_at_all(jack_server, monkeypatch):
    import sounddevice as sd

    monkeypatch.setenv("JACK_DEFAULT_SERVER", "cadenza-no-such-server")
    try:
        # No ALSA cards on this machine and no reachable JACK server: no outputs at all.
        if any(o["hostapi"] != "JACK Audio Connection Kit" for o in list_audio_outputs()):
            pytest.skip("this machine has non-JACK audio outputs")
        assert list_audio_outputs() == []
        ok, reason = AudioEngine.available()
        assert not ok and "no audio output device" in reason and "\n" not in reason
        with pytest.raises(CadenzaError, match="no audio output device"):
            AudioEngine().start()
    finally:
        monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server)
        sd._terminate()
        sd._initialize()
