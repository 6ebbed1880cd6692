"""The Cadenza window: clip library, the three workspaces, the clip view, transport, status bar.

Nothing here imports TensorFlow or Keras, directly or through what it imports: the worker
(``app/worker.py``) loads the backend on its own thread after the window is shown. The devices
(:class:`app.devices.Devices`: the one audio engine and MIDI system) and the worker come from
the application (:class:`app.services.Services`, made in :func:`run_app`); PortAudio and rtmidi
are loaded when first used, so the window opens fast.

The window asks the devices a few times a second whether one went away
(:meth:`MainWindow.check_devices`): playback stops, the status bar says "Audio: lost" (or
"MIDI: lost") with the reason, and offers Reconnect (a button there, and Play ▸ Reconnect
Audio/MIDI), which rebuilds them through the devices. Everything else (export) keeps working.

**Play in the shared time.** While the Live panel's Sync section runs, Play starts the clip on
the session's next bar (:meth:`app.audio_engine.AudioEngine.play` with ``at``: the first sample
is heard on the bar line, the output's latency accounted for) and the transport says
"Starting on bar N…" until then. A MIDI clip is rendered at the session's tempo: its notes are
scaled in time from the clip's own tempo (its first; 120 when it names none) to the session's
BPM as it is when Play is pressed (the render cache knows the tempo). The position and the
piano roll's playhead stay in the clip's own time. Audio clips keep their speed and only start
on the bar. With sync off, Play starts at once at the clip's own tempo.
"""

from __future__ import annotations

import base64
import logging
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QColor, QIcon, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStyleFactory,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.clips import OPEN_FILTER, Clip, load_clip
from app.devices import Loss, describe_losses
from app.resources import examples_dir, icon_path
from app.screenshot import screenshot_on_shown
from app.services import Services
from app.session import (
    AUTOSAVE_NAME,
    Encoder,
    SessionData,
    add_recent,
    read_recent,
    read_session,
    state_dir,
    write_session,
)
from app.session import FILTER as SESSION_FILTER
from app.session import SUFFIX as SESSION_SUFFIX
from app.settings import Settings, SettingsStore, load_settings, open_qsettings, save_settings
from app.widgets.clip_library import ClipLibrary
from app.widgets.live_panel import LivePanel
from app.widgets.piano_roll import PianoRollPanel
from app.widgets.transport import TransportBar
from app.widgets.waveform import WaveformPanel
from app.worker import JobHandle, list_models, probe_compute, set_soundfont
from app.workspaces.base import Workspace
from app.workspaces.continue_ws import ContinueWorkspace
from app.workspaces.interpolate_ws import InterpolateWorkspace
from app.workspaces.morph_ws import MorphWorkspace
from models.errors import CadenzaError
from models.sequence import NoteSequence

log = logging.getLogger(__name__)

NO_AUDIO = "No audio output — export still works"
NO_MIDI = "No MIDI system"
AUDIO_READY = "Audio: ready"
AUDIO_LOST = "Audio: lost"
MIDI_READY = "MIDI: ready"
MIDI_LOST = "MIDI: lost"
RECONNECT = "Reconnect Audio/MIDI"
DEFAULT_SIZE = (1280, 800)
PLAYHEAD_MS = 33
DEVICE_CHECK_MS = 250
AUTOSAVE_MS = 400  # the session is saved this long after the last change
# With sync on, the bar a clip starts on is at least this far ahead (seconds): the engine needs
# its output latency (~25 ms over JACK) and a few blocks of time to queue the first block.
SYNC_START_MARGIN = 0.12


