"""Sessions (autosave, restore, Save/Open Session, recent), undo/redo of the clip library,
inline job errors and settings that cannot construct objects. Real files, the real window."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication

from app.clips import load_clip
from app.main_window import MainWindow
from app.session import (
    AUTOSAVE_NAME,
    Results,
    SessionData,
    instrument_files,
    read_recent,
    read_session,
    write_session,
)
from app.settings import Settings, SettingsStore, load_settings, open_qsettings, save_settings
from models.errors import CadenzaError
from models.midi_io import read_midi

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("session_app.py")


def _window(qtbot, tmp_path: Path, **kwargs) -> MainWindow:  # type: ignore[no-untyped-def]
    win = MainWindow(probe_compute=False, drag_folder=tmp_path / "drag", **kwargs)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


def _saved(win: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Wait for the autosave that follows the latest change (one still being written from
    before it is let finish first: its ``session_saved`` would otherwise be taken for this)."""
    pending = win.autosave_in_flight()
    if pending is not None:
        qtbot.waitUntil(pending.done, timeout=20000)
        QApplication.processEvents()  # its session_saved, queued from the saver thread
    with qtbot.waitSignal(win.session_saved, timeout=20000):
        win.schedule_autosave()


# ---------------------------------------------------------------------- the file format
def test_a_session_file_is_a_zip_of_midi_wav_and_json(tmp_path, short_piano_clip, wav_file):
    audio = load_clip(wav_file)
    half = short_piano_clip.sequence.trim(0.0, 2.5)
    data = SessionData(clips=[short_piano_clip, audio], current_clip=1,
                       results={"Continue": Results(sequences=[half], names=["v1"],
                                                    meta={"boundary": 1.0})},
                       workspaces={"Continue": {"length": 7.0}}, live={"tempo": 90})
    path = write_session(tmp_path / "s.cadenza", data)
    # readable without Cadenza: a zip, a JSON manifest, standard MIDI and WAV files
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["format"] == "cadenza-session" and manifest["version"] == 1
        assert [c["file"] for c in manifest["clips"]] == ["clips/001.mid", "clips/002.wav"]
        midi = read_midi(archive.read("clips/001.mid"))
        assert len(midi.notes) == len(short_piano_clip.sequence.notes)
        assert archive.read("clips/002.wav")[:4] == b"RIFF"
        assert manifest["results"]["Continue"]["files"] == ["results/continue-001.mid"]
    back = read_session(path)
    assert [c.name for c in back.clips] == [short_piano_clip.name, "tone"]
    assert back.clips[1].audio.samples.shape == audio.audio.samples.shape
    assert back.current_clip == 1 and back.workspaces["Continue"]["length"] == 7.0
    assert len(back.results["Continue"].sequences[0].notes) == len(half.notes)
    assert back.results["Continue"].meta["boundary"] == 1.0
    assert back.clips[0].source == short_piano_clip.source


