"""What every workspace shares: a header that says plainly what it does, a model picker, a
notice while its model is missing, and action buttons that stay disabled until it can run.

A model issue fills a workspace in by setting ``implemented = True`` on the subclass and
overriding :meth:`Workspace.run`, which submits a job (from ``app/jobs.py``) with
:meth:`Workspace.submit` and shows the results with the subclass's ``show_*`` method.

:meth:`Workspace.submit` shows a progress bar and a Cancel button while the job runs and puts an
error in the status bar as one line. Results are played through the application's audio engine
(:meth:`Workspace.play`), sent to the configured MIDI output (:meth:`Workspace.send_to_midi`)
and exported (:meth:`Workspace.export_midi`, :meth:`Workspace.export_wav`);
:class:`SequenceCard` is a piano roll with those buttons, for one result.

The worker and the devices come from the application (:class:`app.services.Services`, given to
the constructor); a workspace made without them (alone, in a test) says so instead of playing.

The session tempo: the window hands each workspace a function that gives the tempo of the Live
panel's sync while it runs (:meth:`Workspace.set_tempo_source`, read with
:meth:`Workspace.session_tempo`; None when sync is off). A workspace passes it to its jobs, so
its results carry it, and gives it to its result cards (``SequenceCard(tempo=...)``), so the
clips and files made of them carry it too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QDrag, QMouseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.clips import Clip
from app.widgets.piano_roll import PianoRollPanel
from models.errors import CadenzaError
from models.sequence import NoteSequence

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)


class Workspace(QWidget):
    """Subclasses set the class attributes and build their controls in ``build()``."""

    title = "Workspace"
    family = ""  # model family in models.registry.FAMILIES
    families: tuple[str, ...] = ()  # or several families whose models all fit (Morph)
    model_label = ""  # the model's name for people, e.g. "PerformanceRNN"
    default_model = ""  # picked first when installed (else the family's marked default, else
    # the first of the family)
    description = ""
    train_hint = ""
    implemented = False  # set by the model issue when run() does the real work

    clip_created = Signal(object)  # a new Clip for the library (results the user keeps)
    message = Signal(str)  # one line for the status bar
    state_changed = Signal()  # a control or the results changed: the session is saved soon
    playback_stop_requested = Signal()  # before it plays (or stops): the window stops its clip

    def __init__(self, services: Services | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.worker = services.worker if services is not None else None
        self.devices = services.devices if services is not None else None
        self.models: list[Any] = []  # models.registry.ModelEntry of this family
        self.clips: list[Clip] = []
        self.action_buttons: list[QPushButton] = []

        heading = QLabel(self.title)
        heading.setObjectName("workspaceTitle")
        about = QLabel(self.description)
        about.setWordWrap(True)
        about.setObjectName("workspaceDescription")
        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(200)
        self.model_combo.setToolTip(f"The {self.model_label} model to use")
        head = QHBoxLayout()
        head.addWidget(heading)
        head.addStretch(1)
        head.addWidget(QLabel("Model:"))
        head.addWidget(self.model_combo)

        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setObjectName("modelNotice")
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        # progress of the running job, with Cancel (hidden while idle)
        self.busy = QWidget()
        busy_row = QHBoxLayout(self.busy)
        busy_row.setContentsMargins(0, 0, 0, 0)
        self.progress_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(12)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running job")
        self.cancel_button.clicked.connect(self.cancel)
        busy_row.addWidget(self.progress_label)
        busy_row.addWidget(self.progress, 1)
        busy_row.addWidget(self.cancel_button)
        self.busy.setVisible(False)
        # a failed job's message, where the eye is (the status bar cuts long lines off)
        self.error_label = QLabel()
        self.error_label.setObjectName("jobError")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.setVisible(False)
        self.results_stale = False
        self._wanted_model: str | None = None
        self.job: Any = None  # app.worker.JobHandle of the running model job
        self._play_job: Any = None
        self._midi_out: Any = None
        self._midi_stop: threading.Event | None = None
        self._tempo_source: Callable[[], float | None] | None = None

        self.body = QWidget()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)
        layout.addLayout(head)
        layout.addWidget(about)
        layout.addWidget(self.notice)
        layout.addWidget(self.busy)
        layout.addWidget(self.error_label)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        layout.addWidget(line)
        layout.addWidget(self.body, 1)
        self.build()
        self.set_models([], listed=False)
        from app.widgets.state import watch

        watch(self.state_controls(), self.state_changed.emit)
        self.model_combo.currentIndexChanged.connect(lambda *_: self.state_changed.emit())

    # ------------------------------------------------------------------ for subclasses
    def build(self) -> None:
        """Create the controls inside ``self.body``; register buttons with ``action_button``."""

    def action_button(self, text: str) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName("actionButton")
        button.clicked.connect(self.run)
        self.action_buttons.append(button)
        return button

    def run(self) -> None:
        """Start the model's work (the model issue implements this)."""
        self.message.emit(f"{self.title}: the {self.model_label} model is not installed yet")

    def clips_changed(self) -> None:
        """The library changed: refresh the clip pickers."""

    # ------------------------------------------------------------------ session tempo
    def set_tempo_source(self, source: Callable[[], float | None] | None) -> None:
        """Where the session tempo comes from: a function giving the BPM while sync runs and
        None while it is off (the window passes its ``session_bpm``)."""
        self._tempo_source = source

    def session_tempo(self) -> float | None:
        """The session tempo now (BPM), or None: sync is off, or no source was given."""
        if self._tempo_source is None:
            return None
        bpm = self._tempo_source()
        return float(bpm) if bpm else None

    # ------------------------------------------------------------------ jobs
    def say(self, text: str) -> None:
        """One line for the status bar."""
        self.message.emit(" ".join(str(text).split()))

    def current_model(self) -> str | None:
        return self.model_combo.currentData() if self.models else None

    def submit(self, job: Callable[[Any], Any], on_success: Callable[[Any], None],
               label: str, quiet: bool = False,
               on_failure: Callable[[Exception], None] | None = None) -> Any:
        """Run ``job`` in the worker: progress and Cancel show while it runs (unless ``quiet``,
        for small background decodes); an error becomes one line in the status bar."""
        if self.worker is None:
            self.say(f"{self.title}: no worker")
            return None

        def done(result: Any) -> None:
            self._job_ended(handle)
            if not quiet:
                self.clear_error()
            on_success(result)

        def failed(exc: Exception) -> None:
            self._job_ended(handle)
            if on_failure is not None:
                on_failure(exc)
            self.show_error(f"{label.capitalize()} failed: {exc}")
            self.say(f"{self.title}: {label} failed: {exc}")

        def cancelled() -> None:
            self._job_ended(handle)
            self.say(f"{self.title}: {label} cancelled")

        def progress(fraction: float | None, text: str) -> None:
            if handle is not self.job:
                return
            if fraction is None:
                self.progress.setRange(0, 0)  # busy indicator
            else:
                self.progress.setRange(0, 1000)
                self.progress.setValue(int(fraction * 1000))
            if text:
                self.progress_label.setText(text)

        handle = self.worker.submit(job, on_success=done, on_failure=failed,
                                    on_progress=None if quiet else progress,
                                    on_cancelled=cancelled, label=label)
        if not quiet:
            self.job = handle
            self.clear_error()
            self.progress.setRange(0, 1000)
            self.progress.setValue(0)
            self.progress_label.setText(f"{label.capitalize()}…")
            self.busy.setVisible(True)
            self._set_running(True)
        return handle

    def show_error(self, text: str) -> None:
        """A job failed: its message in full above the results, which are marked as stale
        (they are what an earlier run made, not what the settings now ask for)."""
        line = " ".join(str(text).split())
        self.results_stale = self.has_results()
        if self.results_stale:
            line += "  (The results below are from an earlier run.)"
        self.error_label.setText(line)
        self.error_label.setVisible(True)
        self.mark_stale(self.results_stale)

    def clear_error(self) -> None:
        self.error_label.clear()
        self.error_label.setVisible(False)
        if self.results_stale:
            self.results_stale = False
            self.mark_stale(False)

    def has_results(self) -> bool:
        """Whether results are shown (subclasses say)."""
        return False

    def mark_stale(self, stale: bool) -> None:
        """Mark the result cards as from an earlier run (their titles say so) or current."""
        for card in getattr(self, "cards", []):
            if isinstance(card, SequenceCard):
                card.set_stale(stale)

    # ------------------------------------------------------------------ session
    def state_controls(self) -> dict[str, Any]:
        """The controls whose values a session keeps (by attribute name)."""
        from app.widgets.state import find_controls

        return find_controls(self, skip=("model_combo",))

    def session_state(self) -> dict[str, Any]:
        """The workspace's settings as plain JSON values."""
        from app.widgets.state import capture

        state = capture(self.state_controls())
        state["model"] = self.current_model() or self._wanted_model
        return state

    def restore_session_state(self, state: dict[str, Any]) -> None:
        from app.widgets.state import restore

        restore(self.state_controls(), state)
        model = state.get("model")
        if isinstance(model, str) and model:
            index = self.model_combo.findData(model) if self.models else -1
            if index >= 0:
                self.model_combo.setCurrentIndex(index)
            else:
                self._wanted_model = model  # chosen when the model list arrives

    def session_results(self) -> Any:
        """The latest results as ``app.session.Results`` (None when there are none)."""
        return None

    def restore_results(self, results: Any) -> None:
        """Show results read from a session (``app.session.Results``)."""

    def _job_ended(self, handle: Any) -> None:
        if handle is self.job:
            self.job = None
            self.busy.setVisible(False)
            self._set_running(False)

    def _set_running(self, running: bool) -> None:
        for button in self.action_buttons:
            button.setEnabled(self.can_run and not running)

    @property
    def running(self) -> bool:
        return self.job is not None

    def cancel(self) -> None:
        """Cancel the running model job (it stops at its next check)."""
        if self.job is not None:
            self.job.cancel()
            self.progress_label.setText("Cancelling…")

    # ------------------------------------------------------------------ playing and exporting
    def audio_engine(self) -> Any:
        """The application's audio engine, started on first use; None (and a message) when
        there is none (no output device, lost, or no devices given)."""
        if self.devices is None:
            self.say("No audio output")
            return None
        try:
            return self.devices.audio()
        except CadenzaError as exc:
            self.say(f"No audio output: {exc}")
        except Exception as exc:  # noqa: BLE001 - PortAudio errors, missing library
            log.exception("audio engine")
            self.say(f"No audio output: {exc}")
        return None

    def play(self, item: NoteSequence | Any, loop: bool = False) -> None:
        """Play a sequence (rendered in the worker) or an ``Audio`` on the audio engine's clip
        bus (what the window plays stops first)."""
        from app.jobs import prepare_audio_job

        engine = self.audio_engine()
        if engine is None:
            return
        if self._play_job is not None:
            self._play_job.cancel()
        self.playback_stop_requested.emit()  # whatever the window plays
        rate = int(engine.sample_rate)

        def start(audio: Any) -> None:
            self._play_job = None
            try:
                engine.play(audio, loop=loop)
            except CadenzaError as exc:
                self.say(f"Could not play: {exc}")
                return
            self.say("Playing (looped)" if loop else "Playing")

        def failed(exc: Exception) -> None:
            self._play_job = None
            self.say(f"Could not play: {exc}")

        self._play_job = self.worker.submit(prepare_audio_job(item, rate), on_success=start,
                                            on_failure=failed, label="prepare playback")

    def stop_playback(self) -> None:
        if self._play_job is not None:
            self._play_job.cancel()
            self._play_job = None
        engine = self.devices.engine if self.devices is not None else None
        if engine is not None:
            engine.stop()
        self.playback_stop_requested.emit()

    def send_to_midi(self, seq: NoteSequence) -> bool:
        """Play ``seq`` on the configured MIDI output (Settings ▸ MIDI out) in real time."""
        if self.devices is None:
            self.say("No MIDI system")
            return False
        try:
            from app.midi_ports import play_sequence

            midi = self.devices.midi()
            if not midi.available:
                self.say(f"No MIDI system: {midi.reason}")
                return False
            self._stop_midi()
            out = self.devices.open_midi_output()
        except CadenzaError as exc:
            self.say(f"Could not send to MIDI out: {exc}")
            return False
        except Exception as exc:  # noqa: BLE001 - a broken MIDI stack is reported, not fatal
            log.exception("MIDI out")
            self.say(f"Could not send to MIDI out: {exc}")
            return False
        self._midi_out, self._midi_stop = out, threading.Event()
        play_sequence(out, seq, self._midi_stop)
        self.say(f"Sending to MIDI out {out.name}")
        return True

    def _stop_midi(self) -> None:
        if self._midi_stop is not None:
            self._midi_stop.set()
        if self._midi_out is not None:
            try:
                self._midi_out.close()
            except Exception:  # noqa: BLE001
                log.debug("closing MIDI out", exc_info=True)
        self._midi_out = self._midi_stop = None

    def shutdown(self) -> None:
        """The window is closing: the playback job is cancelled, the MIDI output closed."""
        if self._play_job is not None:
            self._play_job.cancel()
            self._play_job = None
        self._stop_midi()

    def export_midi(self, seq: NoteSequence, path: str | Path) -> Path | None:
        """Write ``seq`` as a MIDI file, or as MusicXML (in the worker) when ``path`` ends in
        .musicxml, .xml or .mxl; the path, or None when it could not be written."""
        from app.jobs import notation_path, write_midi
        from models.musicxml import is_musicxml

        path = notation_path(path)
        if is_musicxml(path):
            self._export_musicxml(seq, path)
            return path
        try:
            written = write_midi(seq, path)
        except CadenzaError as exc:
            self.say(f"Could not export MIDI: {exc}")
            return None
        self.say(f"Exported {written}")
        return written

    def _export_musicxml(self, seq: NoteSequence, path: Path) -> Any:
        from app.jobs import write_musicxml_job

        if self.worker is None:  # no worker (a workspace on its own): written here and now
            try:
                from models.musicxml import write_musicxml

                write_musicxml(seq, path)
            except CadenzaError as exc:
                self.say(f"Could not export MusicXML: {exc}")
                return None
            self.say(f"Exported {path}")
            return None
        return self.worker.submit(
            write_musicxml_job(seq, path), on_success=lambda p: self.say(f"Exported {p}"),
            on_failure=lambda exc: self.say(f"Could not export MusicXML: {exc}"),
            label="export musicxml")

    def export_wav(self, item: NoteSequence | Any, path: str | Path,
                   done: Callable[[str], None] | None = None, rate: int = 0,
                   subtype: str = "PCM_16", tempo: float | None = None) -> Any:
        """Render (a sequence) and write an audio file in the worker (WAV, FLAC, AIFF, OGG or
        MP3 by the extension, ``.wav`` when it has none), at ``rate`` Hz when given (else the
        item's own), as ``subtype``; ``done(path)`` when written. ``tempo``: the session tempo
        the item was made at (a WAV says so in its ``acid`` chunk; an ``Audio`` carries its
        own)."""
        from app.jobs import write_wav_job
        from app.widgets.export_dialog import audio_export_path

        path = audio_export_path(path)

        def ok(result: str) -> None:
            self.say(f"Exported {result}")
            if done is not None:
                done(result)

        return self.worker.submit(write_wav_job(item, path, rate, subtype, tempo),
                                  on_success=ok,
                                  on_failure=lambda exc: self.say(f"Could not export audio: {exc}"),
                                  label="export wav")

    def export_dialog(self, item: NoteSequence | Any, name: str, wav: bool,
                      rate: int = 0, tempo: float | None = None) -> None:
        stem = Clip(name, sequence=NoteSequence()).file_name().rsplit(".", 1)[0]
        if wav:
            from app.widgets.export_dialog import AudioExportDialog

            own = getattr(item, "sample_rate", None)
            dialog = AudioExportDialog(stem, rate=rate, own_rate=own, parent=self,
                                       notation=isinstance(item, NoteSequence))
            if dialog.exec():
                choice = dialog.choice()
                if choice.is_notation:
                    self.export_midi(item, choice.path)
                else:
                    self.export_wav(item, choice.path, rate=choice.rate,
                                    subtype=choice.subtype, tempo=tempo)
        else:
            path, _ = QFileDialog.getSaveFileName(self, "Export MIDI", stem + ".mid",
                                                  "MIDI (*.mid);;MusicXML (*.musicxml *.mxl)")
            if path:
                self.export_midi(item, path)

    def keep(self, clip: Clip) -> None:
        """Add a result to the clip library."""
        self.clip_created.emit(clip)

    # ------------------------------------------------------------------ state
    @property
    def can_run(self) -> bool:
        return self.implemented and bool(self.models)

    def set_clips(self, clips: list[Clip]) -> None:
        self.clips = list(clips)
        self.clips_changed()

    def set_models(self, entries: list[Any], listed: bool = True) -> None:
        """The installed models of this workspace's family (``ModelEntry`` objects).

        ``listed=False``: the list has not arrived yet (start-up), so an empty one means
        "looking", not "none installed".
        """
        families = self.families or (self.family,)
        self.models = [e for e in entries if getattr(e, "family", None) in families]
        # A refreshed list (after a training, or the startup listing arriving late) keeps the
        # model the musician picked.
        marked = next((e.name for e in self.models if getattr(e, "is_default", False)), "")
        chosen = (self._wanted_model or self.model_combo.currentData() or self.default_model
                  or marked)
        if self._wanted_model and any(e.name == self._wanted_model for e in self.models):
            self._wanted_model = None
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for entry in self.models:
            self.model_combo.addItem(entry.name, entry.name)
        index = self.model_combo.findData(chosen) if chosen else -1
        self.model_combo.setCurrentIndex(max(index, 0))
        self.model_combo.blockSignals(False)
        self.model_combo.setEnabled(bool(self.models))
        if not self.models and not listed:
            self.model_combo.addItem("looking for models…")
            reason = ""
        elif not self.models:
            self.model_combo.addItem("none installed")
            reason = (f"The {self.model_label} model is not installed yet, so {self.title} "
                      f"cannot run. {self.train_hint}")
        elif not self.implemented:
            reason = (f"A {self.model_label} model is installed, but {self.title} is not "
                      f"connected to it in this version of Cadenza yet.")
        else:
            reason = ""
        self.notice.setText(reason)
        self.notice.setVisible(bool(reason))
        for button in self.action_buttons:
            button.setEnabled(self.can_run and not self.running)
            button.setToolTip(reason or ("Looking for the installed models…" if not listed
                                         else button.text()))
        self.models_changed()

    def models_changed(self) -> None:
        """The model list changed: subclasses enable their extra controls."""

    def midi_clips(self) -> list[Clip]:
        return [c for c in self.clips if c.is_midi]

    def audio_clips(self) -> list[Clip]:
        return [c for c in self.clips if not c.is_midi]


