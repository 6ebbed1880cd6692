"""Files open in Cadenza (``cadenza FILE...``), the audio formats musicians use in the app and the
CLI, ``devices --json``, ``-o -`` for pipes, and dragged-out clips kept in a per-user folder.

Real parts throughout: the real ``main()`` and ``run_app`` with the window offscreen, real files
written and read by libsndfile, the real CLI in a process of its own.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

from app.clips import AUDIO_SUFFIXES, Clip
from models.audio_io import AUDIO_EXTENSIONS, Audio, read_audio, write_audio
from models.midi_io import read_midi

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "assets" / "examples"
LONG = 60_000


def cadenza(*args: str, env: dict[str, str] | None = None, drop: tuple[str, ...] = (),
            timeout: float = 180) -> subprocess.CompletedProcess:
    """The real ``cadenza`` command in a process of its own; stdout as bytes."""
    full = {k: v for k, v in os.environ.items() if k not in drop}
    full.update(env or {})
    full.setdefault("JACK_NO_START_SERVER", "1")
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True,
                          timeout=timeout, env=full)


def tone(sample_rate: int = 44100, seconds: float = 0.6) -> Audio:
    t = np.arange(round(sample_rate * seconds)) / sample_rate
    x = 0.4 * np.sin(2 * np.pi * 330 * t) * np.linspace(1, 0.2, t.size)
    return Audio(np.stack([x, 0.7 * x], axis=1).astype(np.float32), sample_rate)


# ---------------------------------------------------------------------- cadenza FILE...
def test_the_app_and_the_models_agree_on_the_audio_extensions():
    from app.cli import OPENABLE_SUFFIXES

    assert set(AUDIO_SUFFIXES) == set(AUDIO_EXTENSIONS)
    assert set(OPENABLE_SUFFIXES) == {".mid", ".midi", ".musicxml", ".xml", ".mxl",
                                      *AUDIO_EXTENSIONS}


def test_cadenza_files_opens_the_window_with_both_clips(qtbot, tmp_path, monkeypatch,
                                                        artifacts_dir):
    """``cadenza some.mid other.wav missing.mid`` through the real ``main()`` and ``run_app``:
    the window opens with both clips; the missing file is one status-bar reason."""
    from app import cli, main_window

    some = tmp_path / "some.mid"
    other = tmp_path / "other.wav"
    shutil.copy(EXAMPLES / "piano-phrase.mid", some)
    shutil.copy(EXAMPLES / "sound-cello.wav", other)
    missing = tmp_path / "missing.mid"
    seen: dict[str, object] = {}
    real_run_app = main_window.run_app

    def on_shown(win):
        def look():
            seen["clips"] = [(c.name, c.kind) for c in win.library.clips()]
            seen["message"] = win.last_message
            seen["status"] = win.statusBar().currentMessage()
            win.library.select(win.library.clips()[0])
            win.resize(1280, 800)
            QApplication.processEvents()
            shot = artifacts_dir / "screenshot-cadenza-some-mid-other-wav.png"
            win.grab().save(str(shot))
            seen["shot"] = shot
            win.close()
            QApplication.instance().quit()

        QTimer.singleShot(400, look)

    def run_app(argv, files=()):
        seen["argv"] = list(argv)
        return real_run_app(argv, on_shown=on_shown, files=files)

    def end_process(code):
        raise SystemExit(code)

    monkeypatch.setattr(main_window, "run_app", run_app)
    monkeypatch.setattr(main_window, "end_process", end_process)
    # The event loop ends by quit() alone (not also by the last window closing, which would
    # leave the posted quit for the next test's event loop).
    qapp = main_window.create_app()
    qapp.setQuitOnLastWindowClosed(False)
    try:
        with pytest.raises(SystemExit) as ended:
            cli.main([str(some), str(other), str(missing)])
    finally:
        qapp.setQuitOnLastWindowClosed(True)
    assert ended.value.code == 0
    assert seen["argv"] == []  # the files are not passed to Qt as its own arguments
    assert seen["clips"] == [("some", "MIDI"), ("other", "audio")]
    message = str(seen["message"])
    assert message == seen["status"] and "\n" not in message
    assert message.startswith("Opened some, other; Could not open: no such file:")
    assert "missing.mid" in message
    assert Path(seen["shot"]).stat().st_size > 10_000


def test_cadenza_file_in_a_real_process_opens_it(tmp_path):
    """The command a desktop runs for "Open with Cadenza": the window comes up offscreen and
    says what it opened (its log); then it is ended."""
    some = tmp_path / "some.mid"
    other = tmp_path / "other.flac"
    shutil.copy(EXAMPLES / "melody-a.mid", some)
    write_audio(other, read_audio(EXAMPLES / "sound-flute.wav"))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", JACK_NO_START_SERVER="1",
               JACK_DEFAULT_SERVER="cadenza-nowhere", CADENZA_DEVICE="cpu",
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.Popen([sys.executable, "-m", "app", str(some), str(other)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if "Opened" in line or "Could not open" in line:
                break
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert any(line.endswith("Opened some, other") for line in lines), lines


def test_no_display_is_one_clear_line_and_exit_2(tmp_path):
    some = tmp_path / "some.mid"
    shutil.copy(EXAMPLES / "melody-a.mid", some)
    for args in ((str(some),), ()):
        result = cadenza(*args, drop=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"),
                         timeout=60)
        err = result.stderr.decode()
        assert result.returncode == 2, err
        assert err.count("\n") == 1 and err.startswith("cadenza: error: ")
        assert "no display" in err and "QT_QPA_PLATFORM=offscreen" in err


def test_what_counts_as_files_and_as_a_display(tmp_path):
    from app.cli import display_problem, file_arguments

    song = tmp_path / "song"  # an existing file without an extension
    song.write_bytes(b"MThd")
    assert file_arguments([str(song)]) == [str(song)]
    assert file_arguments(["missing.mid", "x.ogg"]) == ["missing.mid", "x.ogg"]
    assert file_arguments(["render", "a.mid"]) is None  # a command
    assert file_arguments(["renderr"]) is None  # a typo stays argparse's "invalid choice"
    assert file_arguments(["a.mid", "--seconds", "3"]) is None
    linux = "linux"
    assert display_problem({}, linux) is not None
    assert display_problem({"DISPLAY": ":0"}, linux) is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, linux) is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, linux) is None
    assert display_problem({"QT_QPA_PLATFORM": "xcb"}, linux) is not None
    assert display_problem({"QT_QPA_PLATFORM": "wayland;xcb"}, linux) is not None
    assert display_problem({}, "darwin") is None


# ---------------------------------------------------------------------- formats in the app
def test_every_audio_format_opens_and_drops_into_the_library(window, tmp_path):
    files = []
    for ext in (".flac", ".ogg", ".mp3", ".aiff", ".aif"):
        path = tmp_path / f"take{ext.replace('.', '-')}{ext}"
        write_audio(path, tone(44100))
        files.append(path)
    added = window.open_files(files[:3])
    assert [c.kind for c in added] == ["audio"] * 3
    assert all(abs(c.duration - 0.6) < 0.06 for c in added)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in files[3:]])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.library.list.dropEvent(event)
    assert event.isAccepted()
    assert [c.name for c in window.library.clips()] == [p.stem for p in files]
    from app.clips import OPEN_FILTER

    for ext in (*AUDIO_SUFFIXES, ".musicxml", ".xml", ".mxl"):
        assert f"*{ext}" in OPEN_FILTER.split(";;")[0]  # "Music files": everything
    assert "MusicXML (*.musicxml *.xml *.mxl)" in OPEN_FILTER


@pytest.mark.parametrize(("name", "rate", "subtype", "container", "written"), [
    ("hi.flac", 96000, "PCM_24", "FLAC", "PCM_24"),
    ("dawrate.aiff", 48000, "FLOAT", "AIFF", "FLOAT"),
    ("cd.wav", 44100, "PCM_16", "WAV", "PCM_16"),
    ("share.mp3", 48000, "PCM_24", "MP3", "MPEG_LAYER_III"),
    ("share.ogg", 96000, "FLOAT", "OGG", "VORBIS"),
])
def test_the_app_exports_a_midi_clip_at_any_rate_and_depth(window, qtbot, tmp_path, name, rate,
                                                          subtype, container, written):
    (clip,) = window.open_files([EXAMPLES / "melody-a.mid"])
    path = tmp_path / name
    with qtbot.waitSignal(window.exported, timeout=LONG) as blocker:
        window.export_wav(path, rate=rate, subtype=subtype)
    assert blocker.args == [str(path)]
    info = soundfile.info(str(path))
    assert (info.format, info.subtype, info.samplerate) == (container, written, rate)
    audio = read_audio(path)
    assert audio.duration > clip.duration * 0.9 and np.abs(audio.samples).max() > 0.01


def test_the_export_dialog_offers_formats_rates_and_depths(qtbot, tmp_path, artifacts_dir):
    from app.widgets.export_dialog import AudioExportDialog

    dialog = AudioExportDialog("my take", folder=tmp_path, own_rate=16000)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.choice().path == tmp_path / "my take.wav"
    assert dialog.choice().rate == 0  # the clip's own, unless chosen
    assert [dialog.rate.itemData(i) for i in range(dialog.rate.count())] == [0, 44100, 48000,
                                                                            96000]
    assert [dialog.depth.itemData(i) for i in range(dialog.depth.count())] == [
        "PCM_16", "PCM_24", "FLOAT"]
    dialog.set_subtype("FLOAT")
    dialog.set_format("FLAC")  # FLAC has no float: 24-bit instead
    assert dialog.choice().path == tmp_path / "my take.flac"
    assert dialog.choice().subtype == "PCM_24"
    dialog.set_format("MP3")
    dialog.set_rate(96000)
    assert not dialog.save_button.isEnabled() and "48 kHz" in dialog.note.text()
    dialog.grab().save(str(artifacts_dir / "screenshot-export-audio-dialog.png"))
    assert not dialog.depth.isEnabled()
    dialog.set_rate(48000)
    assert dialog.save_button.isEnabled()
    dialog.path.setText(str(tmp_path / "x.aif"))  # typing an extension picks its format
    assert dialog.format.currentData() == "AIFF"
    assert dialog.depth.isEnabled()
    assert dialog.choice().describe() == "AIFF, 24-bit, at 48 kHz"


def test_file_export_audio_writes_what_the_dialog_chose(window, qtbot, tmp_path):
    from app.widgets.export_dialog import AudioExportDialog

    window.open_files([EXAMPLES / "sound-organ.wav"])
    target = tmp_path / "organ 48k.flac"
    chosen: list[str] = []

    def fill():
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, AudioExportDialog)
        chosen.append(dialog.rate.currentText())
        dialog.path.setText(str(target))
        dialog.set_rate(48000)
        dialog.set_subtype("PCM_24")
        dialog.accept()

    QTimer.singleShot(200, fill)
    with qtbot.waitSignal(window.exported, timeout=LONG):
        window.export_wav_dialog()
    assert chosen and chosen[0].startswith("As is (")
    info = soundfile.info(str(target))
    assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_24", 48000)
    source = read_audio(EXAMPLES / "sound-organ.wav")
    assert abs(info.duration - source.duration) < 0.01


# ---------------------------------------------------------------------- MusicXML
def _with_open_list(qtbot, dialog):  # type: ignore[no-untyped-def]
    """The dialog with its format list open, as one picture (the list is a window of its own)."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QPainter, QPixmap

    dialog.format.showPopup()
    qtbot.wait(100)
    popup = dialog.format.view().window()
    base, listed = dialog.grab(), popup.grab()
    at = popup.mapToGlobal(QPoint(0, 0)) - dialog.mapToGlobal(QPoint(0, 0))
    top = min(0, at.y())
    canvas = QPixmap(base.width(), max(base.height(), at.y() + listed.height()) - top)
    canvas.fill(dialog.palette().window().color())
    painter = QPainter(canvas)
    painter.drawPixmap(0, -top, base)
    painter.drawPixmap(at.x(), at.y() - top, listed)
    painter.end()
    dialog.format.hidePopup()
    return canvas