def test_the_session_tempo_of_clips_and_results_survives_a_session_file(tmp_path,
                                                                      short_piano_clip,
                                                                      wav_file):
    """A take made at 96 BPM and a morph made at 140 BPM come back with their tempos (the
    manifest says it; the MIDI file's tempo and the WAV's acid chunk carry it too); a clip made
    without sync, and an older manifest without the key, have none."""
    from app.clips import Clip
    from models.audio_io import AcidInfo

    take = Clip("take", sequence=short_piano_clip.sequence.with_tempo(96.0), tempo=96.0)
    morph = load_clip(wav_file)
    morph = Clip("morph", audio=morph.audio.with_acid(
        AcidInfo(tempo=140.0, root_note=69, one_shot=True)))
    assert morph.tempo == 140.0
    plain = load_clip(wav_file)
    data = SessionData(clips=[take, morph, plain, short_piano_clip],
                       results={"Morph": Results(audio=morph.audio, names=["m"],
                                                 meta={"tempo": 140.0})})
    path = write_session(tmp_path / "t.cadenza", data)
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert [c["tempo"] for c in manifest["clips"]] == [96.0, 140.0, None, None]
        assert read_midi(archive.read("clips/001.mid")).qpm == 96.0
        assert b"acid" in archive.read("clips/002.wav") and b"acid" in archive.read(
            "results/morph.wav")
        assert b"acid" not in archive.read("clips/003.wav")
    back = read_session(path)
    assert [c.tempo for c in back.clips] == [96.0, 140.0, None, None]
    assert back.clips[0].sequence.qpm == 96.0
    assert back.clips[1].audio.acid == AcidInfo(tempo=140.0, root_note=69, one_shot=True,
                                                beats=round(1.5 * 140 / 60))
    assert back.results["Morph"].audio.acid.tempo == 140.0
    assert back.results["Morph"].meta["tempo"] == 140.0
    # an older session (no "tempo" key) or a nonsense value: no tempo
    for value in ("drop", "fast", float("nan"), 1e9):
        with zipfile.ZipFile(path) as archive:
            members = {n: archive.read(n) for n in archive.namelist()}
        manifest = json.loads(members["manifest.json"])
        for entry in manifest["clips"]:
            if value == "drop":
                entry.pop("tempo")
            else:
                entry["tempo"] = value
        members["manifest.json"] = json.dumps(manifest).encode()
        older = tmp_path / "older.cadenza"
        with zipfile.ZipFile(older, "w") as archive:
            for name, payload in members.items():
                archive.writestr(name, payload)
        clips = read_session(older).clips
        assert clips[0].tempo is None and clips[2].tempo is None, value
        assert clips[1].tempo == 140.0  # its WAV still says so


@pytest.mark.parametrize("content", [
    b"",
    b"not a zip at all",
    "zip-no-manifest",
    "zip-manifest-not-json",
    "zip-other-format",
    "zip-newer-version",
    "zip-missing-member",
    "zip-member-not-midi",
    "zip-clips-not-a-list",
])
def test_a_broken_session_file_is_one_line(tmp_path, content):
    path = tmp_path / "broken.cadenza"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        manifest = {"format": "cadenza-session", "version": 1, "clips": []}
        members = {}
        if content == "zip-manifest-not-json":
            members["manifest.json"] = b"{nope"
        elif content == "zip-other-format":
            members["manifest.json"] = json.dumps({"format": "x", "version": 1}).encode()
        elif content == "zip-newer-version":
            members["manifest.json"] = json.dumps({**manifest, "version": 99}).encode()
        elif content == "zip-missing-member":
            manifest["clips"] = [{"name": "a", "file": "clips/001.mid"}]
            members["manifest.json"] = json.dumps(manifest).encode()
        elif content == "zip-member-not-midi":
            manifest["clips"] = [{"name": "a", "file": "clips/001.mid"}]
            members["manifest.json"] = json.dumps(manifest).encode()
            members["clips/001.mid"] = b"MThd garbage"
        elif content == "zip-clips-not-a-list":
            members["manifest.json"] = json.dumps({**manifest, "clips": "x"}).encode()
        with zipfile.ZipFile(path, "w") as archive:
            for name, payload in members.items():
                archive.writestr(name, payload)
    with pytest.raises(CadenzaError) as info:
        read_session(path)
    assert "\n" not in str(info.value) and "broken.cadenza" in str(info.value)


def test_an_instrument_survives_a_session_file(tmp_path, flute_instrument_dir):
    """A workspace's instrument (its WAVs, SFZ and JSON) is written beside its results and read
    back byte for byte; WAVs stored as they are, the SFZ deflated; an older session without it
    reads as before."""
    files = instrument_files(flute_instrument_dir)
    assert sorted(n.rsplit(".", 1)[1] for n in files) == ["sfz"] + ["wav"] * 4
    data = SessionData(results={"Morph": Results(instrument=files)})
    path = write_session(tmp_path / "i.cadenza", data)
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        members = manifest["results"]["Morph"]["instrument"]
        assert members == [f"results/morph-instrument/{n}" for n in sorted(files)]
        kinds = {i.filename.rsplit(".", 1)[1]: i.compress_type for i in archive.infolist()
                 if i.filename.startswith("results/")}
        assert kinds == {"wav": zipfile.ZIP_STORED, "sfz": zipfile.ZIP_DEFLATED}
    back = read_session(path).results["Morph"]
    assert back.instrument == files and back.audio is None and back.sequences == []
    older = write_session(tmp_path / "o.cadenza", SessionData(
        results={"Morph": Results(names=["x"], meta={"xy": [0.1, 0.2]})}))
    assert read_session(older).results["Morph"].instrument is None