class MainWindow(QMainWindow):
    """The app window. Public slots (``open_files``, ``play``, ``stop``, ``export_midi``,
    ``export_wav``, ``reconnect_devices``) are what the menus and dialogs call, and what tests
    call with paths.

    ``services``: the application's devices and worker; without them the window makes its own
    (:meth:`Services.create`) and closes them when it closes.
    """

    exported = Signal(str)  # path of a finished export
    export_failed = Signal(str)
    playback_started = Signal()
    session_saved = Signal(str)  # path of the session just written (the autosave too)
    _autosave_failed = Signal(str)  # from the saver thread; queued to the GUI thread
    _autosave_done = Signal(str)

    def __init__(
        self,
        settings_store: SettingsStore | None = None,
        probe_compute: bool = True,
        drag_folder: Path | None = None,
        services: Services | None = None,
        state_folder: Path | None = None,
        restore_session: bool = True,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Cadenza")
        self.resize(*DEFAULT_SIZE)
        self.store = settings_store or open_qsettings()
        self.settings: Settings = load_settings(self.store)
        self.last_message = ""
        self.broken_models: dict[str, str] = {}  # model folders listed as broken: why
        self.compute_device = ""
        self._probe = probe_compute
        self._owns_services = services is None
        self.services = services or Services.create(self.settings)
        # the session: autosaved (debounced, written on a thread of its own) to state_folder
        self.state_folder = Path(state_folder) if state_folder is not None else state_dir()
        self.autosave_path = self.state_folder / AUTOSAVE_NAME
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cadenza-autosave")
        self._encoder = Encoder()
        self._autosave_enabled = False
        self._pending_save: Future[Any] | None = None
        self.devices = self.services.devices
        self.worker = self.services.worker
        self._audio_reason = ""
        # (clip, rate, sound, tempo: the session's BPM, 0.0 for the clip's own) -> Audio
        self._renders: dict[tuple[int, int, int, float], Any] = {}
        self._render_job: JobHandle | None = None
        self._playing: Clip | None = None
        self._play_started = 0.0
        self._play_scale = 1.0  # the clip's own seconds per second of what is played
        self._start_bar: tuple[float, int] | None = None  # (perf_counter time, bar) awaited
        self.playing_audio: Any = None  # the Audio the engine plays (rendered, resampled)

        # clip library (left dock)
        self.library = ClipLibrary(drag_folder=drag_folder)
        dock = self.clips_dock = QDockWidget("Clips", self)
        dock.setObjectName("clipsDock")
        dock.setWidget(self.library)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        dock.setMinimumWidth(230)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

        # live panel (right dock): keyboard in, MIDI/audio out, duet, recording
        self.live_panel = LivePanel(self.services, soundfont=self.settings.soundfont)
        self.live_dock = QDockWidget("Live", self)
        self.live_dock.setObjectName("liveDock")
        self.live_dock.setWidget(self.live_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.live_dock)
        self.live_dock.hide()  # View ▸ Live shows it; MIDI opens when it is first shown
        self.live_panel.clip_created.connect(self._add_generated_clip)
        self.live_panel.reconnect_requested.connect(self.reconnect_devices)

        # workspaces
        self.workspaces: dict[str, Workspace] = {}
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        for ws in (ContinueWorkspace(self.services), InterpolateWorkspace(self.services),
                   MorphWorkspace(self.services)):
            ws.clip_created.connect(self._add_generated_clip)
            ws.message.connect(self.show_message)
            ws.playback_stop_requested.connect(self.stop)
            ws.set_tempo_source(self.session_bpm)
            self.workspaces[ws.title] = ws
            self.tabs.addTab(ws, ws.title)
        morph = self.workspaces["Morph"]
        assert isinstance(morph, MorphWorkspace)
        morph.instrument_ready.connect(self.set_morph_instrument)
        morph.keyboard_requested.connect(self.play_instrument_from_keyboard)
        morph.live_ready.connect(self.set_live_morph)
        morph.mix_moved.connect(self.live_panel.set_morph_xy)
        self.morph_instrument: Any = None  # the latest MorphInstrument or LiveMorph, once made

        # clip view + transport
        self.piano_roll = PianoRollPanel()
        self.waveform = WaveformPanel()
        self.empty_view = QLabel("Open a MIDI or audio file (File ▸ Open…, or drop it on the "
                                 "clip list) to see it here, or try File ▸ Open Examples.")
        self.empty_view.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_view.setObjectName("placeholder")
        self.clip_stack = QStackedWidget()
        for w in (self.empty_view, self.piano_roll, self.waveform):
            self.clip_stack.addWidget(w)
        self.transport = TransportBar()
        clip_area = QWidget()
        clip_layout = QVBoxLayout(clip_area)
        clip_layout.setContentsMargins(6, 0, 6, 4)
        clip_layout.setSpacing(2)
        clip_layout.addWidget(self.transport)
        clip_layout.addWidget(self.clip_stack, 1)

        splitter = self.splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.tabs)
        splitter.addWidget(clip_area)
        splitter.setStretchFactor(0, 5)
        splitter.setStretchFactor(1, 4)
        splitter.setSizes([400, 340])
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)

        # status bar
        self.compute_label = QLabel("Compute: starting…")
        self.midi_label = QLabel("MIDI: checking…")
        self.audio_label = QLabel("Audio: checking…")
        self.reconnect_button = QPushButton("Reconnect")
        self.reconnect_button.setToolTip("Open the audio output and the MIDI system again "
                                         "(after the sound server or a device came back)")
        self.reconnect_button.clicked.connect(self.reconnect_devices)
        self.reconnect_button.hide()
        for widget in (self.compute_label, self.midi_label, self.audio_label,
                       self.reconnect_button):
            self.statusBar().addPermanentWidget(widget)

        self._build_menus()
        self.library.open_requested.connect(self.open_dialog)
        self.library.files_dropped.connect(self.open_files)
        self.library.error.connect(self.show_message)
        self.library.current_changed.connect(self._show_clip)
        self.library.clips_changed.connect(self._clips_changed)
        self.transport.play_clicked.connect(self.play)
        self.transport.stop_clicked.connect(self.stop)
        self.transport.loop_toggled.connect(self._loop_toggled)
        self._timer = QTimer(self)
        self._timer.setInterval(PLAYHEAD_MS)
        self._timer.timeout.connect(self._tick)
        self._device_timer = QTimer(self)
        self._device_timer.setInterval(DEVICE_CHECK_MS)
        self._device_timer.timeout.connect(self.check_devices)
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(AUTOSAVE_MS)
        self._autosave_timer.timeout.connect(self.autosave)
        # bound to this window (a QObject of the GUI thread): delivered there, queued
        self._autosave_failed.connect(self.show_message)
        self._autosave_done.connect(self.session_saved)
        for ws in self.workspaces.values():
            ws.state_changed.connect(self.schedule_autosave)
        self.live_panel.state_changed.connect(self.schedule_autosave)
        self.tabs.currentChanged.connect(lambda _i: self.schedule_autosave())
        self.splitter.splitterMoved.connect(lambda *_: self.schedule_autosave())
        self.live_dock.visibilityChanged.connect(lambda _v: self.schedule_autosave())
        self.piano_roll.roll.ruler_changed.connect(lambda _s: self.schedule_autosave())
        self._startup_message = ""
        if restore_session:
            self._restore_autosave()
        self._autosave_enabled = True
        QTimer.singleShot(0, self._after_show)

    # ------------------------------------------------------------------ menus
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open…", self.open_dialog, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open &Examples", lambda: self.open_examples())
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addMenu(self.recent_menu)
        file_menu.addSeparator()
        self._action(file_menu, "Open Sess&ion…", self.open_session_dialog, "Ctrl+Shift+O")
        self._action(file_menu, "Save Sessio&n…", self.save_session_dialog,
                     QKeySequence.StandardKey.Save)
        file_menu.addSeparator()
        self._action(file_menu, "Export &MIDI…", self.export_midi_dialog, "Ctrl+E")
        self._action(file_menu, "Export &Audio (WAV, FLAC, AIFF, OGG, MP3)…",
                     self.export_wav_dialog, "Ctrl+Shift+E")
        file_menu.addSeparator()
        self._action(file_menu, "&Settings…", self.open_settings,
                     QKeySequence.StandardKey.Preferences)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        edit = self.menuBar().addMenu("&Edit")
        stack = self.library.undo_stack
        self.undo_action = stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence("Ctrl+Z"))
        self.redo_action = stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        edit.addAction(self.undo_action)
        edit.addAction(self.redo_action)
        edit.addSeparator()
        self._action(edit, "&Remove Clip", self.library.remove_current)
        self._action(edit, "Rena&me Clip", self._rename_current)
        self._action(edit, "Move Clip U&p", lambda: self.library.move_current(-1))
        self._action(edit, "Move Clip Do&wn", lambda: self.library.move_current(1))
        view = self.menuBar().addMenu("&View")
        self._action(view, "Zoom &In", self.zoom_in, QKeySequence.StandardKey.ZoomIn)
        self._action(view, "Zoom &Out", self.zoom_out, QKeySequence.StandardKey.ZoomOut)
        view.addAction(self.live_dock.toggleViewAction())
        play = self.menuBar().addMenu("&Play")
        self._action(play, "Play / Stop", self.toggle_play, "Space")
        play.addSeparator()
        self.reconnect_action = self._action(play, RECONNECT, self.reconnect_devices)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&About Cadenza", self.about)

    def _action(self, menu: Any, text: str, slot: Any, shortcut: Any = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    # ------------------------------------------------------------------ startup checks
    def _after_show(self) -> None:
        if self._startup_message:
            self.show_message(self._startup_message)
        self._check_audio()
        self._check_midi()
        self._device_timer.start()
        if self._probe:
            # The listing first: it reads model folders only, so the workspaces show their
            # models at once instead of after the backend's import in the compute probe.
            self.worker.submit(list_models, on_success=self._models_listed,
                               on_failure=lambda exc: log.warning("listing models: %s", exc),
                               label="list models")
            self.worker.submit(probe_compute(self.settings.compute_device),
                               on_success=self._compute_ready,
                               on_failure=self._compute_failed, label="probe compute")

    def _compute_ready(self, device: str) -> None:
        self.compute_device = device
        self.compute_label.setText(f"Compute: {device}")

    def _compute_failed(self, exc: Exception) -> None:
        self.compute_device = "unavailable"
        self.compute_label.setText("Compute: unavailable")
        self.compute_label.setToolTip(str(exc))

    def _models_listed(self, entries: list[Any]) -> None:
        usable = [e for e in entries if not getattr(e, "broken", "")]
        for ws in self.workspaces.values():
            ws.set_models(usable)
        self.live_panel.set_models(usable)
        broken = [e for e in entries if getattr(e, "broken", "")]
        if broken:  # a broken folder in the models folder: said, with its reason, and skipped
            self.broken_models = {e.name: e.broken for e in broken}
            first = broken[0]
            more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
            self.show_message(f"Model folder '{first.name}' is broken and was skipped: "
                              f"{first.broken}{more}")

    # ------------------------------------------------------------------ sessions
    def session_bpm(self) -> float | None:
        """The session tempo while the Live panel's sync runs (BPM), None while it is off: what
        the workspaces' results carry."""
        return self.live_panel.session_bpm()

    def session_data(self) -> SessionData:
        """Everything the session keeps, as plain data (clips are copied: a rename while the
        autosave writes does not race with it)."""
        clips = self.library.clips()
        current = self.library.current_clip()
        copies = [Clip(c.name, sequence=c.sequence, audio=c.audio, source=c.source, id=c.id,
                       tempo=c.tempo) for c in clips]
        results = {}
        for title, ws in self.workspaces.items():
            res = ws.session_results()
            if res is not None:
                results[title] = res
        window = {
            "geometry": base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii"),
            "state": base64.b64encode(bytes(self.saveState().data())).decode("ascii"),
            "splitter": [int(v) for v in self.splitter.sizes()],
            "tab": self.tabs.tabText(self.tabs.currentIndex()),
            "live": bool(self.live_dock.isVisible()),
            "ruler_seconds": bool(self.piano_roll.roll.ruler_seconds),
        }
        return SessionData(
            clips=copies,
            current_clip=clips.index(current) if current in clips else None,
            results=results,
            workspaces={t: ws.session_state() for t, ws in self.workspaces.items()},
            live=self.live_panel.session_state(),
            window=window)

    def apply_session(self, data: SessionData, layout: bool = True) -> None:
        """Show a session: its clips replace the library's (the undo history starts again)."""
        enabled, self._autosave_enabled = self._autosave_enabled, False
        try:
            self.library.replace_all(data.clips, data.current_clip)
            for title, ws in self.workspaces.items():
                state = data.workspaces.get(title)
                if isinstance(state, dict):
                    ws.restore_session_state(state)
                res = data.results.get(title)
                if res is not None:
                    ws.restore_results(res)
            self.live_panel.restore_session_state(data.live)
            if layout:
                self._restore_layout(data.window)
        finally:
            self._autosave_enabled = enabled
        self.schedule_autosave()

    def _restore_layout(self, window: dict[str, Any]) -> None:
        def decoded(key: str) -> QByteArray | None:
            value = window.get(key)
            if not isinstance(value, str):
                return None
            try:
                return QByteArray(base64.b64decode(value.encode("ascii"), validate=True))
            except ValueError:
                return None

        geometry, state = decoded("geometry"), decoded("state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        sizes = window.get("splitter")
        if isinstance(sizes, list) and len(sizes) == 2 and all(
                isinstance(v, int) and 0 <= v < 100_000 for v in sizes):
            self.splitter.setSizes(sizes)
        tab = window.get("tab")
        if isinstance(tab, str) and tab in self.workspaces:
            self.tabs.setCurrentWidget(self.workspaces[tab])
        if isinstance(window.get("live"), bool):
            self.live_dock.setVisible(window["live"])
        if isinstance(window.get("ruler_seconds"), bool):  # the clip view's ruler: bars or sec
            self.piano_roll.roll.set_ruler_seconds(window["ruler_seconds"])

    def _restore_autosave(self) -> None:
        """The previous run's session, read at start; a broken one is kept aside (renamed) and
        said in one line, and the app starts empty."""
        path = self.autosave_path
        if not path.is_file():
            return
        try:
            data = read_session(path)
        except CadenzaError as exc:
            aside = path.with_name(f"{path.stem}.broken-{int(time.time())}{path.suffix}")
            try:
                path.replace(aside)
                kept = f" (kept as {aside.name})"
            except OSError:
                kept = ""
            self._startup_message = f"Could not restore the last session: {exc}{kept}"
            log.warning("%s", self._startup_message)
            return
        except Exception as exc:  # noqa: BLE001 - never fail to start over a session file
            log.exception("restoring %s", path)
            self._startup_message = f"Could not restore the last session: {exc}"
            return
        self.apply_session(data)

    def schedule_autosave(self) -> None:
        """Save the session a moment after the last change (debounced)."""
        if self._autosave_enabled:
            self._autosave_timer.start()

    def autosave_in_flight(self) -> Future[Any] | None:
        """The autosave being written now, if any."""
        pending = self._pending_save
        return None if pending is None or pending.done() else pending

    def autosave(self) -> Future[Any] | None:
        """Write the session to the autosave file, on the saver thread (the GUI thread only
        gathers it); ``session_saved`` when written."""
        if not self._autosave_enabled:
            return None
        data = self.session_data()
        path, encoder = self.autosave_path, self._encoder

        def write() -> None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_session(path, data, encoder)
            except (CadenzaError, OSError) as exc:
                log.warning("autosave: %s", exc)
                self._autosave_failed.emit(f"Could not save the session: {exc}")
                return
            except Exception as exc:  # noqa: BLE001 - a failed autosave is said, not fatal
                log.exception("autosave")
                self._autosave_failed.emit(f"Could not save the session: {exc}")
                return
            self._autosave_done.emit(str(path))

        try:
            self._pending_save = self._saver.submit(write)
        except RuntimeError:  # the saver was shut down (closing)
            return None
        return self._pending_save

    def save_session(self, path: str | Path) -> Path | None:
        """Write the session to ``path`` (``.cadenza``), atomically; None (and a message) when
        that failed."""
        path = Path(path)
        if path.suffix.lower() != SESSION_SUFFIX:
            path = path.with_name(path.name + SESSION_SUFFIX)
        try:
            write_session(path, self.session_data())
        except CadenzaError as exc:
            self.show_message(f"Could not save the session: {exc}")
            return None
        self._remember("sessions", [path])
        self.show_message(f"Saved the session to {path}")
        self.session_saved.emit(str(path))
        return path

    def open_session(self, path: str | Path) -> bool:
        """Open a session file: its clips, results, settings and layout replace the current
        ones (which stay in the autosave until the next change). A broken file: one line."""
        path = Path(path)
        try:
            data = read_session(path)
        except CadenzaError as exc:
            self.show_message(f"Could not open the session: {exc}")
            return False
        self.apply_session(data)
        self._remember("sessions", [path])
        self.show_message(f"Opened the session {path.name}: {len(data.clips)} clips")
        return True

    def save_session_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save Session", "session" + SESSION_SUFFIX,
                                              SESSION_FILTER)
        if path:
            self.save_session(path)

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open Session", "", SESSION_FILTER)
        if path:
            self.open_session(path)

    def recent(self) -> dict[str, list[str]]:
        """Recently saved or opened sessions and recently opened files, newest first."""
        return read_recent(self.state_folder)

    def _remember(self, kind: str, paths: list[Path]) -> None:
        try:
            add_recent(self.state_folder, kind, paths)
        except (CadenzaError, OSError) as exc:
            log.warning("recent %s: %s", kind, exc)

    def _fill_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        recent = self.recent()
        for text in recent["sessions"]:
            menu.addAction(Path(text).name, lambda p=text: self.open_session(p)).setToolTip(text)
        if recent["sessions"] and recent["files"]:
            menu.addSeparator()
        for text in recent["files"]:
            menu.addAction(Path(text).name, lambda p=text: self.open_files([p])).setToolTip(text)
        if menu.isEmpty():
            menu.addAction("(nothing yet)").setEnabled(False)

    def _rename_current(self) -> None:
        item = self.library.list.currentItem()
        if item is not None:
            self.library.list.editItem(item)

    def _check_audio(self) -> None:
        if self.devices.audio_lost:
            self._show_lost(Loss("audio", self.devices.audio_lost))
            return
        try:
            ok, reason = self.devices.audio_available()
        except Exception as exc:  # noqa: BLE001 - a missing audio stack must not stop the app
            ok, reason = False, str(exc)
        self._audio_reason = "" if ok else str(reason)
        self.audio_label.setText(AUDIO_READY if ok else NO_AUDIO)
        self.audio_label.setToolTip("" if ok else str(reason))

    def _check_midi(self) -> None:
        if self.devices.midi_lost:
            self._show_lost(Loss("midi", self.devices.midi_lost))
            return
        try:
            midi = self.devices.midi()
            ok, reason = midi.available, midi.reason
        except Exception as exc:  # noqa: BLE001 - a missing MIDI stack must not stop the app
            ok, reason = False, str(exc)
        self.midi_label.setText(MIDI_READY if ok else NO_MIDI)
        self.midi_label.setToolTip(reason)

    # ------------------------------------------------------------------ lost devices
    def check_devices(self) -> list[Loss]:
        """Ask the devices what went away (a timer calls this a few times a second): playback
        stops, the status bar and the live panel say so, and Reconnect is offered."""
        losses = self.devices.check()
        if not losses:
            return losses
        for loss in losses:
            if loss.kind == "audio":
                self.stop()
                self.transport.set_state("Audio lost")
            self._show_lost(loss)
        self.live_panel.devices_lost(losses)
        self.show_message(f"{describe_losses(losses)} — Reconnect when it is back (export "
                          "still works)")
        return losses

    def _show_lost(self, loss: Loss) -> None:
        label = self.audio_label if loss.kind == "audio" else self.midi_label
        label.setText(AUDIO_LOST if loss.kind == "audio" else MIDI_LOST)
        label.setToolTip(loss.reason)
        self.reconnect_button.show()

    def reconnect_devices(self) -> bool:
        """Open the audio output and the MIDI system again (Play ▸ Reconnect Audio/MIDI, the
        status bar's button, the live panel's); False (and a message) when that failed."""
        self.stop()
        self.live_panel.release_devices()
        try:
            self.devices.reconnect()
        except CadenzaError as exc:
            self.show_message(f"Could not reconnect: {exc}")
            return False
        self._check_audio()
        self._check_midi()
        audio_ok = self.audio_label.text() == AUDIO_READY
        midi_ok = self.midi_label.text() == MIDI_READY
        self.reconnect_button.setVisible(not (audio_ok and midi_ok))
        self.transport.set_state("")
        self.live_panel.devices_reconnected()
        self.show_message(f"Reconnected: audio {'ready' if audio_ok else 'unavailable'}, "
                          f"MIDI {'ready' if midi_ok else 'unavailable'}")
        return audio_ok

    # ------------------------------------------------------------------ messages
    def show_message(self, text: str) -> None:
        """One line in the status bar (kept for 10 s)."""
        line = " ".join(str(text).split())
        self.last_message = line
        self.statusBar().showMessage(line, 10000)
        log.info("%s", line)

    # ------------------------------------------------------------------ clips
    def open_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open MIDI or audio files", "", OPEN_FILTER)
        if paths:
            self.open_files([Path(p) for p in paths])

    def open_examples(self, folder: Path | None = None) -> list[Clip]:
        """Add every example (``assets/examples``) to the library: a primer for Continue, then
        melodies, grooves and sounds; Continue gets the piano phrase as its primer."""
        folder = Path(folder or examples_dir())
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".mid", ".wav")) \
            if folder.is_dir() else []
        if not files:
            self.show_message(f"No examples found in {folder}")
            return []
        have = {_resolved(c.source) for c in self.library.clips() if c.source is not None}
        files = [p for p in files if _resolved(p) not in have]
        if not files:
            self.show_message("The examples are already in the library")
            return []
        added = self.open_files(files, remember=False)  # sorted: drums, melodies, piano, sounds
        piano = next((c for c in added if c.name == "piano-phrase"), None)
        if piano is not None:
            primer = self.workspaces["Continue"].primer
            primer.setCurrentIndex(max(0, primer.findData(piano.id)))
            self.library.select(piano)
        return added

    def open_files(self, paths: Sequence[str | Path], remember: bool = True) -> list[Clip]:
        """Read each file into a clip (one undoable step); a bad file shows a one-line error
        and is skipped. ``remember``: listed in File ▸ Open Recent."""
        added: list[Clip] = []
        errors: list[str] = []
        for path in paths:
            path = Path(path)
            try:
                clip = load_clip(path)
            except CadenzaError as exc:
                errors.append(str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not fatal
                log.exception("reading %s", path)
                errors.append(f"could not read {path.name}: {exc}")
                continue
            added.append(clip)
        if added:
            self.library.add_clips(added, text=f"Open {', '.join(c.name for c in added)}")
            if remember:
                self._remember("files", [c.source for c in added if c.source is not None])
        if errors:  # each file's reason, in one status line
            for error in errors:
                log.warning("could not open: %s", error)
            opened = f"Opened {', '.join(c.name for c in added)}; " if added else ""
            self.show_message(f"{opened}Could not open: {' · '.join(errors)}")
        elif added:
            self.show_message(f"Opened {', '.join(c.name for c in added)}")
        return added

    def add_clip(self, clip: Clip) -> None:
        self.library.add_clip(clip)

    def _add_generated_clip(self, clip: Clip) -> None:
        self.library.add_clip(clip, text=f"Keep {clip.name}")
        self.show_message(f"Added {clip.name} to the library")

    def _clips_changed(self) -> None:
        clips = self.library.clips()
        for ws in self.workspaces.values():
            ws.set_clips(clips)
        self.schedule_autosave()

    def _show_clip(self, clip: Clip | None) -> None:
        if self._playing is not None and clip is not self._playing:
            self.stop()
        if clip is None:
            self.clip_stack.setCurrentWidget(self.empty_view)
        elif clip.sequence is not None:
            self.piano_roll.set_sequence(clip.sequence, f"{clip.name}  ·  {clip.summary}")
            self.clip_stack.setCurrentWidget(self.piano_roll)
        else:
            self.waveform.set_audio(clip.audio, f"{clip.name}  ·  {clip.summary}")
            self.clip_stack.setCurrentWidget(self.waveform)
        self.transport.set_position(0.0, clip.duration if clip else 0.0)

    def current_clip(self) -> Clip | None:
        return self.library.current_clip()

    # ------------------------------------------------------------------ view
    def zoom_in(self) -> None:
        if self.clip_stack.currentWidget() is self.piano_roll:
            self.piano_roll.roll.zoom_in()
        elif self.clip_stack.currentWidget() is self.waveform:
            self.waveform.view.zoom_in()

    def zoom_out(self) -> None:
        if self.clip_stack.currentWidget() is self.piano_roll:
            self.piano_roll.roll.zoom_out()
        elif self.clip_stack.currentWidget() is self.waveform:
            self.waveform.view.zoom_out()

    def show_workspace(self, title: str) -> Workspace:
        ws = self.workspaces[title]
        self.tabs.setCurrentWidget(ws)
        return ws

    # ------------------------------------------------------------------ playback
    def audio_engine(self) -> Any:
        """The devices' audio engine, started on first use; ``None`` (and a message) when there
        is no audio output or it was lost."""
        self.check_devices()  # a loss not yet noticed is said first
        if self.devices.audio_lost:
            self.show_message(f"Audio output lost ({self.devices.audio_lost}) — {RECONNECT} "
                              "to play again; export still works")
            return None
        try:
            engine = self.devices.audio()
        except CadenzaError as exc:
            self._no_audio(str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - PortAudio errors, missing library
            log.exception("audio engine")
            self._no_audio(str(exc))
            return None
        self.audio_label.setText(AUDIO_READY)
        self.audio_label.setToolTip("")
        return engine

    def _no_audio(self, reason: str) -> None:
        self._audio_reason = reason
        self.audio_label.setText(NO_AUDIO)
        self.audio_label.setToolTip(reason)
        self.show_message(f"{NO_AUDIO} ({reason})" if reason else NO_AUDIO)

    @property
    def is_playing(self) -> bool:
        return self._playing is not None

    def toggle_play(self) -> None:
        if self.is_playing:
            self.stop()
        else:
            self.play()

    def play(self) -> None:
        """Play the selected clip: a MIDI clip is rendered in the worker first; both are
        brought to the output's sample rate there, so the GUI thread only starts playback."""
        clip = self.library.current_clip()
        if clip is None:
            self.show_message("Select a clip to play")
            return
        engine = self.audio_engine()
        if engine is None:
            return
        rate = int(engine.sample_rate)
        instrument = self._sound()
        seq, audio = clip.sequence, clip.audio
        tempo = self.session_bpm() if seq is not None else None
        own = clip_tempo(clip)
        scale = tempo / own if tempo else 1.0  # the clip's own seconds per second played
        key = (clip.id, rate, _sound_key(instrument), round(tempo, 3) if tempo else 0.0)
        cached = self._renders.get(key)
        if cached is not None:
            self._start(clip, cached, scale)
            return
        if self._render_job is not None:
            self._render_job.cancel()

        def prepare(ctx: Any) -> Any:
            data = audio
            if data is None:
                ctx.progress(None, "Rendering…")
                played = seq.stretch(1.0 / scale) if scale != 1.0 else seq
                data = _render_midi(ctx, played, instrument)
            ctx.raise_if_cancelled()
            if rate and data.sample_rate != rate:
                data = data.resampled(rate)
            return data

        self.transport.set_state("Rendering…" if audio is None else "Preparing…")
        self._render_job = self.worker.submit(
            prepare,
            on_success=lambda data, c=clip: self._prepared(c, key, data, scale),
            on_failure=self._render_failed,
            on_cancelled=lambda: self.transport.set_state(""),
            label="prepare playback",
        )

    def _prepared(self, clip: Clip, key: tuple[int, int, int, float], audio: Any,
                  scale: float) -> None:
        self._render_job = None
        self._renders[key] = audio
        self.transport.set_state("")
        if self.library.current_clip() is clip:
            self._start(clip, audio, scale)

    def _render_failed(self, exc: Exception) -> None:
        self._render_job = None
        self.transport.set_state("")
        self.show_message(f"Could not play: {exc}")

    def _start(self, clip: Clip, audio: Any, scale: float = 1.0) -> None:
        """Play ``audio`` (the clip, rendered and at the output's rate): at once, or with sync
        on, heard from the session's next bar."""
        engine = self.audio_engine()
        if engine is None:
            return
        bar = self.live_panel.next_sync_bar(time.perf_counter() + SYNC_START_MARGIN)
        try:
            engine.play(audio, loop=self.transport.loop, at=bar[0] if bar else None)
        except CadenzaError as exc:
            self.show_message(f"Could not play: {exc}")
            return
        if bar is not None and not engine.clip.waiting:
            bar = None  # too close to make after all: it started at once
        self._playing = clip
        self.playing_audio = audio
        self._play_scale = scale
        self._play_started = time.monotonic()
        self._start_bar = bar
        self.transport.set_playing(True)
        self.transport.set_state(f"Starting on bar {bar[1]}…" if bar else "Playing")
        self._timer.start()
        self.playback_started.emit()

    @property
    def waiting_for_bar(self) -> bool:
        """Play was pressed with sync on and the clip is not heard yet (its bar is ahead)."""
        return self._playing is not None and self._start_bar is not None

    # ------------------------------------------------------------------ morph instrument
    def set_morph_instrument(self, instrument: Any) -> None:
        """A new morph instrument: offered as the transport's sound and as a live output."""
        self.morph_instrument = instrument
        self.transport.set_instrument_available(instrument is not None)
        self.live_panel.set_instrument(instrument)
        morph = self.workspaces["Morph"]
        assert isinstance(morph, MorphWorkspace)
        morph.stop_live()

    def set_live_morph(self, live: Any) -> None:
        """A live morph (DDSP, :class:`models.ddsp.voices.LiveMorph`): the keyboard and the
        duet play it straight from the model, the transport renders MIDI clips with it, and the
        Morph pad moves its sounding notes' timbre."""
        self.morph_instrument = live
        self.transport.set_instrument_available(True)
        self.live_panel.set_live_morph(live)
        self.play_instrument_from_keyboard()

    def _sound(self) -> Any:
        """The MorphInstrument that MIDI clips are played with, or None for General MIDI."""
        return self.morph_instrument if self.transport.use_instrument else None

    def play_instrument_from_keyboard(self) -> None:
        self.live_dock.show()
        if self.live_panel.play_instrument():
            self.show_message("The MIDI keyboard plays the morph instrument")

    def _loop_toggled(self, on: bool) -> None:
        engine = self.devices.engine
        if engine is not None:
            engine.loop = on

    def stop(self) -> None:
        if self._render_job is not None:
            self._render_job.cancel()
            self._render_job = None
        engine = self.devices.engine
        if engine is not None:
            try:
                engine.stop()
            except CadenzaError as exc:
                self.show_message(str(exc))
        self._timer.stop()
        self._playing = None
        self.playing_audio = None
        self._start_bar = None
        self.transport.set_playing(False)
        self.transport.set_state("")
        self.piano_roll.roll.set_playhead(None)
        self.waveform.view.set_playhead(None)

    def _tick(self) -> None:
        engine = self.devices.engine
        clip = self._playing
        if engine is None or clip is None:
            self._timer.stop()
            return
        if self._start_bar is not None:
            if time.perf_counter() < self._start_bar[0]:
                return  # "Starting on bar N…" until it is heard
            self._start_bar = None
            self.transport.set_state("Playing")
        pos = float(engine.position_seconds) * self._play_scale  # in the clip's own time
        if clip.is_midi:
            self.piano_roll.roll.set_playhead(pos)
        else:
            self.waveform.view.set_playhead(pos)
        self.transport.set_position(pos, clip.duration)
        if not engine.is_playing and time.monotonic() - self._play_started > 0.5:
            self.stop()

    # ------------------------------------------------------------------ export
    def export_midi_dialog(self) -> None:
        clip = self.library.current_clip()
        if clip is None or not clip.is_midi:
            self.show_message("Select a MIDI clip to export as MIDI")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export MIDI", clip.file_name(),
                                              "MIDI (*.mid);;MusicXML (*.musicxml *.mxl)")
        if path:
            self.export_midi(Path(path))

    def export_wav_dialog(self) -> None:
        clip = self.library.current_clip()
        if clip is None:
            self.show_message("Select a clip to export")
            return
        from app.widgets.export_dialog import AudioExportDialog

        own = clip.audio.sample_rate if clip.audio is not None else None
        dialog = AudioExportDialog(Path(clip.file_name()).stem, own_rate=own, parent=self,
                                   notation=clip.is_midi)
        if dialog.exec():
            choice = dialog.choice()
            if choice.is_notation:
                self.export_midi(choice.path)
            else:
                self.export_wav(choice.path, rate=choice.rate, subtype=choice.subtype)

    def export_midi(self, path: str | Path) -> bool:
        """Write the current MIDI clip as a MIDI file (``.mid`` added to a name without one), or
        as MusicXML in the worker when ``path`` ends in .musicxml, .xml or .mxl; ``exported``
        (or ``export_failed``) when written. False when there is no MIDI clip to export."""
        clip = self.library.current_clip()
        if clip is None or clip.sequence is None:
            self.show_message("Select a MIDI clip to export as MIDI")
            return False
        from app.jobs import notation_path
        from models.musicxml import is_musicxml

        path = notation_path(path)
        if is_musicxml(path):
            self._export_musicxml(clip.sequence, path)
            return True
        try:
            from models.midi_io import write_midi

            write_midi(clip.sequence, path)
        except (CadenzaError, OSError) as exc:
            self.show_message(f"Could not export MIDI: {exc}")
            self.export_failed.emit(str(exc))
            return False
        self.show_message(f"Exported {path}")
        self.exported.emit(str(path))
        return True

    def _export_musicxml(self, seq: NoteSequence, path: Path) -> JobHandle:
        from app.jobs import write_musicxml_job

        def done(result: str) -> None:
            self.show_message(f"Exported {result}")
            self.exported.emit(result)

        def failed(exc: Exception) -> None:
            self.show_message(f"Could not export MusicXML: {exc}")
            self.export_failed.emit(str(exc))

        self.show_message(f"Exporting {path.name}…")
        return self.worker.submit(write_musicxml_job(seq, path), on_success=done,
                                  on_failure=failed, label="export musicxml")

    def export_wav(self, path: str | Path, rate: int = 0,
                   subtype: str = "PCM_16") -> JobHandle | None:
        """Render (for a MIDI clip) and write an audio file in the worker (WAV, FLAC, AIFF, OGG
        or MP3 by the extension; ``.wav`` added when it has none of these), at ``rate`` Hz when
        given (else the clip's own, 44.1 kHz for a rendered MIDI clip), as ``subtype`` (PCM_16,
        PCM_24, FLOAT); ``exported`` when done."""
        clip = self.library.current_clip()
        if clip is None:
            self.show_message("Select a clip to export")
            return None
        from app.widgets.export_dialog import audio_export_path

        path = audio_export_path(path)
        seq, audio, tempo = clip.sequence, clip.audio_with_tempo(), clip.tempo
        instrument = self._sound()

        def job(ctx: Any) -> str:
            from app.jobs import with_tempo
            from models.audio_io import write_audio

            data = audio
            if data is None:
                ctx.progress(None, f"Rendering {clip.name}…")
                data = with_tempo(_render_midi(ctx, seq, instrument), tempo)
            ctx.raise_if_cancelled()
            if rate and data.sample_rate != rate:
                ctx.progress(None, f"Resampling to {rate} Hz…")
                data = data.resampled(rate)
            ctx.progress(None, f"Writing {path.name}…")
            try:
                write_audio(path, data, subtype=subtype)
            except OSError as exc:
                raise CadenzaError(f"could not write {path}: {exc.strerror or exc}") from exc
            return str(path)

        def done(result: str) -> None:
            self.show_message(f"Exported {result}")
            self.exported.emit(result)

        def failed(exc: Exception) -> None:
            self.show_message(f"Could not export audio: {exc}")
            self.export_failed.emit(str(exc))

        self.show_message(f"Exporting {path.name}…")
        return self.worker.submit(job, on_success=done, on_failure=failed,
                                  on_progress=lambda _f, text: self.show_message(text),
                                  label="export wav")

    # ------------------------------------------------------------------ settings
    def open_settings(self) -> None:
        from app.widgets.settings_dialog import SettingsDialog

        audio_devices: list[str] = []
        midi_in: list[str] = []
        midi_out: list[str] = []
        try:
            audio_devices = [str(d["name"]) for d in self.devices.audio_outputs()]
        except Exception:  # noqa: BLE001 - offer an editable field instead
            log.debug("listing audio devices failed", exc_info=True)
        try:
            midi = self.devices.midi()
            if midi.available:
                midi_in = [str(p) for p in midi.list_inputs()]
                midi_out = [str(p) for p in midi.list_outputs()]
        except Exception:  # noqa: BLE001
            log.debug("listing MIDI ports failed", exc_info=True)
        dialog = SettingsDialog(self.settings, audio_devices, midi_in, midi_out, self)
        if dialog.exec():
            self.apply_settings(dialog.result_settings())

    def apply_settings(self, new: Settings) -> None:
        """Use and remember new settings."""
        old = self.settings
        self.settings = new
        save_settings(new, self.store)
        app = QApplication.instance()
        if new.theme != old.theme and isinstance(app, QApplication):
            apply_theme(app, new.theme)
        if new.soundfont != old.soundfont:
            self._renders.clear()
            set_soundfont(self.worker, new.soundfont)
        if new.audio_device != old.audio_device:
            self.stop()
            self.live_panel.release_audio()
        self.devices.configure(audio_device=new.audio_device or None,
                               midi_out=new.midi_out or None)
        if new.compute_device != old.compute_device:
            self.show_message("The compute device changes the next time Cadenza starts")

    def about(self) -> None:
        QMessageBox.about(
            self, "About Cadenza",
            "<h3>Cadenza</h3><p>Continue, interpolate and morph music with generative models: "
            "PerformanceRNN, MusicVAE and NSynth, re-implemented in Keras 3.</p>"
            f"<p>Compute: {self.compute_device or 'starting…'}</p>")

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if hasattr(self, "_autosave_timer"):
            self.schedule_autosave()  # the layout is part of the session

    def moveEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().moveEvent(event)
        if hasattr(self, "_autosave_timer"):
            self.schedule_autosave()

    # ------------------------------------------------------------------ shutdown
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        # Nothing is ever unsaved: the last state is written now (no question asked).
        self._autosave_timer.stop()
        if self._autosave_enabled:
            self.autosave()
        self._autosave_enabled = False
        self._saver.shutdown(wait=True)
        self._device_timer.stop()
        self.stop()
        self.live_panel.shutdown()
        for ws in self.workspaces.values():
            ws.shutdown()
        if self._owns_services:
            self.services.close()
        super().closeEvent(event)


# ---------------------------------------------------------------------- theme and app
def dark_palette() -> QPalette:
    pal = QPalette()
    window, base, text = QColor(37, 39, 44), QColor(28, 30, 34), QColor(226, 228, 233)
    accent = QColor(78, 154, 241)
    roles = QPalette.ColorRole
    pal.setColor(roles.Window, window)
    pal.setColor(roles.WindowText, text)
    pal.setColor(roles.Base, base)
    pal.setColor(roles.AlternateBase, QColor(44, 46, 52))
    pal.setColor(roles.ToolTipBase, QColor(52, 54, 60))
    pal.setColor(roles.ToolTipText, text)
    pal.setColor(roles.PlaceholderText, QColor(140, 143, 150))
    pal.setColor(roles.Text, text)
    pal.setColor(roles.Button, QColor(50, 53, 59))
    pal.setColor(roles.ButtonText, text)
    pal.setColor(roles.BrightText, QColor(255, 100, 90))
    pal.setColor(roles.Light, QColor(70, 73, 80))
    pal.setColor(roles.Midlight, QColor(60, 63, 70))
    pal.setColor(roles.Mid, QColor(80, 83, 90))
    pal.setColor(roles.Dark, QColor(22, 23, 26))
    pal.setColor(roles.Shadow, QColor(10, 10, 12))
    pal.setColor(roles.Highlight, accent)
    pal.setColor(roles.HighlightedText, QColor(255, 255, 255))
    pal.setColor(roles.Link, accent)
    disabled = QPalette.ColorGroup.Disabled
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        pal.setColor(disabled, role, QColor(120, 123, 130))
    pal.setColor(disabled, roles.Button, QColor(44, 46, 51))
    return pal


STYLE_SHEET = """
QLabel#workspaceTitle { font-size: 16pt; font-weight: 600; }
QLabel#workspaceDescription { color: palette(window-text); }
QLabel#modelNotice {
    border: 1px solid #b8862b; border-radius: 4px; padding: 6px 8px;
    background: rgba(184, 134, 43, 40);
}
QLabel#jobError {
    border: 1px solid #c4473a; border-radius: 4px; padding: 6px 8px;
    background: rgba(196, 71, 58, 45);
}
QLabel#placeholder { color: palette(placeholder-text); font-style: italic; padding: 12px; }
QLabel#clipTitle { font-weight: 600; }
QPushButton#actionButton { padding: 6px 18px; font-weight: 600; }
QTabBar::tab { padding: 6px 18px; font-size: 11pt; }
"""

SYSTEM_STYLE_PROPERTY = "cadenzaSystemStyle"  # the platform style, kept on the application


def apply_theme(app: QApplication, theme: str) -> None:
    """``dark`` (default) and ``light`` use Fusion; ``system`` restores the platform look (the
    style the application had before the first theme was applied)."""
    system_style = app.property(SYSTEM_STYLE_PROPERTY)
    if not system_style:
        system_style = app.style().name()
        app.setProperty(SYSTEM_STYLE_PROPERTY, system_style)
    if theme == "system":
        app.setStyle(QStyleFactory.create(system_style) or QStyleFactory.create("Fusion"))
        app.setPalette(app.style().standardPalette())
    else:
        app.setStyle("Fusion")
        app.setPalette(dark_palette() if theme == "dark" else app.style().standardPalette())
    app.setStyleSheet(STYLE_SHEET)


def create_app(argv: Sequence[str] = ()) -> QApplication:
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(["cadenza", *argv])
    app.setApplicationName("Cadenza")
    app.setOrganizationName("Cadenza")
    app.setApplicationDisplayName("Cadenza")
    app.setDesktopFileName("cadenza")  # the desktop entry (packaging/linux) and its icon
    icon = icon_path()
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    return app


def run_app(argv: Sequence[str] = (),
            on_shown: Callable[[MainWindow], None] | None = None,
            files: Sequence[Path] = ()) -> int:
    """Open the window and run until it closes; the exit code. ``files`` are opened into the
    clip library once the window is shown (``cadenza FILE...``). The application, not the window,
    owns the devices and the worker: made here, handed to the window, closed after the event
    loop (bounded: quitting never waits on a sound server that went away). ``on_shown`` gets
    the window once it is shown (a script driving the app)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = create_app([a for a in argv if a != "--gui"])
    store = open_qsettings()
    services = Services.create(load_settings(store))
    try:
        window = MainWindow(settings_store=store, services=services)
        apply_theme(app, window.settings.theme)
        window.show()
        if files:
            window.open_files(list(files))
        on_shown = on_shown or screenshot_on_shown()
        if on_shown is not None:
            on_shown(window)
        code = int(app.exec())
    finally:
        services.close()
    return code


def end_process(code: int) -> NoReturn:
    """End the app's process after :func:`run_app`: the exit handlers run (PortAudio's guard and
    terminate, the MIDI system's, logging's), the standard streams are flushed, and the process
    ends without the interpreter's own teardown of every imported module, which with TensorFlow
    loaded (by the worker) is over a second of CPU and made quitting slow on a busy machine.
    Everything worth keeping is written by then (settings on change, exports when done)."""
    import atexit
    import os

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    end_process(run_app(sys.argv[1:]))


def _resolved(path: Path) -> Path:
    try:
        return Path(path).resolve()
    except OSError:
        return Path(path)


def clip_tempo(clip: Clip) -> float:
    """A clip's own tempo: its sequence's first (120 when it names none, and for audio)."""
    seq = clip.sequence
    qpm = float(seq.qpm) if seq is not None else 120.0
    return qpm if qpm > 0 else 120.0


def _sound_key(instrument: Any) -> Any:
    """What a MIDI clip's rendering depends on: the instrument, and a live morph's pad."""
    return (id(instrument), getattr(instrument, "xy", None))


def _render_midi(ctx: Any, seq: Any, instrument: Any) -> Any:
    """A MIDI clip as audio: FluidSynth (the worker's renderer), the morph instrument, or the
    live morph's DDSP voices (at the pad's position now)."""
    if instrument is None:
        return ctx.renderer().render(seq)
    from models.ddsp.voices import LiveMorph
    from models.nsynth.voices import render_sequence

    if isinstance(instrument, LiveMorph):
        return instrument.render_sequence(seq)
    return render_sequence(instrument, seq)  # a MorphInstrument