def test_the_export_dialog_offers_musicxml_for_notes(qtbot, tmp_path, artifacts_dir):
    """For a MIDI clip or result the dialog offers the notes themselves (MIDI, MusicXML, .mxl)
    beside the audio formats; for audio it does not. Notes have no rate or sample format."""
    from app.widgets.export_dialog import AudioExportDialog

    audio_only = AudioExportDialog("take", folder=tmp_path)
    qtbot.addWidget(audio_only)
    assert audio_only.formats() == ["WAV", "FLAC", "AIFF", "OGG", "MP3"]
    assert audio_only.windowTitle() == "Export audio"

    dialog = AudioExportDialog("my tune", folder=tmp_path, notation=True)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.formats() == ["WAV", "FLAC", "AIFF", "OGG", "MP3", "MIDI", "MUSICXML", "MXL"]
    assert dialog.choice().path == tmp_path / "my tune.wav" and not dialog.choice().is_notation
    dialog.set_format("MUSICXML")
    choice = dialog.choice()
    assert choice.path == tmp_path / "my tune.musicxml" and choice.is_notation
    assert choice.describe() == "MusicXML"
    assert not dialog.rate.isEnabled() and not dialog.depth.isEnabled()
    assert dialog.save_button.isEnabled() and "MuseScore" in dialog.note.text()
    shot = _with_open_list(qtbot, dialog)
    shots = Path("/tmp/shots")
    shots.mkdir(parents=True, exist_ok=True)
    assert shot.save(str(shots / "musicxml-export.png"))
    shot.save(str(artifacts_dir / "screenshot-export-musicxml-dialog.png"))
    dialog.path.setText(str(tmp_path / "my tune.mxl"))  # typing an extension picks its format
    assert dialog.format.currentData() == "MXL" and dialog.choice().container == "MXL"
    dialog.path.setText(str(tmp_path / "my tune.xml"))
    assert dialog.format.currentData() == "MUSICXML"
    assert dialog.choice().path == tmp_path / "my tune.xml"
    dialog.set_format("WAV")  # back to audio: the rate and depth come back
    assert dialog.choice().path == tmp_path / "my tune.wav" and dialog.rate.isEnabled()


