"""The three workspaces connected to real (tiny, freshly trained) models, in the real window.

Tiny models of each family are trained once per session with the families' own training APIs
(a few steps: they make music-shaped output, not good music) into a temporary models folder
that the app finds through ``CADENZA_MODELS_DIR``. Screenshots with results go to
``test-artifacts/screenshot-<workspace>-results.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from app.clips import Clip
from models.midi_io import read_midi
from models.sequence import NoteSequence

LONG = 120_000  # ms: the machine is shared with training jobs


# ---------------------------------------------------------------------- tiny models
def _link(files: list[Path], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        (dest / f.name).symlink_to(f)
    return dest


@pytest.fixture(scope="session")
def nottingham(datasets_dir: Path) -> list[Path]:
    """Real 4/4 Nottingham folk tunes."""
    picked = []
    for f in sorted((datasets_dir / "melody" / "nottingham").glob("*.mid"))[::7]:
        if [(t.numerator, t.denominator) for t in read_midi(f).time_signatures] == [(4, 4)]:
            picked.append(f)
        if len(picked) == 8:
            break
    assert len(picked) == 8
    return picked


@pytest.fixture(scope="session")
def models_root(datasets_dir: Path, nottingham: list[Path],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """tiny-perf, tiny-melody and tiny-nsynth, trained for a few steps each."""
    from models.music_vae.train import train as train_vae
    from models.nsynth.dataset import build_dataset
    from models.nsynth.train import train as train_nsynth
    from models.performance_rnn.train import train as train_perf

    tmp = tmp_path_factory.mktemp("ws-models")
    root = tmp / "models"
    piano = sorted((datasets_dir / "piano" / "asap").rglob("*.mid"),
                   key=lambda p: p.stat().st_size)[:2]
    train_perf(_link(piano, tmp / "piano"), root / "tiny-perf", config_name="tiny", steps=2,
               checkpoint_steps=2, val_windows=2, verbose=0, log=lambda s: None)
    train_vae("melody-2bar", [str(_link(nottingham, tmp / "melody"))], root / "tiny-melody",
              size="tiny", steps=2, cache_dir=tmp / "cache", steps_per_epoch=2,
              val_examples=16, verbose=0, overrides={"validation_fraction": 0.25})
    build_dataset(tmp / "nsynth-data", programs=[0, 73], pitches=[60], velocities=[100])
    train_nsynth(tmp / "nsynth-data", root / "tiny-nsynth", preset="tiny", steps=2,
                 eval_every=2, seed=1)
    for folder in root.iterdir():  # named after their folders (not the shipped names)
        config = folder / "config.json"
        payload = json.loads(config.read_text())
        payload["name"] = folder.name
        config.write_text(json.dumps(payload))
    old = os.environ.get("CADENZA_MODELS_DIR")
    os.environ["CADENZA_MODELS_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("CADENZA_MODELS_DIR", None)
    else:
        os.environ["CADENZA_MODELS_DIR"] = old


@pytest.fixture()
def win(window, models_root: Path):  # type: ignore[no-untyped-def]
    """The window with the installed models listed in every workspace (as after start-up)."""
    from models.registry import ModelRegistry

    entries = [e for e in ModelRegistry().list() if e.has_weights]
    window._models_listed(entries)
    for ws, name in (("Continue", "tiny-perf"), ("Interpolate", "tiny-melody"),
                     ("Morph", "tiny-nsynth")):
        combo = window.workspaces[ws].model_combo
        combo.setCurrentIndex(combo.findData(name))
        assert combo.currentData() == name
    return window


def _wait_idle(qtbot, ws) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: not ws.running, timeout=LONG)


def _shoot(win, ws, path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    win.show_workspace(ws.title)
    win.resize(1400, 900)
    qtbot.wait(150)
    assert win.grab().save(str(path))


def _notes_after(seq: NoteSequence, t: float) -> int:
    return sum(1 for n in seq.notes if n.start >= t - 1e-6)


# ---------------------------------------------------------------------- Continue
def test_continue_generates_variations_from_a_real_primer(win, short_piano_clip, qtbot,
                                                          tmp_path, artifacts_dir):
    ws = win.workspaces["Continue"]
    win.add_clip(short_piano_clip)
    assert ws.primer.currentText() == short_piano_clip.name
    assert ws.generate.isEnabled()
    ws.length.setValue(3.0)
    ws.variations.setValue(3)
    ws.seed.setValue(7)
    ws.key.setCurrentText("A minor")
    fractions: list[int] = []
    ws.progress.valueChanged.connect(fractions.append)
    ws.generate.click()
    assert ws.running and ws.busy.isVisibleTo(ws) and ws.cancel_button.isEnabled()
    assert not ws.generate.isEnabled()  # one generation at a time
    _wait_idle(qtbot, ws)
    assert not ws.busy.isVisibleTo(ws) and ws.generate.isEnabled()
    assert max(fractions) == 1000 and len(set(fractions)) >= 4  # per second and variation

    result = ws.result
    primer_end = max(n.end for n in short_piano_clip.sequence.notes)
    assert result is not None and result.boundary == pytest.approx(primer_end, abs=1.05)
    assert len(ws.cards) == 3
    conts = []
    for card in ws.cards:
        roll = card.panel.roll
        assert roll.marker == pytest.approx(result.boundary)
        assert roll.note_count == len(card.sequence.notes)
        new = _notes_after(card.sequence, result.boundary)
        assert new > 0  # notes after the primer
        assert card.sequence.total_time <= result.boundary + 3.0 + 1e-6 + 5.0  # note tails
        conts.append([(n.pitch, round(n.start, 2)) for n in card.sequence.notes
                      if n.start >= result.boundary])
        card.grab()
        assert roll.painted_notes > 0
        t0, t1 = roll.visible_time_range()
        assert t0 < result.boundary < t1  # the view shows the boundary
    assert conts[0] != conts[1]  # different variations

    # keep one
    card = ws.cards[1]
    card.buttons["keep"].click()
    kept = win.library.clips()[-1]
    assert kept.name.endswith("variation 2") and kept.sequence is card.sequence
    assert "Added" in win.last_message
    assert ws.primer.findText(kept.name) >= 0  # the primer picker refreshed
    # export .mid and .wav
    mid = ws.export_midi(card.sequence, tmp_path / "take.mid")
    assert mid is not None and len(read_midi(mid).notes) == len(card.sequence.notes)
    done: list[str] = []
    ws.export_wav(card.sequence, tmp_path / "take", done=done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=LONG)
    from models.audio_io import read_audio

    audio = read_audio(done[0])
    assert audio.duration > card.sequence.total_time and np.abs(audio.samples).max() > 0.01
    # the drag handle writes a real file
    urls = card.handle.mime_data().urls()
    assert read_midi(urls[0].toLocalFile()).notes
    _shoot(win, ws, artifacts_dir / "screenshot-continue-results.png", qtbot)


def test_continue_same_seed_same_music_and_beam_search(win, short_piano_clip, qtbot):
    ws = win.workspaces["Continue"]
    win.add_clip(short_piano_clip)
    ws.length.setValue(1.0)
    ws.variations.setValue(1)
    ws.seed.setValue(3)
    ws.generate.click()
    _wait_idle(qtbot, ws)
    first = [(n.pitch, n.start) for n in ws.cards[0].sequence.notes]
    ws.generate.click()
    _wait_idle(qtbot, ws)
    assert [(n.pitch, n.start) for n in ws.cards[0].sequence.notes] == first
    ws.sampling.setCurrentIndex(2)  # beam search
    assert ws.beam_size.isVisibleTo(ws) and not ws.top_p.isVisibleTo(ws)
    ws.beam_size.setValue(3)
    assert ws.key.currentData() == "primer" and ws.density_setting() == "primer"  # defaults
    assert not ws.density.isVisibleTo(ws)
    ws.density_mode.setCurrentIndex(ws.density_mode.findData("set"))
    assert ws.density.isVisibleTo(ws)
    ws.density.setValue(6.0)
    assert ws.density_setting() == 6.0
    ws.generate.click()
    _wait_idle(qtbot, ws)
    assert len(ws.cards) == 1 and ws.result.variations[0].boundary == ws.result.boundary
    assert win.last_message == "Continue: 1 variation ready"


def test_continue_cancel_stops_generation(win, short_piano_clip, qtbot):
    ws = win.workspaces["Continue"]
    win.add_clip(short_piano_clip)
    ws.length.setValue(120.0)
    ws.variations.setValue(8)
    ws.generate.click()
    qtbot.waitUntil(lambda: ws.progress.maximum() > 0 and ws.progress.value() > 0,
                    timeout=LONG)
    ws.cancel_button.click()
    _wait_idle(qtbot, ws)
    assert ws.cards == [] and ws.result is None
    assert win.last_message == "Continue: generate cancelled"
    assert ws.generate.isEnabled()


def test_continue_without_a_primer_says_so_in_one_line(win):
    ws = win.workspaces["Continue"]
    assert ws.primer_clip() is None
    ws.generate.click()
    assert not ws.running
    assert win.last_message.startswith("Continue: choose a primer")
    assert "\n" not in win.last_message
    assert win.statusBar().currentMessage() == win.last_message


def test_key_names_are_what_the_encoding_accepts():
    from models.performance_rnn import encoding as enc
    from models.sequence import KEY_NAMES

    assert len(KEY_NAMES) == 24
    tonics = {int(np.argmax(enc.key_histogram(k))) for k in KEY_NAMES}
    assert tonics == set(range(12))


# ---------------------------------------------------------------------- Interpolate
def test_interpolate_two_melodies_then_the_xy_pad(win, nottingham, qtbot, tmp_path,
                                                  artifacts_dir):
    ws = win.workspaces["Interpolate"]
    a, b = win.open_files(nottingham[:2])
    assert [c.currentData() for c in ws.corner_combos[:2]] == [a.id, b.id]
    ws.steps.setValue(5)
    ws.interpolate.click()
    _wait_idle(qtbot, ws)
    assert len(ws.cards) == 5
    assert win.last_message == "Interpolate: 5 steps ready"
    window_s = ws.result.seconds_each
    assert window_s == pytest.approx(2 * 4 * 60 / a.sequence.qpm)  # two 4/4 bars
    for card in ws.cards:
        assert card.panel.roll.note_count == len(card.sequence.notes) > 0
        assert card.sequence.total_time <= window_s + 1e-6
    row = ws.joined()
    assert len(row.notes) == sum(len(c.sequence.notes) for c in ws.cards)
    assert row.total_time > 4 * window_s
    assert ws.row_bar.isVisibleTo(ws)
    out = tmp_path / "row"
    ws.export_midi(row, out)
    assert len(read_midi(out.with_suffix(".mid")).notes) == len(row.notes)
    ws.cards[2].buttons["keep"].click()
    assert win.library.clips()[-1].name == "interpolation 3/5"
    ws.keep_all.click()
    assert win.library.clips()[-1].sequence.total_time == pytest.approx(row.total_time)
    _shoot(win, ws, artifacts_dir / "screenshot-interpolate-results.png", qtbot)

    # four corners: A, B from the clips, C and D sampled; the pad decodes (debounced)
    before = win.last_message
    assert not ws.corner_combos[2].isVisibleTo(ws)  # two endpoints: no C and D pickers
    ws.mode.setCurrentIndex(1)
    assert ws.pad.isVisibleTo(ws) and ws.interpolate.text() == "Set corners"
    assert ws.corner_combos[2].isVisibleTo(ws) and ws.corner_combos[3].isVisibleTo(ws)
    ws.interpolate.click()
    _wait_idle(qtbot, ws)
    qtbot.waitUntil(lambda: len(ws.cards) == 1 and ws._pad_job is None, timeout=LONG)
    assert ws.corner_latents.shape[0] == 4
    assert ws.cards[0].name == "blend 0.50, 0.50"
    assert win.last_message == before  # pad blends stay quiet
    for x in (0.2, 0.4, 0.9):  # a drag: only the resting position needs decoding
        ws.pad.set_position(x, 0.1)
    qtbot.waitUntil(lambda: ws.cards and ws.cards[0].name == "blend 0.90, 0.10"
                    and ws._pad_job is None, timeout=LONG)
    assert ws.cards[0].sequence.notes or ws.cards[0].sequence.total_time == 0
    ws.pad.set_position(0.0, 0.0)  # corner A is A's own reconstruction
    qtbot.waitUntil(lambda: ws.cards[0].name == "blend 0.00, 0.00" and ws._pad_job is None,
                    timeout=LONG)
    _shoot(win, ws, artifacts_dir / "screenshot-interpolate-pad-results.png", qtbot)


def test_interpolate_sample_button_and_sampled_endpoints(win, qtbot):
    ws = win.workspaces["Interpolate"]
    assert ws.corner_combos[0].currentData() is None  # no clips: "sample"
    ws.steps.setValue(3)
    ws.seed.setValue(11)
    ws.sample.click()
    _wait_idle(qtbot, ws)
    assert len(ws.cards) == 3 and ws.cards[0].name == "sample 1/3"
    assert win.last_message == "Interpolate: 3 samples ready"
    assert sum(len(c.sequence.notes) for c in ws.cards) > 0
    ws.interpolate.click()  # two sampled endpoints
    _wait_idle(qtbot, ws)
    assert len(ws.cards) == 3 and ws.cards[0].name == "interpolation 1/3"


def test_interpolate_picks_the_model_from_the_clips_and_says_why_a_clip_gives_nothing(
        win, datasets_dir, qtbot):
    ws = win.workspaces["Interpolate"]
    assert not ws.auto_model.isChecked()  # the fixture chose tiny-melody
    added = {c.name: c for c in win.open_examples()}
    grooves = [added["drums-funk"], added["drums-rock"]]
    # a melody model chosen: the default endpoints are melodies, not the drum grooves first
    defaults = ws.endpoint_clips()[:2]
    assert all(c is not None and "melody" in clip_kinds_of(c) for c in defaults)

    # the clips pick the model: two grooves -> the drum model
    ws.auto_model.setChecked(True)
    for combo, clip in zip(ws.corner_combos, grooves, strict=False):
        combo.setCurrentIndex(combo.findData(clip.id))
    ws.steps.setValue(3)
    ws.interpolate.click()
    _wait_idle(qtbot, ws)
    assert ws.model_combo.currentData() == "drums-2bar" and ws.auto_model.isChecked()
    assert len(ws.cards) == 3 and all(n.is_drum for c in ws.cards for n in c.sequence.notes)

    # a melody and a groove: one line in the workspace, the old result cleared, no job
    combo_b = ws.corner_combos[1]
    combo_b.setCurrentIndex(combo_b.findData(added["melody-a"].id))
    ws.interpolate.click()
    assert not ws.running and ws.cards == [] and ws.result is None
    assert ws.error_label.isVisibleTo(ws)
    assert "melody-a is a melody and drums-funk drums only" in ws.error_label.text()
    assert "\n" not in ws.error_label.text()

    # two jigs in 6/8: the 16-bar melody model, the steps keep the jig's metre
    jigs = win.open_files([datasets_dir / "melody" / "nottingham" / f"jigs{i}.mid"
                           for i in (1, 2)])
    for combo, clip in zip(ws.corner_combos, jigs, strict=False):
        combo.setCurrentIndex(combo.findData(clip.id))
    ws.interpolate.click()
    _wait_idle(qtbot, ws)
    assert not ws.error_label.isVisibleTo(ws)
    assert ws.model_combo.currentData() == "melody-16bar" and len(ws.cards) == 3
    assert all((c.sequence.time_signature.numerator, c.sequence.time_signature.denominator)
               == (6, 8) for c in ws.cards)
    ws.mode.setCurrentIndex(1)  # the pad's blends keep it too (C and D sampled)
    ws.interpolate.click()
    _wait_idle(qtbot, ws)
    qtbot.waitUntil(lambda: len(ws.cards) == 1 and ws._pad_job is None, timeout=LONG)
    blend = ws.cards[0].sequence.time_signature
    assert (blend.numerator, blend.denominator) == (6, 8)
    ws.mode.setCurrentIndex(0)

    # the musician chooses the melody model: it stays, and a groove says why it gives nothing
    ws.model_combo.setCurrentIndex(ws.model_combo.findData("tiny-melody"))
    assert not ws.auto_model.isChecked()
    combo_a = ws.corner_combos[0]
    combo_a.setCurrentIndex(combo_a.findData(grooves[0].id))
    ws.interpolate.click()
    assert ws.model_combo.currentData() == "tiny-melody" and ws.cards == []
    assert "drums-funk holds drums only" in ws.error_label.text()
    # ... and beside the clip that gives nothing, in one line, until another clip is picked
    note_a, note_b = ws.clip_notes[:2]
    assert note_a.isVisibleTo(ws) and not note_b.isVisibleTo(ws)
    assert "drums-funk holds drums only" in note_a.text() and "\n" not in note_a.text()
    combo_a.setCurrentIndex(combo_a.findData(added["melody-a"].id))
    assert not note_a.isVisibleTo(ws)


def clip_kinds_of(clip: Clip) -> set[str]:
    from models.music_vae.inputs import clip_kinds

    return clip_kinds(clip.sequence)


# ---------------------------------------------------------------------- Morph
def test_morph_two_general_midi_sources(win, qtbot, tmp_path, wav_file, artifacts_dir,
                                        jack_server):
    ws = win.workspaces["Morph"]
    assert ws.play_note(60) is False  # no instrument yet
    assert "make an instrument first" in win.last_message
    ws.morph.click()  # nothing chosen yet
    assert win.last_message.startswith("Morph: choose sounds A and B")
    ws.slots[0].use_gm(0, 60)  # acoustic grand piano
    ws.slots[1].use_gm(73, 72)  # flute
    assert ws.mix.isVisibleTo(ws)  # two sources: the mix slider
    ws.mix.setValue(30)
    assert ws.pad.position[0] == pytest.approx(0.3)
    ws.length.setValue(0.5)
    ws.morph.click()
    assert ws.running
    _wait_idle(qtbot, ws)
    view = ws.result_wave
    assert view.frames == 16 * 512 and view.duration == pytest.approx(0.5, abs=0.04)
    mins, maxs = view.envelope()
    assert maxs.max() > 0.0 and mins.min() < 0.0 and np.isfinite(maxs).all()
    assert ws.result_spec.energy > 0
    for slot in ws.slots[:2]:  # the rendered sources are shown too
        assert slot.wave.frames == 64000 and slot.spec.energy > 0
    assert ws.play_button.isEnabled() and ws.keep_button.isEnabled()
    ws.keep_button.click()
    kept = win.library.clips()[-1]
    assert kept.audio is not None and kept.name.startswith("morph Acoustic Grand Piano C4")
    # exported at a DAW's rate (48 kHz unless chosen otherwise), the same length
    written: list[str] = []
    assert ws.export_rate.currentData() == 48000
    ws.export_result(tmp_path / "morph", done=written.append)
    qtbot.waitUntil(lambda: bool(written), timeout=20_000)
    info = soundfile.info(written[0])
    assert written[0].endswith("morph.wav") and info.samplerate == 48000
    assert info.frames == 3 * view.frames

    # a WAV dropped on slot C joins as a third source
    clip = ws.drop_file(ws.slots[2], wav_file)
    assert clip is not None and ws.slots[2].clip().id == clip.id
    assert ws.slots[2].wave.frames == clip.audio.frames
    assert not ws.mix.isVisibleTo(ws)  # three sources: the pad
    assert ws.slots[0].wave.frames == 64000  # the rendered previews stay

    # a morph instrument, played and exported as WAV + SFZ
    ws.instrument_pitches = [60]
    seen: list[int] = []
    ws.progress.valueChanged.connect(seen.append)
    ws.make_instrument.click()
    _wait_idle(qtbot, ws)
    assert ws.instrument is not None and ws.instrument.pitches == [60]
    assert len({v for v in seen if 0 < v < 1000}) >= 3, seen  # the bar moves as it renders
    # rendered at the export rate, with a sustain loop
    assert ws.instrument.sample_rate == 48000 and set(ws.instrument.loops) == {60}
    assert ws.test_note.isEnabled()
    dest = ws.export_instrument(tmp_path / "inst")
    assert dest is not None and (dest / "instrument.sfz").is_file()
    assert (dest / "morph-p060.wav").is_file()
    assert ws.play_note(62, 100)  # what the MIDI keyboard calls, through the audio engine
    engine = win.audio_engine()
    qtbot.waitUntil(lambda: engine.position_seconds > 0.05, timeout=10_000)
    _shoot(win, ws, artifacts_dir / "screenshot-morph-results.png", qtbot)
    # a new instrument: the folder of the one it replaces goes; the last goes with the window
    first = ws.instrument_dir
    ws.make_instrument.click()
    _wait_idle(qtbot, ws)
    assert ws.instrument_dir != first and (ws.instrument_dir / "instrument.sfz").is_file()
    assert not first.exists() and dest.is_dir()  # an exported copy stays
    ws.shutdown()
    assert not ws.instrument_dir.exists()


# ---------------------------------------------------------------------- small parts
def test_spectrogram_of_a_tone_peaks_at_its_frequency():
    from app.widgets.spectrogram import N_FFT, spectrogram_db

    sr = 16000
    t = np.arange(sr) / sr
    db = spectrogram_db(np.sin(2 * np.pi * 1000 * t))
    peak = int(np.argmax(db.mean(axis=1)))
    assert peak == round(1000 / (sr / N_FFT))
    assert db.max() == 0.0 and db.min() >= -80.0
    assert spectrogram_db(np.zeros(10)).shape[0] == N_FFT // 2 + 1


def test_jobs_hold_no_qt():
    source = Path(__file__).resolve().parents[2] / "app" / "jobs.py"
    text = source.read_text()
    assert "PySide6" not in text and "import keras" not in text


def test_a_clip_from_a_result_drags_out(win, short_piano_clip):
    from app.workspaces.base import SequenceCard

    ws = win.workspaces["Continue"]
    card = SequenceCard(ws, short_piano_clip.sequence, "drag me")
    path = Path(card.handle.mime_data().urls()[0].toLocalFile())
    assert path.name == "drag me.mid" and read_midi(path).notes
    assert isinstance(card.clip(), Clip)


def test_a_refreshed_model_list_keeps_the_chosen_model(win):
    from models.registry import ModelRegistry

    entries = [e for e in ModelRegistry().list() if e.has_weights]
    ws = win.workspaces["Interpolate"]
    assert ws.model_combo.currentData() == "tiny-melody"
    win._models_listed(entries)  # e.g. the start-up listing arriving after the musician chose
    assert ws.model_combo.currentData() == "tiny-melody"
    # with nothing chosen yet, Interpolate starts on the 2-bar melody model when installed
    names = [e.name for e in entries if e.family == "music_vae"]
    ws.model_combo.clear()
    ws.set_models(entries)
    expected = "melody-2bar" if "melody-2bar" in names else names[0]
    assert ws.model_combo.currentData() == expected


# ---------------------------------------------------------------------- the session tempo
@contextlib.contextmanager
def _synced(win, bpm: float) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The Live panel's sync running on its internal clock (no MIDI port needed) at ``bpm``."""
    box = win.live_panel.sync_box
    assert box.choose_source("internal")
    box.tempo_spin.setValue(bpm)
    box.run_button.click()
    try:
        assert box.run_button.isChecked() and win.session_bpm() == pytest.approx(bpm)
        yield
    finally:
        box.run_button.click()
        assert win.session_bpm() is None


