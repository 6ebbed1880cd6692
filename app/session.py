"""Sessions: everything a musician made in the app, in one file that other programs can read.

A session file (``*.cadenza``) is a zip archive:

- ``manifest.json``: ``{"format": "cadenza-session", "version": 1, "clips": [...],
  "current_clip": INDEX or null, "results": {WORKSPACE: {...}}, "workspaces": {WORKSPACE:
  {control: value}}, "live": {control: value}, "window": {...}}``;
- ``clips/NNN.mid`` and ``clips/NNN.wav``: the clip library in order (each clip's entry in
  ``clips`` names its ``file``, ``name``, ``kind`` ("midi" or "audio"), the ``source`` file it
  was opened from, if any, and the session ``tempo`` it was made with, if any: a MIDI file
  carries it as its tempo, a WAV in its ``acid`` chunk);
- ``results/WORKSPACE-NNN.mid`` or ``.wav``: each workspace's latest results (the entry in
  ``results`` lists their ``files`` and ``names`` and the workspace's own ``meta``, such as the
  Continue primer's end in seconds and the session ``tempo`` the results were made at);
- ``results/WORKSPACE-instrument/NAME``: a workspace's playable instrument, when it made one
  (Morph's "Make instrument"): its WAVs (stored as they are), its one SFZ and any JSON, as the
  instrument's folder holds them, listed in the entry's ``instrument``. A session file is
  untrusted: the reader takes plain file names only (no folders, no ``..``, no leading dot),
  with the suffix ``.wav``, ``.sfz`` or ``.json``, at most :data:`MAX_INSTRUMENT_FILES` of them
  and exactly one SFZ. An older session has no such key.

Everything in it is a standard MIDI or WAV file or JSON: ``unzip`` and any DAW read it without
Cadenza. The app autosaves its session to ``autosave.cadenza`` in the per-user state folder
(:func:`state_dir`, ``$XDG_STATE_HOME/cadenza``, by default ``~/.local/state/cadenza``) a moment
after each change, through :mod:`models.files` (written beside, then renamed in: a crash or a
kill leaves the previous autosave whole), and opens it on the next start.

This module has no Qt: the window gathers a :class:`SessionData` and hands it here.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.clips import Clip
from models import files
from models.errors import CadenzaError
from models.sequence import NoteSequence

if TYPE_CHECKING:
    from models.audio_io import Audio

FORMAT = "cadenza-session"
VERSION = 1
SUFFIX = ".cadenza"
FILTER = "Cadenza sessions (*.cadenza)"
AUTOSAVE_NAME = "autosave.cadenza"
RECENT_NAME = "recent.json"
RECENT_MAX = 10
MAX_MEMBERS = 10_000
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_SESSION_BYTES = 8 * 1024**3  # all members together, uncompressed
MAX_INSTRUMENT_FILES = 128 + 2  # an instrument's WAVs (one per region), its SFZ and its JSON
INSTRUMENT_SUFFIXES = (".wav", ".sfz", ".json")


def state_dir() -> Path:
    """The per-user folder for the autosave and the recent lists: ``$XDG_STATE_HOME/cadenza``
    (``~/.local/state/cadenza`` when unset)."""
    base = os.environ.get("XDG_STATE_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "state"
    return root / "cadenza"


@dataclass
class Results:
    """A workspace's latest results: MIDI sequences or one audio, with names and metadata, and
    an instrument's files (file name → bytes: its WAVs, its SFZ, any JSON), if it made one."""

    sequences: list[NoteSequence] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    audio: Audio | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    instrument: dict[str, bytes] | None = None


@dataclass
class SessionData:
    clips: list[Clip] = field(default_factory=list)
    current_clip: int | None = None
    results: dict[str, Results] = field(default_factory=dict)
    workspaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    live: dict[str, Any] = field(default_factory=dict)
    window: dict[str, Any] = field(default_factory=dict)