def test_file_export_writes_musicxml_that_the_dialog_chose(window, qtbot, tmp_path,
                                                          datasets_dir):
    """A Nottingham jig opened as MIDI, exported through File ▸ Export Audio's dialog as
    MusicXML (in the worker), and opened again: the same notes, tempo and 6/8."""
    from app.widgets.export_dialog import AudioExportDialog

    source = datasets_dir / "melody" / "nottingham" / "jigs1.mid"
    window.open_files([source])
    target = tmp_path / "jig.musicxml"
    offered: list[list[str]] = []

    def fill():
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, AudioExportDialog)
        offered.append(dialog.formats())
        dialog.set_format("MUSICXML")
        dialog.path.setText(str(target))
        dialog.accept()

    QTimer.singleShot(200, fill)
    with qtbot.waitSignal(window.exported, timeout=LONG) as blocker:
        window.export_wav_dialog()
    assert blocker.args == [str(target)] and "MUSICXML" in offered[0]
    assert b"<score-partwise" in target.read_bytes()

    added = window.open_files([target])
    assert [c.name for c in added] == ["jig"] and added[0].is_midi
    want, got = read_midi(source), added[0].sequence
    assert [(n.pitch, n.start, n.end) for n in got.notes] == [
        (n.pitch, pytest.approx(n.start), pytest.approx(n.end)) for n in want.notes]
    assert (got.qpm, got.time_signature.numerator, got.time_signature.denominator) == (
        want.qpm, 6, 8)


