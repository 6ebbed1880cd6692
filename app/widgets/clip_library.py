"""The clip library: open, drop files in, drag clips out as files, rename, reorder, remove.

Every change of the library (add, remove, rename, move, a kept result) is a command on its
``undo_stack`` (a ``QUndoStack``: Edit ▸ Undo/Redo in the window); the raw changes
(``apply_insert``, ``apply_take``, ``apply_rename``, ``apply_move``) are only called by those
commands (and ``replace_all``, for an opened session).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, QUrl, Signal
from PySide6.QtGui import (
    QDrag,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeyEvent,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from app.clips import (
    AUDIO_SUFFIXES,
    MIDI_SUFFIXES,
    MUSICXML_SUFFIXES,
    Clip,
    export_clip,
    exports_dir,
)
from models.errors import CadenzaError


def default_drag_folder() -> Path:
    """Where dragged-out clips are written and kept: the per-user exports folder."""
    return exports_dir()


class _ClipList(QListWidget):
    """A list that accepts dropped files and drags its clips out as files."""

    files_dropped = Signal(list)

    def __init__(self, library: ClipLibrary) -> None:
        super().__init__()
        self._library = library
        self.setAcceptDrops(True)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        # F2, a double click or the menu's Rename edit the name; a click on a selected clip
        # does not (Delete right after it used to blank the name instead of removing the clip)
        self.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed
                             | QAbstractItemView.EditTrigger.DoubleClicked)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        key, mods = event.key(), event.modifiers()
        editing = self.state() == QAbstractItemView.State.EditingState
        if not editing and key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) \
                and self.currentItem() is not None:
            self._library.remove_current()
            event.accept()
            return
        if not editing and mods & Qt.KeyboardModifier.ControlModifier \
                and key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            self._library.move_current(-1 if key == Qt.Key.Key_Up else 1)
            event.accept()
            return
        super().keyPressEvent(event)

    @staticmethod
    def _local_files(event: QDropEvent | QDragEnterEvent | QDragMoveEvent) -> list[Path]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.source() is not self and self._local_files(event):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 - Qt override
        if event.source() is not self and self._local_files(event):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        files = self._local_files(event) if event.source() is not self else []
        if not files:
            event.ignore()
            return
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        self.files_dropped.emit(files)

    def startDrag(self, supported: Qt.DropAction) -> None:  # noqa: N802 - Qt override
        clip = self._library.current_clip()
        if clip is None:
            return
        try:
            mime = self._library.mime_data_for(clip)
        except CadenzaError as exc:
            self._library.error.emit(str(exc))
            return
        drag = QDrag(self)
        drag.setMimeData(mime)
        drag.exec(Qt.DropAction.CopyAction, Qt.DropAction.CopyAction)


class _Add(QUndoCommand):
    def __init__(self, library: ClipLibrary, clips: list[Clip], text: str, select: bool) -> None:
        super().__init__(text)
        self.library, self.clips, self.select = library, clips, select
        self.rows: list[int] = []

    def redo(self) -> None:
        start = self.library.list.count()
        self.rows = list(range(start, start + len(self.clips)))
        for row, clip in zip(self.rows, self.clips, strict=True):
            self.library.apply_insert(clip, row, self.select)

    def undo(self) -> None:
        for clip in reversed(self.clips):
            self.library.apply_take(clip)


class _Remove(QUndoCommand):
    def __init__(self, library: ClipLibrary, clip: Clip) -> None:
        super().__init__(f"Remove {clip.name}")
        self.library, self.clip, self.row = library, clip, 0

    def redo(self) -> None:
        self.row = self.library.apply_take(self.clip)

    def undo(self) -> None:
        self.library.apply_insert(self.clip, self.row, True)


class _Rename(QUndoCommand):
    def __init__(self, library: ClipLibrary, clip: Clip, old: str, new: str) -> None:
        super().__init__(f"Rename {old} to {new}")
        self.library, self.clip, self.old, self.new = library, clip, old, new

    def redo(self) -> None:
        self.library.apply_rename(self.clip, self.new)

    def undo(self) -> None:
        self.library.apply_rename(self.clip, self.old)


class _Move(QUndoCommand):
    def __init__(self, library: ClipLibrary, clip: Clip, old: int, new: int) -> None:
        super().__init__(f"Move {clip.name}")
        self.library, self.clip, self.old, self.new = library, clip, old, new

    def redo(self) -> None:
        self.library.apply_move(self.clip, self.new)

    def undo(self) -> None:
        self.library.apply_move(self.clip, self.old)


class ClipLibrary(QWidget):
    """The list of clips. Emits ``current_changed(clip or None)``, ``open_requested``,
    ``files_dropped(list[Path])`` and ``error(str)``; the window does the file reading."""

    current_changed = Signal(object)
    open_requested = Signal()
    files_dropped = Signal(list)
    error = Signal(str)
    clips_changed = Signal()

    def __init__(self, parent: QWidget | None = None, drag_folder: Path | None = None) -> None:
        super().__init__(parent)
        self._drag_folder = drag_folder  # None: the per-user exports folder, looked up per drag
        self._clips: dict[int, Clip] = {}
        self.undo_stack = QUndoStack(self)
        self._dragged: dict[int, Path] = {}  # clip id -> the file a drag wrote for it
        self.list = _ClipList(self)
        self.list.setToolTip("Drop MIDI, MusicXML or audio files here; drag a clip out to a DAW "
                             "or folder")
        self.info = QLabel(f"Open or drop MIDI ({', '.join(MIDI_SUFFIXES[:1])}), MusicXML "
                           f"({', '.join(MUSICXML_SUFFIXES)}) and audio "
                           f"({', '.join(AUDIO_SUFFIXES)}) files, or try File ▸ Open Examples.")
        self.info.setWordWrap(True)
        self.info.setObjectName("libraryInfo")
        open_button = QPushButton("Open…")
        open_button.clicked.connect(self.open_requested)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_current)
        buttons = QHBoxLayout()
        buttons.addWidget(open_button)
        buttons.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(buttons)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.info)
        self.list.files_dropped.connect(self.files_dropped)
        self.list.currentItemChanged.connect(self._current_item_changed)
        self.list.itemChanged.connect(self._item_edited)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self._update_buttons()

    # ------------------------------------------------------------------ model
    def clips(self) -> list[Clip]:
        return [self._clips[self.list.item(i).data(Qt.ItemDataRole.UserRole)]
                for i in range(self.list.count())]

    def add_clip(self, clip: Clip, select: bool = True, text: str = "") -> None:
        """Add a clip at the end (undoable: ``text`` names the step, "Add NAME" by default)."""
        self.add_clips([clip], select=select, text=text or f"Add {clip.name}")

    def add_clips(self, clips: list[Clip], select: bool = True, text: str = "") -> None:
        """Add clips at the end as one undoable step."""
        clips = [c for c in clips if c.id not in self._clips]
        if clips:
            self.undo_stack.push(_Add(self, clips, text or f"Add {len(clips)} clips", select))

    def current_clip(self) -> Clip | None:
        item = self.list.currentItem()
        return None if item is None else self._clips.get(item.data(Qt.ItemDataRole.UserRole))

    def row_of(self, clip: Clip) -> int:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == clip.id:
                return i
        return -1

    def select(self, clip: Clip) -> None:
        row = self.row_of(clip)
        if row >= 0:
            self.list.setCurrentRow(row)

    def rename(self, clip: Clip, name: str) -> None:
        """Rename a clip (undoable); a blank name is ignored."""
        name = " ".join(name.split())
        if not name or clip.id not in self._clips or name == clip.name:
            return
        self.undo_stack.push(_Rename(self, clip, clip.name, name))

    def remove(self, clip: Clip) -> None:
        """Remove a clip (undoable)."""
        if clip.id in self._clips:
            self.undo_stack.push(_Remove(self, clip))

    def remove_current(self) -> None:
        clip = self.current_clip()
        if clip is not None:
            self.remove(clip)

    def move(self, clip: Clip, row: int) -> None:
        """Move a clip to ``row`` (undoable)."""
        old = self.row_of(clip)
        row = max(0, min(row, self.list.count() - 1))
        if old >= 0 and row != old:
            self.undo_stack.push(_Move(self, clip, old, row))

    def move_current(self, step: int) -> None:
        clip = self.current_clip()
        if clip is not None:
            self.move(clip, self.row_of(clip) + step)

    def replace_all(self, clips: list[Clip], current: int | None = None) -> None:
        """The library becomes ``clips`` (an opened session): not undoable, the history is
        cleared."""
        self.undo_stack.clear()
        self.list.blockSignals(True)
        self.list.clear()
        self._clips.clear()
        for row, clip in enumerate(clips):
            self.apply_insert(clip, row, False, emit=False)
        self.list.blockSignals(False)
        self.clips_changed.emit()
        if current is not None and 0 <= current < len(clips):
            self.list.setCurrentRow(current)
        else:
            self.list.setCurrentRow(-1)
            self._current_item_changed(None, None)
        self._update_buttons()

    # ------------------------------------------------------------------ raw changes
    def apply_insert(self, clip: Clip, row: int, select: bool, emit: bool = True) -> None:
        self._clips[clip.id] = clip
        item = QListWidgetItem(clip.name)
        item.setData(Qt.ItemDataRole.UserRole, clip.id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsDragEnabled)
        icon = QStyle.StandardPixmap.SP_MediaVolume if not clip.is_midi \
            else QStyle.StandardPixmap.SP_FileIcon
        item.setIcon(self.style().standardIcon(icon))
        item.setToolTip(self._tooltip(clip))
        blocked = self.list.blockSignals(True)
        self.list.insertItem(row, item)
        self.list.blockSignals(blocked)
        if emit:
            self.clips_changed.emit()
        if select:
            self.list.setCurrentItem(item)
        self._update_buttons()

    def apply_take(self, clip: Clip) -> int:
        row = self.row_of(clip)
        if row < 0:
            return 0
        self.list.takeItem(row)
        self._clips.pop(clip.id, None)
        self.clips_changed.emit()
        if self.list.count() == 0:
            self.current_changed.emit(None)
        self._update_buttons()
        return row

    def apply_rename(self, clip: Clip, name: str) -> None:
        clip.name = name
        row = self.row_of(clip)
        if row >= 0:
            item = self.list.item(row)
            blocked = self.list.blockSignals(True)
            item.setText(name)
            item.setToolTip(self._tooltip(clip))
            self.list.blockSignals(blocked)
        self.clips_changed.emit()
        if self.current_clip() is clip:
            self.info.setText(clip.summary)
            self.current_changed.emit(clip)

    def apply_move(self, clip: Clip, row: int) -> None:
        old = self.row_of(clip)
        if old < 0:
            return
        blocked = self.list.blockSignals(True)
        item = self.list.takeItem(old)
        self.list.insertItem(row, item)
        self.list.blockSignals(blocked)
        self.list.setCurrentItem(item)
        self.clips_changed.emit()

    # ------------------------------------------------------------------ drag out
    @property
    def drag_folder(self) -> Path:
        return self._drag_folder or default_drag_folder()

    def export_for_drag(self, clip: Clip) -> Path:
        """The clip as a file in the drag folder (.mid for MIDI, .wav for audio), kept there:
        named after the clip, with a short unique suffix when the name is taken. Dragging the
        same clip again (same name, file still there) gives the same file."""
        earlier = self._dragged.get(clip.id)
        if (earlier is not None and earlier.is_file() and earlier.parent == self.drag_folder
                and earlier.name.startswith(clip.file_name().rsplit(".", 1)[0])):
            return earlier
        try:
            path = export_clip(clip, self.drag_folder)
        except OSError as exc:
            raise CadenzaError(f"could not write {clip.name}: {exc.strerror or exc}") from exc
        self._dragged[clip.id] = path
        return path

    def mime_data_for(self, clip: Clip) -> QMimeData:
        path = self.export_for_drag(clip)
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        return mime

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _tooltip(clip: Clip) -> str:
        source = f"\n{clip.source}" if clip.source else ""
        return f"{clip.name}\n{clip.summary}{source}"

    def _current_item_changed(self, current: QListWidgetItem | None, _previous: object) -> None:
        clip = self.current_clip()
        self.info.setText(clip.summary if clip else "")
        self._update_buttons()
        self.current_changed.emit(clip)

    def _item_edited(self, item: QListWidgetItem) -> None:
        clip = self._clips.get(item.data(Qt.ItemDataRole.UserRole))
        if clip is None:
            return
        name = " ".join(item.text().split())
        blocked = self.list.blockSignals(True)
        item.setText(clip.name)  # the command sets the new name (or a blank one is refused)
        self.list.blockSignals(blocked)
        if name and name != clip.name:
            self.rename(clip, name)

    def _menu(self, pos: object) -> None:
        item = self.list.itemAt(pos)  # type: ignore[arg-type]
        if item is None:
            return
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.list.editItem(item))
        menu.addAction("Move Up", lambda: self.move_current(-1))
        menu.addAction("Move Down", lambda: self.move_current(1))
        menu.addAction("Remove", self.remove_current)
        menu.exec(self.list.viewport().mapToGlobal(pos))  # type: ignore[arg-type]

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(self.list.currentItem() is not None)
