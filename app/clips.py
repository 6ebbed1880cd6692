"""A clip: one piece of music in the library, MIDI (a ``NoteSequence``) or audio (an ``Audio``).

A clip made while the Live panel's sync ran remembers the session tempo (``Clip.tempo``, BPM):
a MIDI clip's sequence carries it as its one tempo event, an audio clip's ``Audio`` as the
``acid`` chunk its WAV gets (``models.audio_io.AcidInfo``: what DAWs read as the file's tempo).
A session keeps it, and every file written of the clip (:func:`write_clip`, the drag-out, the
export dialogs) carries it. A clip made with sync off has none (None), as before.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import CadenzaError
from models.musicxml import MUSICXML_SUFFIXES
from models.sequence import NoteSequence

if TYPE_CHECKING:  # audio_io pulls in soundfile; imported when an audio file is opened
    from models.audio_io import Audio

MIDI_SUFFIXES = (".mid", ".midi")
SEQUENCE_SUFFIXES = MIDI_SUFFIXES + MUSICXML_SUFFIXES
"""Files read into a MIDI clip: MIDI, and MusicXML (``models.musicxml``: notation)."""
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
"""Audio files the app opens and writes (``models.audio_io.FORMATS``, without importing it)."""
_MIDI_GLOB = " ".join(f"*{s}" for s in MIDI_SUFFIXES)
_MUSICXML_GLOB = " ".join(f"*{s}" for s in MUSICXML_SUFFIXES)
_AUDIO_GLOB = " ".join(f"*{s}" for s in AUDIO_SUFFIXES)
OPEN_FILTER = (f"Music files ({_MIDI_GLOB} {_MUSICXML_GLOB} {_AUDIO_GLOB});;MIDI ({_MIDI_GLOB});;"
               f"MusicXML ({_MUSICXML_GLOB});;Audio ({_AUDIO_GLOB})")
AUDIO_EXPORTS = (  # (label, extension, container) as offered by the export dialogs
    ("WAV", ".wav", "WAV"),
    ("FLAC", ".flac", "FLAC"),
    ("AIFF", ".aiff", "AIFF"),
    ("OGG Vorbis", ".ogg", "OGG"),
    ("MP3", ".mp3", "MP3"),
)
NOTATION_EXPORTS = (  # (label, extension, format): what a MIDI clip may be written as, no render
    ("MIDI", ".mid", "MIDI"),
    ("MusicXML", ".musicxml", "MUSICXML"),
    ("MusicXML, compressed", ".mxl", "MXL"),
)

_ids = itertools.count(1)


@dataclass(eq=False, repr=False)
class Clip:
    """A named clip. Exactly one of ``sequence`` and ``audio`` is set."""

    name: str
    sequence: NoteSequence | None = None
    audio: Audio | None = None
    source: Path | None = None
    id: int = field(default_factory=lambda: next(_ids))
    tempo: float | None = None  # the session tempo (BPM) it was made with; None: none

    def __post_init__(self) -> None:
        if (self.sequence is None) == (self.audio is None):
            raise ValueError("a clip holds either a NoteSequence or an Audio")
        acid = getattr(self.audio, "acid", None)
        if self.tempo is None and acid is not None:
            self.tempo = float(acid.tempo)  # a WAV that says its tempo (one of ours, or Acid's)
        elif self.tempo is not None and self.audio is not None and acid is None:
            self.audio = self.audio_with_tempo()

    def __repr__(self) -> str:
        return f"Clip({self.name!r}, {self.kind}, id={self.id})"

    @property
    def is_midi(self) -> bool:
        return self.sequence is not None

    @property
    def kind(self) -> str:
        return "MIDI" if self.is_midi else "audio"

    @property
    def duration(self) -> float:
        if self.sequence is not None:
            return self.sequence.total_time
        assert self.audio is not None
        return float(self.audio.duration)

    @property
    def summary(self) -> str:
        tempo = f" · {self.tempo:g} BPM" if self.tempo else ""
        if self.sequence is not None:
            return f"MIDI · {len(self.sequence.notes)} notes · {_clock(self.duration)}{tempo}"
        assert self.audio is not None
        return f"audio · {self.audio.sample_rate} Hz · {_clock(self.duration)}{tempo}"

    def audio_with_tempo(self) -> Audio | None:
        """The clip's audio as a file of it is written: carrying the clip's tempo (None for a
        MIDI clip)."""
        if self.audio is None:
            return None
        if self.tempo is None or self.audio.acid is not None:
            return self.audio
        from models.audio_io import AcidInfo

        return self.audio.with_acid(AcidInfo(tempo=self.tempo))

    def file_name(self) -> str:
        """A safe file name for exporting or dragging this clip out."""
        stem = re.sub(r"[^\w\-. ]+", "_", self.name).strip(" .") or "clip"
        return stem + (".mid" if self.is_midi else ".wav")


def load_clip(path: str | Path) -> Clip:
    """Read a MIDI, MusicXML or audio file into a clip; ``CadenzaError`` for anything
    unusable."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise CadenzaError(f"no such file: {path}")
    if suffix in SEQUENCE_SUFFIXES:
        from models.music_files import read_sequence

        seq = read_sequence(path)
        if seq.is_empty:
            raise CadenzaError(f"{path.name} has no notes")
        return Clip(path.stem, sequence=seq, source=path)
    if suffix in AUDIO_SUFFIXES:
        from models.audio_io import read_audio

        audio = read_audio(path)
        if audio.samples.shape[0] == 0:
            raise CadenzaError(f"{path.name} has no audio")
        return Clip(path.stem, audio=audio, source=path)
    raise CadenzaError(f"{path.name}: not a MIDI ({', '.join(MIDI_SUFFIXES)}), MusicXML "
                       f"({', '.join(MUSICXML_SUFFIXES)}) or audio ({', '.join(AUDIO_SUFFIXES)}) "
                       f"file")