def test_a_result_exports_compressed_musicxml_through_its_export_button(window, qtbot, tmp_path):
    """A workspace result's Export audio… button opens the same dialog; MusicXML, compressed,
    is written in the worker and reads back as the same notes."""
    from app.widgets.export_dialog import AudioExportDialog
    from app.workspaces.base import SequenceCard
    from models.music_files import read_sequence

    seq = read_midi(EXAMPLES / "melody-a.mid")
    card = SequenceCard(window.workspaces["Interpolate"], seq, "melody a")
    qtbot.addWidget(card)
    target = tmp_path / "melody a.mxl"

    def fill():
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, AudioExportDialog) and "MXL" in dialog.formats()
        dialog.set_format("MXL")
        assert dialog.choice().path.suffix == ".mxl"
        dialog.path.setText(str(target))
        dialog.accept()

    QTimer.singleShot(200, fill)
    card.buttons["wav"].click()
    qtbot.waitUntil(target.is_file, timeout=LONG)  # renamed in whole when written
    sixteenth = 60.0 / seq.qpm / 4
    back = read_sequence(target)
    assert [(n.pitch, round(n.start / sixteenth)) for n in back.notes] == [
        (n.pitch, round(n.start / sixteenth)) for n in seq.notes]


def test_a_broken_musicxml_file_is_one_line_in_the_status_bar(window, tmp_path):
    bad = tmp_path / "broken.mxl"
    bad.write_bytes(b"PK\x03\x04 not really an archive")
    assert window.open_files([bad]) == []
    assert "broken.mxl: corrupt compressed MusicXML file" in window.last_message
    assert "\n" not in window.last_message


