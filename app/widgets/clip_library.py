"""The clip library: open, drop files in, drag clips out as files, rename, remove."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, QUrl, Signal
from PySide6.QtGui import QDrag, QDragEnterEvent, QDragMoveEvent, QDropEvent
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

from app.clips import AUDIO_SUFFIXES, MIDI_SUFFIXES, Clip, export_clip, exports_dir
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
        self.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed
                             | QAbstractItemView.EditTrigger.SelectedClicked)

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
        self._dragged: dict[int, Path] = {}  # clip id -> the file a drag wrote for it
        self.list = _ClipList(self)
        self.list.setToolTip("Drop MIDI or audio files here; drag a clip out to a DAW or folder")
        self.info = QLabel(f"Open or drop MIDI ({', '.join(MIDI_SUFFIXES[:1])}) and audio "
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

    def add_clip(self, clip: Clip, select: bool = True) -> None:
        self._clips[clip.id] = clip
        item = QListWidgetItem(clip.name)
        item.setData(Qt.ItemDataRole.UserRole, clip.id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsDragEnabled)
        icon = QStyle.StandardPixmap.SP_MediaVolume if not clip.is_midi \
            else QStyle.StandardPixmap.SP_FileIcon
        item.setIcon(self.style().standardIcon(icon))
        item.setToolTip(self._tooltip(clip))
        self.list.blockSignals(True)
        self.list.addItem(item)
        self.list.blockSignals(False)
        self.clips_changed.emit()
        if select:
            self.list.setCurrentItem(item)
        self._update_buttons()

    def current_clip(self) -> Clip | None:
        item = self.list.currentItem()
        return None if item is None else self._clips.get(item.data(Qt.ItemDataRole.UserRole))

    def select(self, clip: Clip) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == clip.id:
                self.list.setCurrentRow(i)
                return

    def rename(self, clip: Clip, name: str) -> None:
        name = name.strip()
        if not name:
            return
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == clip.id:
                item.setText(name)  # _item_edited updates the clip
                return

    def remove(self, clip: Clip) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == clip.id:
                self.list.takeItem(i)
                self._clips.pop(clip.id, None)
                self._dragged.pop(clip.id, None)
                self.clips_changed.emit()
                break
        if self.list.count() == 0:
            self.current_changed.emit(None)
        self._update_buttons()

    def remove_current(self) -> None:
        clip = self.current_clip()
        if clip is not None:
            self.remove(clip)

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
        name = item.text().strip()
        if name:
            clip.name = name
            item.setToolTip(self._tooltip(clip))
            self.clips_changed.emit()
        else:
            self.list.blockSignals(True)
            item.setText(clip.name)
            self.list.blockSignals(False)

    def _menu(self, pos: object) -> None:
        item = self.list.itemAt(pos)  # type: ignore[arg-type]
        if item is None:
            return
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.list.editItem(item))
        menu.addAction("Remove", self.remove_current)
        menu.exec(self.list.viewport().mapToGlobal(pos))  # type: ignore[arg-type]

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(self.list.currentItem() is not None)