@pytest.mark.parametrize(("hostile", "why"), [
    ("dotdot", "not a plain member name"),
    ("missing", "is missing"),
    ("two-sfz", "exactly one SFZ, not 2"),
    ("no-sfz", "exactly one SFZ, not 0"),
    ("suffix", "'run.sh' is not a WAV, SFZ or JSON file name"),
    ("hidden", "'.bashrc.wav' is not a WAV, SFZ or JSON file name"),
    ("backslash", "not a plain member name"),
    ("not-a-list", "not a list"),
    ("too-many", "135 files, more than 130"),
])
def test_a_hostile_instrument_in_a_session_is_one_line(tmp_path, flute_instrument_dir,
                                                         hostile, why):
    files = instrument_files(flute_instrument_dir)
    good = write_session(tmp_path / "good.cadenza",
                         SessionData(results={"Morph": Results(instrument=files)}))
    with zipfile.ZipFile(good) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    manifest = json.loads(members["manifest.json"])
    listed = manifest["results"]["Morph"]["instrument"]
    wav = next(m for m in listed if m.endswith(".wav"))
    sfz = next(m for m in listed if m.endswith(".sfz"))
    if hostile == "dotdot":
        members["results/morph-instrument/../evil.wav"] = members[wav]
        listed.append("results/morph-instrument/../evil.wav")
    elif hostile == "missing":
        del members[wav]
    elif hostile == "two-sfz":
        members["results/morph-instrument/other.sfz"] = members[sfz]
        listed.append("results/morph-instrument/other.sfz")
    elif hostile == "no-sfz":
        listed.remove(sfz)
    elif hostile == "suffix":
        members["results/morph-instrument/run.sh"] = b"#!/bin/sh\nrm -rf ~\n"
        listed.append("results/morph-instrument/run.sh")
    elif hostile == "hidden":
        members["results/morph-instrument/.bashrc.wav"] = members[wav]
        listed.append("results/morph-instrument/.bashrc.wav")
    elif hostile == "backslash":
        members["results/morph-instrument/..\\x.wav"] = members[wav]
        listed.append("results/morph-instrument/..\\x.wav")
    elif hostile == "not-a-list":
        manifest["results"]["Morph"]["instrument"] = "results/morph-instrument"
    elif hostile == "too-many":
        listed.extend(f"results/morph-instrument/n{i}.wav" for i in range(130))
        for name in listed:
            members.setdefault(name, members[wav])
    members["manifest.json"] = json.dumps(manifest).encode()
    path = tmp_path / "hostile.cadenza"
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    with pytest.raises(CadenzaError) as info:
        read_session(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith("hostile.cadenza: broken session file ("), text
    assert text.startswith("hostile.cadenza: broken session file (the instrument of Morph: ")
    assert why in text


def test_a_broken_autosave_starts_empty_with_one_line(qtbot, tmp_path, state_home):
    folder = state_home / "cadenza"
    folder.mkdir(parents=True)
    (folder / AUTOSAVE_NAME).write_bytes(b"PK\x03\x04 truncated by a crash")
    win = _window(qtbot, tmp_path)
    qtbot.waitUntil(lambda: "Could not restore the last session" in win.last_message)
    assert win.library.clips() == [] and "\n" not in win.last_message
    assert list(folder.glob("autosave.broken-*.cadenza"))  # the broken file is kept aside


# ---------------------------------------------------------------------- restore
def test_relaunch_restores_clips_results_settings_and_layout(qtbot, tmp_path, short_piano_clip,
                                                             wav_file, state_home):
    win = _window(qtbot, tmp_path)
    win.add_clip(short_piano_clip)
    win.open_files([wav_file])
    seq = short_piano_clip.sequence
    cont = win.workspaces["Continue"]
    cont.length.setValue(12.5)
    cont.show_variations([seq, seq.trim(0.0, 3.0)], boundary=3.0)
    inter = win.workspaces["Interpolate"]
    inter.steps.setValue(7)
    from app.jobs import InterpolateResult

    inter.show_result(InterpolateResult([seq.trim(0.0, 2.0), seq.trim(2.0, 4.0)], 2.0), "sample")
    morph = win.workspaces["Morph"]
    tone = win.library.clips()[1]
    morph.show_result(tone.audio)
    win.live_panel.tempo_spin.setValue(88)
    win.live_panel.quantize_combo.setCurrentIndex(2)  # soft
    win.show_workspace("Interpolate")
    win.library.select(short_piano_clip)
    _saved(win, qtbot)
    assert (state_home / "cadenza" / AUTOSAVE_NAME).is_file()
    win.close()

    again = _window(qtbot, tmp_path)
    assert [c.name for c in again.library.clips()] == [short_piano_clip.name, "tone"]
    assert again.library.current_clip().name == short_piano_clip.name
    ws = again.workspaces["Continue"]
    assert [len(c.sequence.notes) for c in ws.cards] == [len(seq.notes),
                                                         len(seq.trim(0.0, 3.0).notes)]
    assert ws.length.value() == 12.5
    inter2 = again.workspaces["Interpolate"]
    assert inter2.steps.value() == 7
    assert [c.name for c in inter2.cards] == ["sample 1/2", "sample 2/2"]
    assert inter2.result is not None and inter2.result.seconds_each == 2.0
    assert inter2.joined().total_time > 2.0
    morph2 = again.workspaces["Morph"]
    assert morph2.has_results() and morph2.keep_button.isEnabled()
    assert morph2.session_results().audio.samples.shape == tone.audio.samples.shape
    assert again.live_panel.tempo_spin.value() == 88
    assert again.live_panel.quantize_combo.currentData() == 0.5
    assert again.tabs.currentWidget() is again.workspaces["Interpolate"]
    assert ws.primer.currentText() == short_piano_clip.name
    # nothing is ever unsaved: closing asks nothing, and the undo history starts afresh
    assert not again.library.undo_stack.canUndo()


def _flute_on(morph, folder: Path) -> None:  # type: ignore[no-untyped-def]
    """A real instrument on the Morph workspace, as its build job leaves one: a folder made
    for it, loaded, and its files read once."""
    from models.nsynth.instrument import MorphInstrument

    morph._instrument_folders.append(folder)
    morph._instrument_loaded(MorphInstrument.load(folder), folder, instrument_files(folder))


def _same_instrument(a, b) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    assert a.pitches == b.pitches and a.sample_rate == b.sample_rate
    assert a.ranges == b.ranges and a.release == b.release and a.loops == b.loops
    for pitch in a.pitches:
        assert np.array_equal(a.samples[pitch], b.samples[pitch])


def test_relaunch_restores_the_morph_instrument(qtbot, tmp_path, flute_instrument_dir,
                                                wav_file, state_home):
    """An instrument made in Morph is autosaved (its being ready is a change) and is back after
    a restart: the same notes, offered to the Live panel, in a temporary folder of its own that
    goes with the window."""
    import shutil

    from models.nsynth.instrument import MorphInstrument

    win = _window(qtbot, tmp_path)
    win.open_files([wav_file])
    morph = win.workspaces["Morph"]
    morph.show_result(win.library.clips()[0].audio)
    _saved(win, qtbot)
    folder = tmp_path / "made"
    shutil.copytree(flute_instrument_dir, folder)
    # its being ready is a change of the workspace's: the session is saved (no
    # schedule_autosave() here)
    with qtbot.waitSignals([morph.state_changed, win.session_saved], timeout=20000):
        _flute_on(morph, folder)
    made = morph.instrument
    assert win.morph_instrument is made
    with zipfile.ZipFile(state_home / "cadenza" / AUTOSAVE_NAME) as archive:
        assert "results/morph-instrument/instrument.sfz" in archive.namelist()
    win.close()

    again = _window(qtbot, tmp_path)
    morph2 = again.workspaces["Morph"]
    qtbot.waitUntil(lambda: morph2.instrument is not None, timeout=20000)
    restored = morph2.instrument
    _same_instrument(restored, made)
    _same_instrument(restored, MorphInstrument.load(flute_instrument_dir))
    assert again.morph_instrument is restored  # instrument_ready reached the window
    assert again.live_panel.instrument is restored
    assert morph2.has_results() and morph2.test_note.isEnabled()
    assert morph2.export_instrument_button.isEnabled()
    assert morph2.instrument_label.text().startswith("Ready: 4 notes from C3 to C5")
    inst_dir = morph2.instrument_dir
    assert inst_dir.name.startswith("cadenza-instrument-") and inst_dir != folder
    assert not folder.exists()  # the first window's folder went with it
    assert sorted(p.name for p in inst_dir.iterdir()) == sorted(
        p.name for p in flute_instrument_dir.iterdir())
    # it is kept in the next autosave too, and its folder goes with the window
    assert morph2.session_results().instrument == instrument_files(flute_instrument_dir)
    again.close()
    assert not inst_dir.exists()


def test_an_instrument_without_a_morph_result_is_kept(qtbot, tmp_path, flute_instrument_dir):
    """An instrument alone (no morph result shown) is saved and opened again."""
    import shutil

    win = _window(qtbot, tmp_path)
    morph = win.workspaces["Morph"]
    folder = tmp_path / "made"
    shutil.copytree(flute_instrument_dir, folder)
    _flute_on(morph, folder)
    assert not morph.has_results()
    path = win.save_session(tmp_path / "inst")
    res = read_session(path).results["Morph"]
    assert res.audio is None and res.instrument == instrument_files(flute_instrument_dir)

    again = _window(qtbot, tmp_path / "again")
    morph2 = again.workspaces["Morph"]
    ready: list[object] = []
    morph2.instrument_ready.connect(ready.append)
    assert again.open_session(path)
    qtbot.waitUntil(lambda: bool(ready), timeout=20000)
    assert ready == [morph2.instrument] and not morph2.has_results()
    _same_instrument(morph2.instrument, morph.instrument)


def test_a_made_instrument_is_kept_in_the_session(qtbot, tmp_path, state_home):
    """Make instrument (the shipped DDSP model, one pitch, two General MIDI sources): its files
    are read once when it is ready and saved with the session, without a morph result."""
    win = _window(qtbot, tmp_path)
    morph = win.workspaces["Morph"]
    from models.registry import ModelRegistry

    win._models_listed([e for e in ModelRegistry().list() if e.has_weights])  # as at start
    morph.model_combo.setCurrentIndex(morph.model_combo.findData("ddsp-small"))
    assert morph.current_model() == "ddsp-small"
    morph.slots[0].use_gm(0, 60)
    morph.slots[1].use_gm(73, 72)
    morph.instrument_pitches = [60]
    morph.export_rate.setCurrentIndex(morph.export_rate.findData(0))  # the model's 16 kHz
    ready: list[object] = []
    morph.instrument_ready.connect(ready.append)
    morph.make_instrument.click()
    qtbot.waitUntil(lambda: not morph.running, timeout=300000)
    assert ready == [morph.instrument] and morph.instrument.pitches == [60]
    files = instrument_files(morph.instrument_dir)
    assert sorted(files) == ["instrument.json", "instrument.sfz", "morph-p060.wav"]
    kept = morph.session_results()
    assert kept.audio is None and kept.instrument == files
    _saved(win, qtbot)
    back = read_session(state_home / "cadenza" / AUTOSAVE_NAME).results["Morph"]
    assert back.instrument == files


def test_a_broken_instrument_in_a_session_leaves_the_rest(qtbot, tmp_path,
                                                          flute_instrument_dir, wav_file):
    """A session whose instrument does not load (its SFZ plays a sample it lacks) still
    restores its clips and morph result; the label says so in one line."""
    from app.clips import load_clip

    files = instrument_files(flute_instrument_dir)
    files.pop(next(n for n in files if n.endswith(".wav")))
    tone = load_clip(wav_file)
    path = write_session(tmp_path / "b.cadenza", SessionData(
        clips=[tone], results={"Morph": Results(audio=tone.audio, names=["m"],
                                                instrument=files)}))
    win = _window(qtbot, tmp_path)
    morph = win.workspaces["Morph"]
    assert win.open_session(path)
    label = morph.instrument_label
    qtbot.waitUntil(lambda: "could not be loaded" in label.text(), timeout=20000)
    assert label.text().startswith("The saved instrument could not be loaded: ")
    assert "does not exist" in label.text() and "\n" not in label.text()
    assert morph.instrument is None and not morph.test_note.isEnabled()
    assert [c.name for c in win.library.clips()] == ["tone"] and morph.has_results()
    assert not morph.error_label.isVisible() and not morph.results_stale
    assert morph._instrument_folders == []  # its folder went
    assert morph.session_results().instrument is None


def test_save_and_open_session_and_recent(qtbot, tmp_path, short_piano_clip, wav_file):
    win = _window(qtbot, tmp_path)
    win.add_clip(short_piano_clip)
    win.open_files([wav_file])
    path = win.save_session(tmp_path / "mine")
    assert path == tmp_path / "mine.cadenza" and path.is_file()
    win.library.remove(short_piano_clip)
    assert [c.name for c in win.library.clips()] == ["tone"]
    assert win.open_session(path)
    assert [c.name for c in win.library.clips()] == [short_piano_clip.name, "tone"]
    recent = read_recent(win.state_folder)
    assert recent["sessions"] == [str(path.resolve())]
    assert recent["files"] == [str(wav_file.resolve())]
    win._fill_recent_menu()  # what File ▸ Open Recent shows
    names = [a.text() for a in win.recent_menu.actions() if not a.isSeparator()]
    assert names == ["mine.cadenza", "tone.wav"]
    bad = tmp_path / "bad.cadenza"
    bad.write_text("nonsense")
    assert not win.open_session(bad)
    assert win.last_message.startswith("Could not open the session: bad.cadenza")
    assert [c.name for c in win.library.clips()] == [short_piano_clip.name, "tone"]


def _run_driver(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DRIVER), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _line(proc: subprocess.Popen, tag: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1:])
    proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    raise AssertionError(f"no {tag} line; stderr:\n{err[-3000:]}")