def fill_clip_combo(combo: QComboBox, clips: list[Clip], empty: str,
                    default_index: int | None = None) -> None:
    """Refill a clip picker, keeping the selected clip when it is still there, else choosing
    ``clips[default_index]`` when there is one, else the ``empty`` entry."""
    current = combo.currentData()
    combo.blockSignals(True)
    combo.clear()
    combo.addItem(empty, None)
    for clip in clips:
        combo.addItem(clip.name, clip.id)
    index = combo.findData(current) if current is not None else -1
    if index < 0 and default_index is not None and default_index < len(clips):
        index = default_index + 1
    combo.setCurrentIndex(max(0, index))
    combo.blockSignals(False)


def session_tempo_of(meta: dict[str, Any]) -> float | None:
    """The session tempo a session's results were made at (``meta["tempo"]``), when it is a
    tempo the sync could have had; None otherwise."""
    from app.session import tempo_value

    return tempo_value(meta.get("tempo"))


def placeholder(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("placeholder")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    return label


class DragHandle(QLabel):
    """Drag this out (to a DAW or a file manager) to drop the result as a file."""

    def __init__(self, clip_for_drag: Callable[[], Clip], parent: QWidget | None = None) -> None:
        super().__init__("⠿", parent)
        self.clip_for_drag = clip_for_drag
        self.setToolTip("Drag the result out as a .mid file (to your DAW or a folder)")
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self._press: QPoint | None = None

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._press = event.position().toPoint()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._press is None or (event.position().toPoint() - self._press).manhattanLength() < 8:
            return
        self._press = None
        drag = QDrag(self)
        drag.setMimeData(self.mime_data())
        drag.exec(Qt.DropAction.CopyAction)

    def mime_data(self) -> Any:
        """The result written as a file in the drag folder, as URL mime data."""
        from PySide6.QtCore import QMimeData, QUrl

        from app.clips import export_clip
        from app.widgets.clip_library import default_drag_folder

        clip = self.clip_for_drag()
        path = export_clip(clip, default_drag_folder())  # kept, never over another file
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        return mime


class SequenceCard(QWidget):
    """One result: a titled piano roll with Play, Loop, MIDI out, Export MIDI/WAV, Add to library
    and a drag handle. ``loop`` adds the Loop button (Interpolate's cells); ``tempo``: the
    session tempo it was made at (its clip, its rendered WAV and its .mid carry it)."""

    def __init__(self, ws: Workspace, seq: NoteSequence, name: str, boundary: float | None = None,
                 loop: bool = False, compact: bool = False, tempo: float | None = None) -> None:
        super().__init__()
        self.ws, self.sequence, self.name, self.tempo = ws, seq, name, tempo
        self.panel = PianoRollPanel()
        self.panel.set_sequence(seq, name)
        self.panel.setToolTip(name)
        if compact:  # a narrow cell: the title and Fit only
            self.panel.set_compact()
        self.fit_height()
        if boundary is not None:
            self.panel.roll.set_marker(boundary)
        self.buttons: dict[str, QToolButton] = {}
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        actions: list[tuple[str, str, str, str, Callable[[], None]]] = [
            ("play", "▶ Play", "▶", "Play it through the audio output", lambda: ws.play(seq)),
        ]
        if loop:
            actions.append(("loop", "⟳ Loop", "⟳", "Play it over and over",
                            lambda: ws.play(seq, loop=True)))
        actions += [
            ("midi", "MIDI out", "MIDI", "Send it to the MIDI output (Settings ▸ MIDI out)",
             lambda: ws.send_to_midi(seq)),
            ("mid", "Export MIDI…", ".mid", "Save it as a .mid file",
             lambda: ws.export_dialog(seq, name, wav=False)),
            ("wav", "Export audio…", ".wav", "Render it and save it as WAV, FLAC, AIFF, OGG, MP3 "
             "(or write its notes as MIDI or MusicXML)",
             lambda: ws.export_dialog(seq, name, wav=True, tempo=self.tempo)),
            ("keep", "Add to library", "+ Lib", "Keep it in the clip library", self.keep),
        ]
        for key, text, short, tip, slot in actions:
            b = QToolButton()
            b.setText(short if compact else text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            row.addWidget(b)
            self.buttons[key] = b
        row.addStretch(1)
        self.handle = DragHandle(self.clip)
        row.addWidget(self.handle)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 6)
        col.setSpacing(2)
        col.addWidget(self.panel, 1)
        col.addLayout(row)

    def fit_height(self) -> None:
        """Tall enough to read the notes: the roll's preferred height (the pitches or drum
        lanes it shows, at a readable size per row) plus the panel's title and scroll bar; a
        list of cards scrolls rather than squeezing them."""
        self.panel.setMinimumHeight(self.panel.roll.preferred_height()
                                    + self.panel.chrome_height())

    def clip(self) -> Clip:
        return Clip(self.name, sequence=self.sequence, tempo=self.tempo)

    def set_stale(self, stale: bool) -> None:
        """Say in the title that this result is from an earlier run (the last one failed)."""
        title = self.panel.bar.title
        title.setText(f"{self.name}  (from an earlier run)" if stale else self.name)
        title.setProperty("stale", stale)
        title.setStyleSheet("color: palette(placeholder-text); font-style: italic;" if stale
                            else "")

    def keep(self) -> None:
        self.ws.keep(self.clip())