# ---------------------------------------------------------------------- drag-out folder
def test_dragged_clips_are_kept_in_the_user_folder_under_unique_names(qtbot, data_home):
    from app.widgets.clip_library import ClipLibrary

    seq = read_midi(EXAMPLES / "melody-a.mid")
    library = ClipLibrary()
    qtbot.addWidget(library)
    assert library.drag_folder == data_home / "cadenza" / "exports"
    a, b = Clip("idea", sequence=seq), Clip("idea", sequence=seq.trim(0.0, 2.0))
    audio = Clip("idea", audio=tone())
    for clip in (a, b, audio):
        library.add_clip(clip)
    first = library.export_for_drag(a)
    assert first == data_home / "cadenza" / "exports" / "idea.mid"
    assert library.export_for_drag(a) == first  # the same clip again: the same file
    second = library.export_for_drag(b)
    assert second != first and second.parent == first.parent
    assert second.name.startswith("idea-") and second.suffix == ".mid"
    assert len(read_midi(second).notes) == len(seq.trim(0.0, 2.0).notes)
    assert len(read_midi(first).notes) == len(seq.notes)  # never overwritten
    wav = library.export_for_drag(audio)
    assert wav.name == "idea.wav" and read_audio(wav).frames == audio.audio.frames
    (url,) = library.mime_data_for(b).urls()
    assert Path(url.toLocalFile()) == second

    # The next run (a new library; clip ids start over): new files, the old ones stay.
    later = ClipLibrary()
    qtbot.addWidget(later)
    c = Clip("idea", sequence=seq.trim(0.0, 1.0))
    later.add_clip(c)
    third = later.export_for_drag(c)
    assert third not in (first, second)
    assert len(read_midi(first).notes) == len(seq.notes)
    assert sorted(p.name for p in first.parent.iterdir() if not p.name.startswith(".")) == \
        sorted([first.name, second.name, third.name, wav.name])
    # A renamed clip gets a file under its new name.
    later.rename(c, "chorus")
    assert later.export_for_drag(c).name == "chorus.mid"