def _export_audio_through_the_dialog(qtbot, button, target: Path) -> None:  # type: ignore[no-untyped-def]
    """Press a result's Export audio… button and choose ``target`` (48 kHz WAV) in the dialog."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.widgets.export_dialog import AudioExportDialog

    def fill() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, AudioExportDialog)
        dialog.path.setText(str(target))
        dialog.set_rate(48000)
        dialog.accept()

    QTimer.singleShot(200, fill)
    button.click()
    qtbot.waitUntil(target.is_file, timeout=LONG)


def _note_on_ticks(path: Path) -> list[int]:
    import mido

    out = []
    for track in mido.MidiFile(path).tracks:
        tick = 0
        for m in track:
            tick += m.time
            if m.type == "note_on" and m.velocity > 0:
                out.append(tick)
    return out


def test_continue_at_the_session_tempo_exports_files_a_daw_lines_up(
        win, short_piano_clip, qtbot, tmp_path):
    """Sync at 96 BPM: the takes carry 96 BPM with every note at the same second; the .mid
    (Export, drag-out), the rendered WAV (its acid chunk), the kept clip and a saved and reopened
    session all say 96 BPM. With sync off again, the takes keep the primer's tempo."""
    from models.audio_io import read_audio

    ws = win.workspaces["Continue"]
    primer = short_piano_clip.sequence
    assert primer.qpm != 96.0
    win.add_clip(short_piano_clip)
    ws.length.setValue(2.0)
    ws.variations.setValue(1)
    ws.seed.setValue(3)
    with _synced(win, 96.0):
        assert ws.session_tempo() == 96.0
        ws.generate.click()
        _wait_idle(qtbot, ws)
    assert ws.result is not None and ws.result.tempo == 96.0
    card = ws.cards[0]
    seq = card.sequence
    assert card.tempo == 96.0 and [(t.time, t.qpm) for t in seq.tempos] == [(0.0, 96.0)]
    assert seq.time_signatures == primer.time_signatures
    before = [(n.pitch, n.start, n.end) for n in seq.sorted().notes
              if n.start < ws.result.boundary - 1e-6]
    assert before == [(n.pitch, n.start, n.end) for n in primer.sorted().notes]
    assert _notes_after(seq, ws.result.boundary) > 0

    tick = 60.0 / 96.0 / 480
    for path in (ws.export_midi(seq, tmp_path / "take.mid"),
                 Path(card.handle.mime_data().urls()[0].toLocalFile())):
        back = read_midi(path)
        assert [(t.time, t.qpm) for t in back.tempos] == [(0.0, 96.0)], path
        by_pitch = sorted(back.notes, key=lambda n: (n.pitch, n.start))
        for a, b in zip(sorted(seq.notes, key=lambda n: (n.pitch, n.start)), by_pitch,
                        strict=True):
            assert a.pitch == b.pitch and abs(a.start - b.start) <= tick / 2 + 1e-9
            assert abs(a.end - b.end) <= tick / 2 + 1e-9
    _export_audio_through_the_dialog(qtbot, card.buttons["wav"], tmp_path / "take.wav")
    rendered = read_audio(tmp_path / "take.wav")
    assert rendered.sample_rate == 48000 and rendered.acid is not None
    assert rendered.acid.tempo == 96.0 and not rendered.acid.one_shot
    assert rendered.acid.root_note is None  # a performance, not a note to map to a key

    card.buttons["keep"].click()
    kept = win.library.clips()[-1]
    assert kept.tempo == 96.0 and kept.summary.endswith("96 BPM")
    win.library.select(kept)
    with qtbot.waitSignal(win.exported, timeout=LONG):
        win.export_wav(tmp_path / "kept.wav")
    assert read_audio(tmp_path / "kept.wav").acid.tempo == 96.0

    saved = win.save_session(tmp_path / "tempo.cadenza")
    assert saved is not None
    win.library.replace_all([])
    assert win.open_session(saved)
    reopened = win.library.clips()[-1]
    assert reopened.name == kept.name and reopened.tempo == 96.0
    assert reopened.sequence.qpm == 96.0
    assert ws.cards and ws.cards[0].tempo == 96.0 and ws.cards[0].sequence.qpm == 96.0
    assert win.library.clips()[0].tempo is None  # the primer, opened without sync

    # sync off: as before, the primer's tempo and no tempo remembered
    ws.primer.setCurrentIndex(1)
    ws.generate.click()
    _wait_idle(qtbot, ws)
    assert ws.result.tempo is None and ws.cards[0].tempo is None
    assert [(t.time, t.qpm) for t in ws.cards[0].sequence.tempos] == \
        [(t.time, t.qpm) for t in primer.tempos]