def test_relaunch_after_sigkill_restores_the_session(tmp_path, piano_file, wav_file,
                                                     artifacts_dir):
    """The real app in a process of its own: clips opened, a result shown, then SIGKILL; a
    second start shows the same clips and results (screenshots before and after)."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"),
           "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    before_png = artifacts_dir / "session-before-kill.png"
    after_png = artifacts_dir / "session-after-kill.png"
    first = _run_driver([str(tmp_path / "settings"), str(before_png), str(piano_file),
                         str(wav_file)], env)
    try:
        saved = _line(first, "SAVED", 120)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    assert saved["clips"] == [piano_file.stem, "tone"] and len(saved["variations"]) == 2
    second = _run_driver([str(tmp_path / "settings"), str(after_png)], env)
    try:
        restored = _line(second, "RESTORED", 120)
        second.wait(60)
    finally:
        if second.poll() is None:
            second.kill()
    assert restored == saved
    assert before_png.stat().st_size > 10_000 and after_png.stat().st_size > 10_000


# ---------------------------------------------------------------------- undo and redo
def test_undo_redo_of_every_library_change(window, qtbot, short_piano_clip, wav_file):
    lib = window.library
    window.add_clip(short_piano_clip)
    (tone,) = window.open_files([wav_file])
    names = lambda: [c.name for c in lib.clips()]  # noqa: E731
    lib.rename(short_piano_clip, "Idea")
    lib.move(tone, 0)
    assert names() == ["tone", "Idea"]
    lib.remove(tone)
    assert names() == ["Idea"]
    window.undo_action.trigger()  # remove undone: back in its place
    assert names() == ["tone", "Idea"]
    window.undo_action.trigger()  # move
    assert names() == ["Idea", "tone"]
    window.undo_action.trigger()  # rename
    assert names() == [short_piano_clip.name, "tone"]
    assert window.workspaces["Continue"].primer.itemText(1) == short_piano_clip.name
    window.undo_action.trigger()  # open
    assert names() == [short_piano_clip.name]
    window.undo_action.trigger()  # add
    assert names() == [] and window.clip_stack.currentWidget() is window.empty_view
    for _ in range(5):
        window.redo_action.trigger()
    assert names() == ["Idea"]  # all five again: added, opened, renamed, moved, removed
    assert not window.redo_action.isEnabled()
    assert window.undo_action.shortcut().toString() == "Ctrl+Z"
    assert "Ctrl+Shift+Z" in [s.toString() for s in window.redo_action.shortcuts()]


def test_keyboard_undo_delete_and_no_rename_on_click(window, qtbot, short_piano_clip, wav_file):
    lib = window.library
    window.add_clip(short_piano_clip)
    (tone,) = window.open_files([wav_file])
    lib.select(tone)
    # a click on the selected clip does not start a rename; Delete then removes the clip
    rect = lib.list.visualItemRect(lib.list.currentItem())
    qtbot.mouseClick(lib.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.wait(700)  # past the double-click interval, when a rename used to start
    assert lib.list.state() != lib.list.State.EditingState
    lib.list.setFocus()
    qtbot.keyClick(lib.list, Qt.Key.Key_Delete)
    assert [c.name for c in lib.clips()] == [short_piano_clip.name]
    window.activateWindow()
    qtbot.keyClick(lib.list, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [c.name for c in lib.clips()] == [short_piano_clip.name, "tone"]
    qtbot.keyClick(lib.list, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier
                   | Qt.KeyboardModifier.ShiftModifier)
    assert [c.name for c in lib.clips()] == [short_piano_clip.name]
    # a blank name (an edit emptied) is refused; the name stays
    item = lib.list.item(0)
    item.setText("   ")
    assert short_piano_clip.name == item.text() != ""


def test_keeping_results_is_undoable_and_examples_are_not_duplicated(window, short_piano_clip):
    window.open_examples()
    count = len(window.library.clips())
    assert count == 8
    assert window.open_examples() == []
    assert len(window.library.clips()) == 8
    assert window.last_message == "The examples are already in the library"
    cont = window.workspaces["Continue"]
    seq = short_piano_clip.sequence
    cont.show_variations([seq], boundary=1.0)
    cont.cards[0].buttons["keep"].click()
    assert window.library.clips()[-1].name.endswith("variation 1")
    assert window.library.undo_stack.undoText().startswith("Keep ")
    window.undo_action.trigger()
    assert len(window.library.clips()) == 8


def test_a_duet_answer_is_kept_with_one_click(window, short_piano_clip):
    from app.duet import Round
    from models.sequence import NoteSequence

    panel = window.live_panel
    assert not panel.keep_answer_button.isEnabled()
    answer = short_piano_clip.sequence.trim(0.0, 2.0)
    panel.last_round = Round(index=3, reason="pause", call=NoteSequence(), call_started=0.0,
                             detected_at=0.0, answer=answer)
    panel.keep_answer_button.setEnabled(True)
    panel.keep_answer_button.click()
    kept = window.library.clips()[-1]
    assert kept.name == "Duet answer 3" and len(kept.sequence.notes) == len(answer.notes)
    assert kept.tempo is None  # sync off: as played
    window.undo_action.trigger()
    assert window.library.clips() == []
    # With sync on, a kept answer has the session tempo and starts on the bar it was played in.
    box = panel.sync_box
    box.tempo_spin.setValue(90.0)
    box.run_button.click()
    try:
        first_at = box.next_time(time.perf_counter(), 4.0) + 1.5  # 2.25 beats into a bar
        panel.last_round.first_note_at = first_at
        panel.keep_answer_button.click()
        kept = window.library.clips()[-1]
        assert kept.tempo == 90.0 and kept.sequence.tempos[0].qpm == 90.0
        first = min(n.start for n in kept.sequence.notes)
        assert first == pytest.approx(1.5, abs=1e-3)  # as far into its first bar
        assert len(kept.sequence.notes) == len(answer.notes)
    finally:
        box.run_button.click()


# ---------------------------------------------------------------------- inline errors
def test_a_failed_job_shows_its_message_in_the_workspace(window, qtbot, short_piano_clip,
                                                         artifacts_dir):
    ws = window.workspaces["Continue"]
    ws.show_variations([short_piano_clip.sequence], boundary=1.0)
    long = "the model could not continue this primer because " + "it is far too long " * 8

    def fails(_ctx):  # type: ignore[no-untyped-def]
        raise CadenzaError(long.strip())

    ws.submit(fails, lambda _r: None, "generate")
    qtbot.waitUntil(lambda: ws.error_label.isVisible(), timeout=20000)
    assert "Generate failed: the model could not continue" in ws.error_label.text()
    assert ws.error_label.text().rstrip().endswith("(The results below are from an earlier "
                                                   "run.)")
    assert ws.results_stale
    assert ws.cards[0].panel.bar.title.text().endswith("(from an earlier run)")
    window.show_workspace("Continue")
    qtbot.wait(50)
    window.grab().save(str(artifacts_dir / "workspace-inline-error.png"))
    ws.submit(lambda _ctx: 1, lambda _r: None, "generate")
    qtbot.waitUntil(lambda: not ws.error_label.isVisible(), timeout=20000)
    assert not ws.results_stale
    assert not ws.cards[0].panel.bar.title.text().endswith("(from an earlier run)")


# ---------------------------------------------------------------------- settings
def test_a_pickled_object_in_the_settings_file_is_never_constructed(tmp_path, settings_dir):
    marker = tmp_path / "constructed"
    script = f"""