class Encoder:
    """Turns clips and results into file bytes, keeping the bytes of what it encoded before
    (an audio clip is encoded once, not at every autosave). Used from one thread at a time."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[object, bytes]] = {}

    def encode(self, item: NoteSequence | Audio) -> bytes:
        cached = self._cache.get(id(item))
        if cached is not None and cached[0] is item:
            return cached[1]
        data = _midi(item) if isinstance(item, NoteSequence) else _wav(item)
        self._cache[id(item)] = (item, data)
        return data

    def forget_others(self, keep: list[object]) -> None:
        ids = {id(k) for k in keep}
        for key in [k for k in self._cache if k not in ids]:
            del self._cache[key]


def instrument_name_ok(name: str) -> bool:
    """Whether ``name`` may be one of an instrument's files in a session: a plain file name
    (no folder, no ``..``, no leading dot) ending in ``.wav``, ``.sfz`` or ``.json``."""
    return (isinstance(name, str) and 0 < len(name) <= 255 and "/" not in name
            and "\\" not in name and "\0" not in name and ".." not in name
            and not name.startswith(".")
            and Path(name).suffix.lower() in INSTRUMENT_SUFFIXES)


def instrument_files(folder: str | Path) -> dict[str, bytes]:
    """An instrument folder's files as a session keeps them (name → bytes): its WAVs, SFZ and
    JSON, read once; a ``CadenzaError`` of one line when it cannot be read or is no instrument
    a session takes (:data:`MAX_INSTRUMENT_FILES`, exactly one SFZ)."""
    folder = Path(folder)
    try:
        out = {f.name: f.read_bytes() for f in sorted(folder.iterdir())
               if instrument_name_ok(f.name) and f.is_file()}
    except OSError as exc:
        raise CadenzaError(f"{folder}: cannot read the instrument: "
                           f"{exc.strerror or exc}") from exc
    problem = _instrument_problem(list(out))
    if problem:
        raise CadenzaError(f"{folder}: {problem}")
    return out


def _instrument_problem(names: list[str]) -> str:
    """What is wrong with these instrument file names ("" when nothing)."""
    if len(names) > MAX_INSTRUMENT_FILES:
        return f"{len(names)} instrument files, more than {MAX_INSTRUMENT_FILES}"
    bad = next((n for n in names if not instrument_name_ok(n)), None)
    if bad is not None:
        return f"{bad!r} is not a WAV, SFZ or JSON file name"
    if len(set(names)) != len(names):
        return "an instrument file is named twice"
    sfz = sum(Path(n).suffix.lower() == ".sfz" for n in names)
    if sfz != 1:
        return f"an instrument has exactly one SFZ, not {sfz}"
    return ""


def _midi(seq: NoteSequence) -> bytes:
    from models.midi_io import midi_bytes

    return midi_bytes(seq)


def _wav(audio: Audio) -> bytes:
    from models.audio_io import write_audio

    with tempfile.TemporaryDirectory(prefix="cadenza-session-") as tmp:
        path = Path(tmp) / "a.wav"
        write_audio(path, audio, subtype="FLOAT")
        return path.read_bytes()


def session_bytes(data: SessionData, encoder: Encoder | None = None) -> bytes:
    """The session file's bytes (a zip: manifest.json, clips/, results/)."""
    import io

    encoder = encoder or Encoder()
    members: list[tuple[str, bytes]] = []
    used: list[object] = []
    clips = []
    for i, clip in enumerate(data.clips):
        item: Any = clip.sequence if clip.sequence is not None else clip.audio_with_tempo()
        name = f"clips/{i + 1:03d}{'.mid' if clip.is_midi else '.wav'}"
        members.append((name, encoder.encode(item)))
        used.append(item)
        clips.append({"name": clip.name, "kind": "midi" if clip.is_midi else "audio",
                      "file": name, "source": str(clip.source) if clip.source else None,
                      "tempo": clip.tempo})
    results: dict[str, Any] = {}
    for ws, res in data.results.items():
        stem = "".join(ch for ch in ws.lower() if ch.isalnum()) or "workspace"
        entry: dict[str, Any] = {"names": list(res.names), "meta": res.meta, "files": []}
        for i, seq in enumerate(res.sequences):
            name = f"results/{stem}-{i + 1:03d}.mid"
            members.append((name, encoder.encode(seq)))
            used.append(seq)
            entry["files"].append(name)
        if res.audio is not None:
            name = f"results/{stem}.wav"
            members.append((name, encoder.encode(res.audio)))
            used.append(res.audio)
            entry["audio"] = name
        if res.instrument:
            entry["instrument"] = []
            for base in sorted(res.instrument):
                if instrument_name_ok(base):  # a session written here is always readable
                    name = f"results/{stem}-instrument/{base}"
                    members.append((name, res.instrument[base]))
                    entry["instrument"].append(name)
        results[ws] = entry
    encoder.forget_others(used)
    manifest = {"format": FORMAT, "version": VERSION, "clips": clips,
                "current_clip": data.current_clip, "results": results,
                "workspaces": data.workspaces, "live": data.live, "window": data.window}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False))
        for name, payload in members:
            # audio is stored as it is (deflating it costs seconds at every autosave for
            # little gain); MIDI and the manifest are deflated
            kind = zipfile.ZIP_STORED if name.lower().endswith(".wav") else zipfile.ZIP_DEFLATED
            archive.writestr(name, payload, compress_type=kind)
    return buffer.getvalue()