def test_a_drag_into_an_unwritable_folder_is_one_line(qtbot, tmp_path):
    from app.widgets.clip_library import ClipLibrary
    from models.errors import CadenzaError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    library = ClipLibrary(drag_folder=blocker / "exports")
    qtbot.addWidget(library)
    clip = Clip("x", audio=tone())
    library.add_clip(clip)
    with pytest.raises(CadenzaError, match="cannot make the folder"):
        library.export_for_drag(clip)


# ---------------------------------------------------------------------- the CLI
def test_render_to_stdout_and_to_every_format(tmp_path):
    melody = str(EXAMPLES / "melody-a.mid")
    # With CI set, pyfluidsynth prints where it found the library to stdout as it is imported:
    # stdout still holds the WAV alone.
    result = cadenza("render", melody, "-o", "-", env={"CI": "true"})
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout[:4] == b"RIFF"  # WAV unless --format
    samples, rate = soundfile.read(io.BytesIO(result.stdout), always_2d=True)
    assert rate == 44100 and samples.shape[0] > 44100 * 4
    assert b"rendered in" in result.stderr  # the report goes to stderr, not into the pipe
    result = cadenza("render", melody, "-o", "-", "--format", "mp3", "--sample-rate", "48000")
    assert result.returncode == 0, result.stderr.decode()
    assert soundfile.info(io.BytesIO(result.stdout)).format == "MP3"
    for name, container, subtype in (("a.ogg", "OGG", "VORBIS"), ("a.aiff", "AIFF", "PCM_24"),
                                     ("a.flac", "FLAC", "PCM_24")):
        result = cadenza("render", melody, "-o", str(tmp_path / name), "--bits", "24")
        assert result.returncode == 0, result.stderr.decode()
        info = soundfile.info(str(tmp_path / name))
        assert (info.format, info.subtype) == (container, subtype)
    result = cadenza("render", melody, "-o", str(tmp_path / "hi.mp3"), "--sample-rate", "96000")
    err = result.stderr.decode()
    assert result.returncode == 2 and err.startswith("cadenza: error: ") and err.count("\n") == 1
    assert "MP3 cannot hold 96000 Hz" in err and not (tmp_path / "hi.mp3").exists()
    result = cadenza("render", melody, "-o", str(tmp_path / "a.wma"))
    assert result.returncode == 2 and b"cannot write audio as '.wma'" in result.stderr
    help_text = cadenza("render", "--help").stdout.decode()
    assert "'-' writes it to stdout" in help_text and "--format" in help_text


@pytest.mark.slow
def test_sample_and_continue_write_midi_to_stdout(tmp_path):
    result = cadenza("sample", "--model", "melody-2bar", "-n", "2", "--seed", "1", "-o", "-")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout[:4] == b"MThd"
    assert read_midi(result.stdout).notes
    assert b"wrote 2 samples" in result.stderr
    result = cadenza("continue", str(EXAMPLES / "piano-phrase.mid"), "-o", "-", "--variations",
                     "2")
    assert result.returncode == 2
    assert result.stderr.decode().startswith("cadenza: error: -o - writes one MIDI file")
    assert result.stdout == b""


def test_devices_json(jack_server):
    result = cadenza("devices", "--json", "--no-compute", timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert set(data) == {"midi", "audio", "compute"} and data["compute"] is None
    assert data["midi"]["available"] is True and data["midi"]["api"] == "JACK"
    assert isinstance(data["midi"]["inputs"], list) and isinstance(data["midi"]["outputs"], list)
    assert isinstance(data["audio"]["outputs"], list)
    for out in data["audio"]["outputs"]:
        assert {"name", "hostapi", "default_samplerate", "channels"} <= set(out)
    nowhere = cadenza("devices", "--json", "--no-compute",
                      env={"JACK_DEFAULT_SERVER": "cadenza-nowhere"}, timeout=60)
    missing = json.loads(nowhere.stdout)["midi"]
    assert missing["available"] is False and missing["api"] is None and missing["reason"]