import os
from PySide6.QtCore import QSettings
class Evil:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
s = QSettings({str(tmp_path / 'evil.ini')!r}, QSettings.Format.IniFormat)
s.setValue("prefs/theme", Evil())
s.setValue("prefs/soundfont", Evil())
s.setValue("prefs/midi_out", "Synth, the one")
s.sync()
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    assert "@Variant" in (tmp_path / "evil.ini").read_text(errors="replace")
    assert not marker.exists()
    location = Path(open_qsettings().fileName())
    location.parent.mkdir(parents=True)
    location.write_bytes((tmp_path / "evil.ini").read_bytes())
    settings = load_settings()
    assert not marker.exists()
    assert settings.theme == "dark" and settings.soundfont == ""
    assert settings.midi_out == "Synth, the one"  # plain strings QSettings wrote still read
    save_settings(Settings(theme="light"))  # writing does not read it through Qt either
    assert not marker.exists()
    assert load_settings().theme == "light"
    # and a QSettings-written plain file (quotes, escapes) reads back as the same values
    qs = QSettings(str(tmp_path / "plain.ini"), QSettings.Format.IniFormat)
    qs.setValue("prefs/soundfont", '/x/a "b", c; d.sf2')
    qs.setValue("prefs/audio_device", "@home")
    qs.sync()
    store = SettingsStore(tmp_path / "plain.ini")
    assert store.value("prefs/soundfont") == '/x/a "b", c; d.sf2'
    assert store.value("prefs/audio_device") == "@home"
    store.setValue("prefs/audio_device", "@home, again")
    back = QSettings(str(tmp_path / "plain.ini"), QSettings.Format.IniFormat)
    assert back.value("prefs/audio_device") == "@home, again"