def write_session(path: str | Path, data: SessionData, encoder: Encoder | None = None) -> Path:
    """Write a session file atomically (the old one stays whole on any failure)."""
    path = Path(path)
    files.write_bytes(path, session_bytes(data, encoder))
    return path


def read_session(path: str | Path) -> SessionData:
    """Read a session file; a ``CadenzaError`` of one line for anything broken."""
    path = Path(path)
    label = path.name or str(path)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise CadenzaError(f"{label}: no such session file") from exc
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CadenzaError(f"{label}: not a Cadenza session (not a zip archive)") from exc
    with archive:
        try:
            return _read(archive, label)
        except CadenzaError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OSError,
                zipfile.BadZipFile, RecursionError, EOFError) as exc:
            raise CadenzaError(f"{label}: broken session file ({exc})") from exc


def _read(archive: zipfile.ZipFile, label: str) -> SessionData:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise CadenzaError(f"{label}: broken session file (too many members)")
    if sum(i.file_size for i in infos) > MAX_SESSION_BYTES:
        raise CadenzaError(f"{label}: broken session file (more than "
                           f"{MAX_SESSION_BYTES // 1024**3} GiB unpacked)")
    try:
        info = archive.getinfo("manifest.json")
    except KeyError as exc:
        raise CadenzaError(f"{label}: not a Cadenza session (no manifest.json)") from exc
    if info.file_size > MAX_MANIFEST_BYTES:
        raise CadenzaError(f"{label}: broken session file (manifest.json is too large)")
    try:
        manifest = json.loads(archive.read(info).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CadenzaError(f"{label}: broken session file (manifest.json: {exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CadenzaError(f"{label}: not a Cadenza session (manifest.json has no "
                           f"\"format\": \"{FORMAT}\")")
    version = manifest.get("version")
    if not isinstance(version, int) or version < 1:
        raise CadenzaError(f"{label}: broken session file (version {version!r})")
    if version > VERSION:
        raise CadenzaError(f"{label}: made by a newer Cadenza (session version {version}, "
                           f"this one reads up to {VERSION})")
    data = SessionData()
    for entry in _list(manifest, "clips"):
        member = _str(entry, "file")
        name = _str(entry, "name") or Path(member).stem
        source = entry.get("source")
        item = _member(archive, member, label)
        tempo = tempo_value(entry.get("tempo"))
        if isinstance(item, NoteSequence):
            clip = Clip(name, sequence=item, tempo=tempo)
        else:
            clip = Clip(name, audio=item, tempo=tempo)
        if isinstance(source, str) and source:
            clip.source = Path(source)
        data.clips.append(clip)
    current = manifest.get("current_clip")
    if isinstance(current, int) and 0 <= current < len(data.clips):
        data.current_clip = current
    results = manifest.get("results") or {}
    if not isinstance(results, dict):
        raise CadenzaError(f"{label}: broken session file (results is not an object)")
    for ws, entry in results.items():
        if not isinstance(entry, dict):
            raise CadenzaError(f"{label}: broken session file (results of {ws})")
        res = Results(names=[str(n) for n in _list(entry, "names")],
                      meta=entry.get("meta") if isinstance(entry.get("meta"), dict) else {})
        for member in _list(entry, "files"):
            item = _member(archive, str(member), label)
            if not isinstance(item, NoteSequence):
                raise CadenzaError(f"{label}: broken session file ({member} is not MIDI)")
            res.sequences.append(item)
        audio = entry.get("audio")
        if isinstance(audio, str) and audio:
            item = _member(archive, audio, label)
            if isinstance(item, NoteSequence):
                raise CadenzaError(f"{label}: broken session file ({audio} is not audio)")
            res.audio = item
        if entry.get("instrument") is not None:
            res.instrument = _instrument(archive, entry, f"{label}: broken session file "
                                         f"(the instrument of {ws}")
        data.results[str(ws)] = res
    for key in ("workspaces", "live", "window"):
        value = manifest.get(key) or {}
        if not isinstance(value, dict):
            raise CadenzaError(f"{label}: broken session file ({key} is not an object)")
        setattr(data, key, value)
    return data


def tempo_value(value: Any) -> float | None:
    """A session tempo read from the manifest (a clip's, or a workspace's results' ``meta``): a
    number of BPM in the sync's range, else none (an older session has no such key)."""
    from models import limits

    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if limits.TEMPO_MIN <= value <= limits.TEMPO_MAX else None


def _list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key) or []
    if not isinstance(value, list):
        raise TypeError(f"{key} is not a list")
    return value


def _str(obj: Any, key: str) -> str:
    if not isinstance(obj, dict):
        raise TypeError("an entry is not an object")
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _instrument(archive: zipfile.ZipFile, entry: dict[str, Any], what: str) -> dict[str, bytes]:
    """An entry's instrument files (base name → bytes), checked as untrusted: ``what`` begins
    each one-line error."""
    members = entry["instrument"]
    if not isinstance(members, list):
        raise CadenzaError(f"{what}: not a list)")
    if len(members) > MAX_INSTRUMENT_FILES:
        raise CadenzaError(f"{what}: {len(members)} files, more than {MAX_INSTRUMENT_FILES})")
    names = []
    for member in members:
        if not isinstance(member, str):
            raise CadenzaError(f"{what}: a file name is not a string)")
        parts = member.split("/")
        if (member.startswith("/") or "\\" in member or "\0" in member
                or any(p in ("", ".", "..") for p in parts)):
            raise CadenzaError(f"{what}: {member!r} is not a plain member name)")
        names.append(parts[-1])
    problem = _instrument_problem(names)
    if problem:
        raise CadenzaError(f"{what}: {problem})")
    out: dict[str, bytes] = {}
    for member, name in zip(members, names, strict=True):
        try:
            out[name] = archive.read(member)
        except KeyError as exc:
            raise CadenzaError(f"{what}: {member} is missing)") from exc
    return out


def _member(archive: zipfile.ZipFile, member: str, label: str) -> NoteSequence | Audio:
    suffix = Path(member).suffix.lower()
    try:
        payload = archive.read(member)
    except KeyError as exc:
        raise CadenzaError(f"{label}: broken session file ({member} is missing)") from exc
    if suffix in (".mid", ".midi"):
        from models.midi_io import read_midi

        try:
            return read_midi(payload)
        except CadenzaError as exc:
            raise CadenzaError(f"{label}: broken session file ({member}: {exc})") from exc
    if suffix in (".wav", ".flac"):
        from models.audio_io import read_audio

        with tempfile.TemporaryDirectory(prefix="cadenza-session-") as tmp:
            path = Path(tmp) / Path(member).name
            path.write_bytes(payload)
            try:
                return read_audio(path)
            except CadenzaError as exc:
                raise CadenzaError(f"{label}: broken session file ({exc})") from exc
    raise CadenzaError(f"{label}: broken session file ({member}: not MIDI or WAV)")


# ---------------------------------------------------------------------- recent lists
def read_recent(folder: Path) -> dict[str, list[str]]:
    """``{"sessions": [...], "files": [...]}``, newest first; empty lists when unreadable."""
    out: dict[str, list[str]] = {"sessions": [], "files": []}
    try:
        data = json.loads((folder / RECENT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return out
    if isinstance(data, dict):
        for key in out:
            value = data.get(key)
            if isinstance(value, list):
                out[key] = [v for v in value if isinstance(v, str)][:RECENT_MAX]
    return out


def add_recent(folder: Path, kind: str, paths: list[Path]) -> dict[str, list[str]]:
    """Put ``paths`` first in the ``kind`` ("sessions" or "files") list and write it."""
    recent = read_recent(folder)
    entries = recent[kind]
    for path in paths:
        text = str(Path(path).resolve())
        if text in entries:
            entries.remove(text)
        entries.insert(0, text)
    recent[kind] = entries[:RECENT_MAX]
    folder.mkdir(parents=True, exist_ok=True)
    files.write_text(folder / RECENT_NAME, json.dumps(recent, indent=1))
    return recent
