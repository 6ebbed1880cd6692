# ruff: noqa: F811 - the JACK fixtures are imported from test_live_transport and test_live_panel
"""The morph played live from a DDSP model, on a real JACK server: :class:`app.sampler.DDSPSynth`
on the audio engine, and the Morph workspace's "Play from keyboard" with a tiny DDSP model (no
instrument rendered), the pad moving the sounding notes, the transport rendering with it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from models.nsynth.signal import cents, estimate_f0
from tests.app.test_live_panel import rig  # noqa: F401 - fixture
from tests.app.test_live_transport import (  # noqa: F401 - fixtures
    Capture,
    live_engine,
    live_jack,
    midi,
)

pytestmark = pytest.mark.jack
LONG = 120_000  # ms: the machine is shared with training jobs


@pytest.fixture(scope="module")
def ddsp_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A models folder with ``tiny-ddsp`` (30 steps on a piano and a flute note), found by the
    app through ``CADENZA_MODELS_DIR``."""
    from models.ddsp.train import train
    from models.nsynth.dataset import build_dataset

    tmp = tmp_path_factory.mktemp("live-morph")
    build_dataset(tmp / "data", programs=[0, 73], pitches=[60], velocities=[100])
    root = tmp / "models"
    train(tmp / "data", root / "tiny-ddsp", preset="tiny", steps=30, eval_every=30, seed=1)
    config = root / "tiny-ddsp" / "config.json"
    payload = json.loads(config.read_text())
    payload["name"] = "tiny-ddsp"
    config.write_text(json.dumps(payload))
    old = os.environ.get("CADENZA_MODELS_DIR")
    os.environ["CADENZA_MODELS_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("CADENZA_MODELS_DIR", None)
    else:
        os.environ["CADENZA_MODELS_DIR"] = old


def live_morph(models: Path):  # type: ignore[no-untyped-def]
    from models.ddsp.morph import DDSPMorpher
    from models.ddsp.voices import LiveMorph

    morpher = DDSPMorpher.load(models / "tiny-ddsp")
    sounds = [morpher.source_audio("gm:0", 60), morpher.source_audio("gm:73", 60)]
    return LiveMorph.from_sounds(morpher, sounds, (0.0, 0.0))


def pitch_of(rec: np.ndarray) -> float:
    loud = np.flatnonzero(np.abs(rec) > 0.2 * np.abs(rec).max())
    return estimate_f0(rec[loud[0]: loud[0] + 24000], 48000, start=0.1, end=0.45)


def test_ddsp_synth_plays_the_model_live(live_engine, ddsp_models: Path) -> None:
    from app.sampler import DDSPSynth

    cap = Capture(live_engine)
    synth = DDSPSynth(live_engine, live_morph(ddsp_models))
    try:
        synth.send([0x90, 69, 110])  # before the first block: played with it
        time.sleep(0.8)
        assert synth.active_voices == 1
        synth.set_xy(1.0, 0.0)  # the pad: the sounding note glides to B
        assert np.allclose(synth.weights, [0.0, 1.0])
        time.sleep(0.4)
        synth.send([0x80, 69, 0])
        time.sleep(1.5)
        rec = cap.audio()[:, 0]
        assert synth.active_voices == 0
    finally:
        synth.close()
        cap.close()
    assert np.abs(rec).max() > 0.01
    assert abs(cents(pitch_of(rec), 440.0)) < 50
    assert np.abs(rec[-9600:]).max() < 1e-4  # released, then silence


def test_a_key_press_is_added_into_the_blocks_already_queued(live_engine,
                                                             ddsp_models: Path) -> None:
    """A note-on does not wait behind the bus's queue: the synth renders it into the blocks
    queued already (all but, at most, the one the callback takes within the margin), so it is
    in the bus before ``send`` returns; the next blocks rendered carry it on."""
    from app.sampler import DDSPSynth

    synth = DDSPSynth(live_engine, live_morph(ddsp_models))
    try:
        deadline = time.monotonic() + 5.0
        while synth.blocks_rendered < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = synth.bus.pending_blocks()
        assert queued and all(not b.any() for b in queued)  # silence, nothing played yet
        synth.send([0x90, 60, 120])
        blocks = synth.bus.pending_blocks()
        spliced = synth.blocks_spliced
        assert spliced >= 1
        assert any(np.abs(b).max() > 1e-6 for b in blocks)
        time.sleep(0.3)
        assert synth.active_voices == 1 and synth.peak > 1e-3
        assert synth.blocks_spliced == spliced  # only a note's start is added in
    finally:
        synth.close()


def test_play_from_keyboard_plays_a_ddsp_morph_live(rig, qtbot, ddsp_models: Path) -> None:
    from app.main_window import _render_midi
    from app.sampler import DDSPSynth, SamplerSynth
    from models.ddsp.voices import LiveMorph
    from models.registry import ModelRegistry
    from models.sequence import Note, NoteSequence

    window, panel, kb, ear = rig
    window._models_listed([e for e in ModelRegistry().list() if e.has_weights])
    morph = window.workspaces["Morph"]
    morph.model_combo.setCurrentIndex(morph.model_combo.findData("tiny-ddsp"))
    assert morph.plays_live() and morph.instrument is None
    assert morph.keyboard_button.isEnabled()  # no instrument needed
    morph.keyboard_button.click()  # nothing chosen yet
    assert "choose sounds A and B" in window.last_message
    morph.slots[0].use_gm(0, 60)
    morph.slots[1].use_gm(73, 60)
    morph.pad.set_position(0.0, 0.0)
    assert panel.choose_input("PanelKeys")
    morph.keyboard_button.click()
    qtbot.waitUntil(lambda: isinstance(panel.output, DDSPSynth), timeout=LONG)
    assert isinstance(morph.live, LiveMorph) and window.live_dock.isVisible()
    synth = panel.output
    cap = Capture(panel.engine)
    try:
        time.sleep(0.1)
        kb.send([0x90, 57, 110])  # the MIDI keyboard, through JACK
        qtbot.waitUntil(lambda: synth.active_voices == 1, timeout=2000)
        time.sleep(0.5)
        morph.pad.set_position(1.0, 0.3)  # dragged while the key is held
        assert np.allclose(synth.weights, [0.0, 1.0]) and morph.live.xy == (1.0, 0.0)
        time.sleep(0.3)
        kb.send([0x80, 57, 0])
        qtbot.waitUntil(lambda: synth.active_voices == 0, timeout=3000)
        rec = cap.audio()[:, 0]
    finally:
        cap.close()
    assert abs(cents(pitch_of(rec), 220.0)) < 50

    # recording with the metronome: the morph has no drums, so the clicks sound on General
    # MIDI drums beside it, on the same engine, for as long as the take
    from app.transport import LiveSynth

    panel.metronome_check.setChecked(True)
    panel.set_recording(True)
    clicks = panel.recorder.click_sinks
    assert len(clicks) == 1 and clicks[0].plays_drums  # opened by the opener worker
    qtbot.waitUntil(lambda: panel.click_synth is not None, timeout=5000)
    assert isinstance(panel.click_synth, LiveSynth) and clicks[0].attached
    assert panel.output is synth and not synth.plays_drums
    time.sleep(0.3)
    panel.set_recording(False)
    assert panel.click_synth is None and panel.output is synth
    panel.metronome_check.setChecked(False)

    # the transport renders MIDI clips with the live morph (at the pad's position)
    assert window.transport.use_instrument and window._sound() is morph.live
    audio = _render_midi(None, NoteSequence(notes=[Note(64, 100, 0.1, 0.6)]), window._sound())
    x = audio.samples[:, 0]
    assert abs(cents(estimate_f0(x, audio.sample_rate, start=0.2, end=0.55), 329.63)) < 50

    # a rendered instrument takes over the morph output from the live voices
    morph.instrument_pitches = [60]
    morph.make_instrument.click()
    qtbot.waitUntil(lambda: morph.instrument is not None, timeout=LONG)
    qtbot.waitUntil(lambda: isinstance(panel.output, SamplerSynth), timeout=5000)
    assert isinstance(panel.output, SamplerSynth) and morph.live is None
    assert window._sound() is morph.instrument