def write_clip(clip: Clip, path: str | Path) -> Path:
    """Write a MIDI clip as .mid (as MusicXML when ``path`` ends in .musicxml, .xml or .mxl) or
    an audio clip as .wav (no rendering), with its tempo."""
    path = Path(path)
    if clip.sequence is not None:
        from models.music_files import write_sequence

        write_sequence(clip.sequence, path)
    else:
        from models.audio_io import write_audio

        audio = clip.audio_with_tempo()
        assert audio is not None
        write_audio(path, audio)
    return path


def exports_dir() -> Path:
    """The per-user folder that clips dragged out of Cadenza are written to and kept in:
    ``$XDG_DATA_HOME/cadenza/exports`` (``~/.local/share/cadenza/exports`` by default), so a
    DAW that references a dropped file still finds it later."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cadenza" / "exports"


def reserve_path(folder: Path, file_name: str) -> Path:
    """A new file in ``folder`` named ``file_name``, or, when that is taken, the same name with a
    short unique suffix (``name-1a2b3c.mid``); created empty (exclusively), so two writers never
    get the same name. The folder is made if needed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CadenzaError(f"cannot make the folder {folder}: {exc.strerror or exc}") from exc
    stem, suffix = os.path.splitext(file_name)
    candidate = folder / file_name
    for _ in range(100):
        try:
            with open(candidate, "x"):
                return candidate
        except FileExistsError:
            candidate = folder / f"{stem}-{uuid.uuid4().hex[:6]}{suffix}"
        except OSError as exc:
            raise CadenzaError(f"cannot write in {folder}: {exc.strerror or exc}") from exc
    raise CadenzaError(f"cannot find a free name for {file_name} in {folder}")


def export_clip(clip: Clip, folder: Path) -> Path:
    """Write ``clip`` into ``folder`` under its own name (unique: never over another file) and
    keep it there; the path written."""
    path = reserve_path(folder, clip.file_name())
    try:
        return write_clip(clip, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60.0)
    return f"{int(minutes)}:{secs:04.1f}"