def test_interpolate_at_the_session_tempo_lands_on_its_grid(win, nottingham, qtbot, tmp_path):
    """Sync at 96 BPM: two 4/4 bars are 5 s, every note starts on a sixteenth of 96 BPM, and
    the row's .mid carries 96 BPM with every note-on on a 120-tick sixteenth."""
    ws = win.workspaces["Interpolate"]
    a, b = win.open_files(nottingham[:2])
    assert a.sequence.qpm != 96.0
    ws.steps.setValue(3)
    ws.seed.setValue(5)
    ws.temperature.setValue(1.0)
    sixteenth = 60.0 / 96.0 / 4
    with _synced(win, 96.0):
        ws.interpolate.click()
        _wait_idle(qtbot, ws)
        assert ws.result.tempo == 96.0 and ws.result.seconds_each == pytest.approx(5.0)
        for card in ws.cards:
            assert card.tempo == 96.0 and card.sequence.qpm == 96.0
            for n in card.sequence.notes:
                assert n.start / sixteenth == pytest.approx(round(n.start / sixteenth),
                                                            abs=1e-6)
        row = ws.joined()
        assert row.notes and row.qpm == 96.0
        out = ws.export_midi(row, tmp_path / "row.mid")
        assert read_midi(out).qpm == 96.0
        assert all(t % 120 == 0 for t in _note_on_ticks(out))
        ws.keep_all.click()
        assert win.library.clips()[-1].tempo == 96.0
        ws.sample.click()
        _wait_idle(qtbot, ws)
        assert ws.result.tempo == 96.0 and ws.result.seconds_each == pytest.approx(5.0)
        assert all(c.sequence.qpm == 96.0 for c in ws.cards)
    ws.interpolate.click()  # sync off: the first clip's tempo, as before
    _wait_idle(qtbot, ws)
    assert ws.result.tempo is None
    assert ws.result.seconds_each == pytest.approx(2 * 4 * 60 / a.sequence.qpm)


def test_morph_at_the_session_tempo_writes_an_acidized_wav(win, qtbot, tmp_path):
    """Sync at 96 BPM: the morph's WAV (exported, dragged out, kept in a session) has an acid
    chunk with 96 BPM, marked one-shot, root note C4 (the piano's, the larger share)."""
    from models.audio_io import read_audio

    ws = win.workspaces["Morph"]
    ws.slots[0].use_gm(0, 60)
    ws.slots[1].use_gm(73, 72)
    ws.mix.setValue(30)
    ws.length.setValue(0.5)
    with _synced(win, 96.0):
        ws.morph.click()
        _wait_idle(qtbot, ws)
    acid = ws.session_results().audio.acid
    assert acid is not None and acid.tempo == 96.0 and acid.one_shot and acid.root_note == 60
    _export_audio_through_the_dialog(qtbot, ws.export_button, tmp_path / "morph.wav")
    written = read_audio(tmp_path / "morph.wav")
    assert written.sample_rate == 48000
    assert (written.acid.tempo, written.acid.one_shot, written.acid.root_note) == (96.0, True, 60)
    ws.keep_button.click()
    kept = win.library.clips()[-1]
    assert kept.tempo == 96.0
    dragged = win.library.export_for_drag(kept)
    assert read_audio(dragged).acid.tempo == 96.0
    saved = win.save_session(tmp_path / "morph.cadenza")
    win.library.replace_all([])
    assert win.open_session(saved)
    assert win.library.clips()[-1].tempo == 96.0
    assert ws.session_results().audio.acid.tempo == 96.0
