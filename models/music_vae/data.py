"""Data folders -> cached MusicVAE windows, split by file, and training batches.

Sources (one per ``--data``):

Windows are 4/4 (and 2/2) only by default, as Magenta's and the shipped models' data; a
converter with ``any_meter`` (``cadenza train ... --any-meter``) takes every metre on the
sixteenth-note grid (see :mod:`models.music_vae.converters`).

* a folder of MIDI files, searched recursively. A file with a track named ``MELODY`` (POP909)
  contributes that track only; a ``1/4`` time signature (POP909 marks most songs so) is read as
  4/4; otherwise every instrument is a candidate melody, as in Magenta. Drum models use the drum
  notes of every file.
* the Groove folder (an ``info.csv`` with a ``split`` column): that split, ``validation`` and
  ``test`` being held out.
* ``music21`` (or ``music21:COLLECTION,...``): the folk tunes in ABC inside the music21 package,
  a bounded subset by default (:data:`MUSIC21_DEFAULT`), one piece per tune.

Every piece (file, or ABC tune) lies on one side of the split only: a stable hash of its name
picks validation for ``validation_fraction`` of the pieces; windows are never split. Extracted
windows are cached in one ``.npz`` per source, keyed by the file list (paths, sizes, modification
times) and the converter's settings, so a second run starts at once.
"""

from __future__ import annotations

import csv
import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from models import files as atomic
from models.errors import CadenzaError
from models.music_vae import converters as conv
from models.sequence import Note, NoteSequence, TempoChange, TimeSignature

MIDI_SUFFIXES = (".mid", ".midi")
CACHE_VERSION = 1
# A bounded subset: Ryan's Mammoth Collection (1059 ABC files, public domain), about two
# minutes of music21 parsing, once. Name others with --data music21:COLLECTION,...
MUSIC21_DEFAULT = ("ryansMammoth",)
# How a music21 tune is read (part of its caches' names): 2 = as the app reads a score, repeats
# played out and metre changes kept (1: as written, the first metre only).
MUSIC21_READING = 2

LICENSES = {
    "nottingham": "GPL-3.0 (Nottingham Music Database, cleaned MIDI)",
    "pop909": "MIT (POP909)",
    "groove": "CC BY 4.0 (Groove MIDI Dataset, Magenta)",
    "music21": "music21 corpus (BSD-3 package): Ryan's Mammoth Collection (1883), "
               "O'Neill's Music of Ireland (1850) and Aird's Airs (1782-1797) are public "
               "domain; the Essen folksong collection "
               "(music21:essenFolksong) is for non-commercial use only",
}


@dataclass
class WindowSet:
    """Windows of one or more sources, with the piece each came from and its side."""

    windows: np.ndarray  # [n, steps] int16 class indices
    piece: np.ndarray  # [n] int32 index into pieces
    pieces: list[str]
    validation: np.ndarray  # [len(pieces)] bool

    def side(self, validation: bool) -> np.ndarray:
        mask = self.validation[self.piece] == validation
        return self.windows[mask]

    @property
    def train(self) -> np.ndarray:
        return self.side(False)

    @property
    def val(self) -> np.ndarray:
        return self.side(True)

    def pieces_of(self, validation: bool) -> set[str]:
        return {p for p, v in zip(self.pieces, self.validation, strict=True) if v == validation}

    @staticmethod
    def concat(sets: Sequence[WindowSet]) -> WindowSet:
        offset, pieces, parts, piece_ids, val = 0, [], [], [], []
        for s in sets:
            parts.append(s.windows)
            piece_ids.append(s.piece + offset)
            pieces += s.pieces
            val.append(s.validation)
            offset += len(s.pieces)
        steps = sets[0].windows.shape[1] if sets else 0
        return WindowSet(
            np.concatenate(parts) if parts else np.zeros((0, steps), np.int16),
            np.concatenate(piece_ids).astype(np.int32) if piece_ids else np.zeros(0, np.int32),
            pieces,
            np.concatenate(val).astype(bool) if val else np.zeros(0, bool),
        )


# ------------------------------------------------------------------------------ sources
def find_midi_files(root: str | Path) -> list[Path]:
    base = Path(root)
    if not base.is_dir():
        raise CadenzaError(f"not a folder: {root}")
    return sorted(p for p in base.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


def is_validation_piece(piece: str, fraction: float) -> bool:
    digest = hashlib.sha1(piece.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def groove_splits(root: str | Path) -> dict[str, str] | None:
    """``{relative midi path: split}`` from a Groove-style ``info.csv``, or None."""
    path = Path(root) / "info.csv"
    if not path.is_file():
        return None
    out = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("midi_filename") and row.get("split"):
                out[row["midi_filename"]] = row["split"]
    return out or None


def music21_collections(spec: str) -> tuple[str, ...]:
    """The collections a ``music21[:COLLECTION,...]`` argument names (the default subset when
    it names none)."""
    _, _, rest = spec.partition(":")
    return tuple(c for c in rest.split(",") if c) or MUSIC21_DEFAULT


def source_name(spec: str) -> str:
    """The name a --data argument's windows are counted under: its :func:`source_label`, with
    the collections of a music21 argument that names them (``music21:oneills1850``)."""
    if spec.startswith("music21") and music21_collections(spec) != MUSIC21_DEFAULT:
        return "music21:" + ",".join(music21_collections(spec))
    return source_label(spec)


def source_label(spec: str) -> str:
    """A short name for a --data argument: nottingham, pop909, groove, music21 or the folder."""
    if spec.startswith("music21"):
        return "music21"
    path = Path(spec)
    if groove_splits(path) is not None:
        return "groove"
    return path.resolve().name.lower() or str(path)


def midi_file_windows(path: str | Path, converter: conv.Converter) -> np.ndarray:
    """The windows of one MIDI file with the rules in the module notes (read by symusic, see
    :func:`models.midi_io.read_midi_fast`)."""
    from models.midi_io import read_midi_fast

    seq = read_midi_fast(path)
    return sequence_windows(seq, converter)


def sequence_windows(seq: NoteSequence, converter: conv.Converter) -> np.ndarray:
    instruments = None
    if converter.kind == "melody":
        named = [i for i, name in seq.instrument_names.items()
                 if name.strip().upper() == "MELODY"]
        if named:
            instruments = sorted(named)
    if seq.time_signatures and all((t.numerator, t.denominator) == (1, 4)
                                   for t in seq.time_signatures):
        seq = seq.copy()
        seq.time_signatures = [TimeSignature(t.time, 4, 4) for t in seq.time_signatures]
    return converter.to_windows(seq, instruments=instruments)


def _file_job(args: tuple[str, dict[str, Any]]) -> np.ndarray | str:
    path, conv_fields = args
    try:
        return midi_file_windows(path, conv.Converter(**conv_fields))
    except CadenzaError as exc:
        return str(exc)


def _cache_path(cache_dir: Path, tag: str, converter: conv.Converter, items: list[str],
                train_hop: int = 0) -> Path:
    fields = asdict(converter)
    hop = fields.pop("hop_steps")  # one-bar windows keep the cache names they always had
    if not fields["any_meter"]:  # and so do 4/4-only windows
        del fields["any_meter"]
    key = f"music-vae-windows-v{CACHE_VERSION}|{tag}|{fields}"
    if hop:
        key += f"|hop={hop}"
    if train_hop:
        key += f"|train_hop={train_hop}"
    h = hashlib.sha1(key.encode())
    for item in items:
        h.update(item.encode() + b"\n")
    name = f"{tag}-{converter.kind}{converter.slice_bars}-{h.hexdigest()[:12]}"
    return cache_dir / f"windows-{name}.npz"


def _save(path: Path, ws: WindowSet) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, windows=ws.windows, piece=ws.piece,
                            pieces=np.asarray(ws.pieces), validation=ws.validation)


def _load(path: Path) -> WindowSet:
    with np.load(path) as d:
        return WindowSet(d["windows"], d["piece"], [str(p) for p in d["pieces"]], d["validation"])


def _from_piece_windows(items: list[tuple[str, np.ndarray, bool]], steps: int) -> WindowSet:
    windows, piece, pieces, val = [], [], [], []
    for name, w, is_val in items:
        if len(w) == 0:
            continue
        piece.append(np.full(len(w), len(pieces), np.int32))
        windows.append(w.astype(np.int16))
        pieces.append(name)
        val.append(is_val)
    if not windows:
        return WindowSet(np.zeros((0, steps), np.int16), np.zeros(0, np.int32), [],
                         np.zeros(0, bool))
    return WindowSet(np.concatenate(windows), np.concatenate(piece), pieces, np.asarray(val))


def load_folder(
    root: str | Path,
    converter: conv.Converter,
    cache_dir: str | Path | None = None,
    validation_fraction: float = 0.1,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    limit: int | None = None,
    train_hop: int = 0,
) -> WindowSet:
    """Windows of every MIDI file under ``root`` (cached), split by file.

    ``train_hop``: the window hop (steps) for training files; validation files always use the
    converter's own.
    """
    root = Path(root)
    files = find_midi_files(root)
    if limit is not None:
        files = files[:limit]
    if not files:
        raise CadenzaError(f"no MIDI files under {root}")
    splits = groove_splits(root)
    rels = [str(f.relative_to(root)) for f in files]
    stats = [f"{r}|{f.stat().st_size}|{f.stat().st_mtime_ns}" for r, f in zip(rels, files,
                                                                             strict=True)]
    cache = None
    if cache_dir is not None:
        tag = source_label(str(root))
        cache = _cache_path(Path(cache_dir), tag, converter,
                            [str(root.resolve()), f"val={validation_fraction}", *stats],
                            train_hop)
        if cache.is_file():
            return _load(cache)
    is_val: list[bool | None] = []
    for rel in rels:
        if splits is not None:
            split = splits.get(rel)
            is_val.append(None if split is None else split != "train")
        else:
            is_val.append(is_validation_piece(rel, validation_fraction))
    train_converter = replace(converter, hop_steps=train_hop)  # 0: the converter's own hop
    jobs = [(str(f), asdict(converter if v is not False else train_converter))
            for f, v in zip(files, is_val, strict=True)]
    results: list[np.ndarray | str] = []
    if workers > 1 and len(files) > 16:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            for i, r in enumerate(pool.map(_file_job, jobs, chunksize=8)):
                results.append(r)
                if progress:
                    progress(i + 1, len(files))
    else:
        for i, job in enumerate(jobs):
            results.append(_file_job(job))
            if progress:
                progress(i + 1, len(files))
    items = []
    for rel, f, r, val in zip(rels, files, results, is_val, strict=True):
        if isinstance(r, str):
            print(f"skipping {f}: {r}", file=sys.stderr)
            continue
        if val is None:  # not in the folder's split list
            continue
        items.append((f"{root.name}/{rel}", r, val))
    ws = _from_piece_windows(items, converter.num_steps)
    if cache is not None:
        _save(cache, ws)
    return ws


# ------------------------------------------------------------------------------ music21
def require_music21() -> ModuleType:
    """The music21 package, or a one-line ``CadenzaError`` saying how to install it (the one
    check, :func:`models.musicxml.require_music21`)."""
    from models.musicxml import require_music21 as required

    return required()


def music21_paths(collections: Sequence[str] = MUSIC21_DEFAULT) -> list[Path]:
    require_music21()
    from music21 import corpus

    paths = sorted(Path(p) for p in corpus.getPaths(fileExtensions=["abc"]))
    out = []
    for p in paths:
        rel = str(p).split("/corpus/")[-1]
        if any(rel.startswith(c) for c in collections):
            out.append(p)
    return out


def music21_to_sequence(score: Any, qpm: float = 120.0, label: str = "tune") -> NoteSequence:
    """One music21 tune as a NoteSequence at ``qpm``, read as the app reads a score
    (:func:`models.musicxml.score_to_sequence`: repeats played out, metre changes in their
    places, a pickup bar padded so that bar lines fall on the printed ones), then its melody:
    the line a melody model takes from a clip (:func:`models.music_vae.inputs.line_of`, the top
    voice of a part with double stops)."""
    require_music21()
    from models.music_vae.inputs import line_of
    from models.musicxml import score_to_sequence

    seq = score_to_sequence(score, label, qpm=qpm)
    line, parts, _ = line_of(seq, "melody")
    notes = [Note(n.pitch, 80, n.start, n.end) for n in line.notes
             if not n.is_drum and n.end > n.start and (parts is None or n.instrument in parts)]
    return NoteSequence(notes=notes, tempos=[TempoChange(0.0, qpm)],
                        time_signatures=list(seq.time_signatures)
                        or [TimeSignature(0.0, 4, 4)])


def _music21_job(path: str) -> list[tuple[str, NoteSequence]] | str:
    from music21 import converter as m21converter

    rel = path.split("/corpus/")[-1]
    try:
        parsed = m21converter.parse(path)
    except Exception as exc:  # noqa: BLE001 - music21 raises many kinds on bad ABC
        return f"{rel}: {exc}"
    scores = list(parsed.scores) if hasattr(parsed, "scores") else [parsed]
    out = []
    for i, score in enumerate(scores):
        try:
            out.append((f"music21/{rel}#{i}", music21_to_sequence(score, label=f"{rel}#{i}")))
        except Exception as exc:  # noqa: BLE001
            print(f"skipping {rel}#{i}: {exc}", file=sys.stderr)
    return out


def music21_sequences(
    collections: Sequence[str] = MUSIC21_DEFAULT,
    cache_dir: str | Path | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[str, NoteSequence]]:
    """(name, sequence) of every tune in ``collections``; parsed once, then cached as notes."""
    music21 = require_music21()
    paths = music21_paths(collections)
    if not paths:
        raise CadenzaError(f"no music21 ABC files in {', '.join(collections)}")
    cache = None
    if cache_dir is not None:
        h = hashlib.sha1(f"music21-seqs-v{CACHE_VERSION}|read={MUSIC21_READING}|"
                         f"{music21.__version__}".encode())
        for p in paths:
            h.update(str(p).encode() + b"\n")
        cache = Path(cache_dir) / f"music21-sequences-{h.hexdigest()[:12]}.npz"
        if cache.is_file():
            with np.load(cache) as d:
                notes, offsets = d["notes"], d["offsets"]
                meters, meter_offsets = d["meters"], d["meter_offsets"]
                names = [str(n) for n in d["names"]]
            out = []
            for i, name in enumerate(names):
                rows = notes[offsets[i]:offsets[i + 1]]
                sigs = meters[meter_offsets[i]:meter_offsets[i + 1]]
                out.append((name, NoteSequence(
                    notes=[Note(int(p), 80, float(a), float(b)) for p, a, b in rows],
                    tempos=[TempoChange(0.0, 120.0)],
                    time_signatures=[TimeSignature(float(t), int(n), int(d))
                                     for t, n, d in sigs])))
            return out
    results: list[Any] = []
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            for i, r in enumerate(pool.map(_music21_job, [str(p) for p in paths])):
                results.append(r)
                if progress:
                    progress(i + 1, len(paths))
    else:
        for i, p in enumerate(paths):
            results.append(_music21_job(str(p)))
            if progress:
                progress(i + 1, len(paths))
    out = []
    for r in results:
        if isinstance(r, str):
            print(f"skipping {r}", file=sys.stderr)
        else:
            out += r
    if cache is not None:
        rows = [np.array([[n.pitch, n.start, n.end] for n in s.notes], np.float64).reshape(-1, 3)
                for _, s in out]
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
        sig_rows = [np.array([[t.time, t.numerator, t.denominator] for t in s.time_signatures],
                             np.float64).reshape(-1, 3) for _, s in out]
        meter_offsets = np.concatenate([[0], np.cumsum([len(r) for r in sig_rows])]
                                       ).astype(np.int64)
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(cache) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, notes=np.concatenate(rows) if rows else np.zeros((0, 3)),
                                offsets=offsets,
                                meters=np.concatenate(sig_rows) if sig_rows else np.zeros((0, 3)),
                                meter_offsets=meter_offsets,
                                names=np.asarray([n for n, _ in out]))
    return out


def load_music21(
    converter: conv.Converter,
    cache_dir: str | Path | None = None,
    collections: Sequence[str] = MUSIC21_DEFAULT,
    validation_fraction: float = 0.1,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    train_hop: int = 0,
) -> WindowSet:
    """Windows of the music21 folk tunes (one piece per tune), cached."""
    paths = music21_paths(collections)
    cache = None
    if cache_dir is not None:
        music21 = require_music21()
        cache = _cache_path(Path(cache_dir), "music21", converter,
                            [music21.__version__, f"val={validation_fraction}",
                             f"read={MUSIC21_READING}",
                             *[str(p) for p in paths]], train_hop)
        if cache.is_file():
            return _load(cache)
    train_converter = replace(converter, hop_steps=train_hop)  # 0: the converter's own hop
    items = []
    for name, seq in music21_sequences(collections, cache_dir, workers, progress):
        val = is_validation_piece(name, validation_fraction)
        items.append((name, (converter if val else train_converter).to_windows(seq), val))
    ws = _from_piece_windows(items, converter.num_steps)
    if cache is not None:
        _save(cache, ws)
    return ws


def load_source(
    spec: str,
    converter: conv.Converter,
    cache_dir: str | Path | None = None,
    validation_fraction: float = 0.1,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    train_hop: int = 0,
) -> WindowSet:
    """One --data argument: a folder, or ``music21[:collection,...]``."""
    if spec.startswith("music21"):
        if converter.kind != "melody":
            raise CadenzaError("the music21 corpus holds melodies, not drums")
        return load_music21(converter, cache_dir, music21_collections(spec),
                            validation_fraction, workers, progress, train_hop)
    return load_folder(spec, converter, cache_dir, validation_fraction, workers, progress,
                       train_hop=train_hop)


def print_progress(done: int, total: int) -> None:
    if done == total or done % 100 == 0:
        print(f"\rextracting windows: {done}/{total}", end="\n" if done == total else "",
              file=sys.stderr, flush=True)


def timed_load(specs: Sequence[str], converter: conv.Converter, cache_dir: str | Path | None,
               validation_fraction: float = 0.1, workers: int = 1, train_hop: int = 0
               ) -> tuple[WindowSet, dict[str, int], float]:
    t0 = time.perf_counter()
    sets, counts = [], {}
    for spec in specs:
        ws = load_source(spec, converter, cache_dir, validation_fraction, workers,
                         print_progress, train_hop)
        name = source_name(spec)
        counts[name] = counts.get(name, 0) + len(ws.windows)
        sets.append(ws)
    return WindowSet.concat(sets), counts, time.perf_counter() - t0


# ------------------------------------------------------------------------------ batches
def transpose_windows(windows: np.ndarray, semitones: np.ndarray) -> np.ndarray:
    """Shift the pitch classes of melody windows; a window that would leave 21..108 stays."""
    w = windows.astype(np.int32)
    is_pitch = w >= conv.NUM_SPECIAL_MELODY_EVENTS
    shifted = np.where(is_pitch, w + semitones[:, None], w)
    ok = np.all(~is_pitch | ((shifted >= conv.NUM_SPECIAL_MELODY_EVENTS)
                             & (shifted < conv.MELODY_CLASSES)), axis=1)
    return np.where(ok[:, None], shifted, w)


class BatchSampler:
    """Random training batches: (labels, eps, beta, keep) inputs and the targets Keras expects.

    With ``sampling_fn`` (scheduled sampling: step -> probability), a fifth input ``own``
    [B, T] marks the steps whose decoder input is the model's own previous choice.
    """

    def __init__(self, windows: np.ndarray, batch_size: int, z_size: int, kind: str,
                 transpose_range: int, beta_fn: Callable[[int], float], seed: int = 0,
                 input_dropout: float = 0.0,
                 sampling_fn: Callable[[int], float] | None = None) -> None:
        if len(windows) == 0:
            raise CadenzaError("no training windows: check the data folders and the model kind")
        self.windows = windows
        self.batch_size = batch_size
        self.z_size = z_size
        self.transpose = transpose_range if kind == "melody" else 0
        self.beta_fn = beta_fn
        self.seed = seed
        self.input_dropout = float(input_dropout)
        self.sampling_fn = sampling_fn

    def batch(self, step: int) -> tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]:
        rng = np.random.default_rng((self.seed, step))
        idx = rng.integers(0, len(self.windows), self.batch_size)
        labels = self.windows[idx].astype(np.int32)
        if self.transpose:
            shift = rng.integers(-self.transpose, self.transpose + 1, self.batch_size)
            labels = transpose_windows(labels, shift)
        eps = rng.standard_normal((self.batch_size, self.z_size)).astype(np.float32)
        beta = np.full((self.batch_size, 1), self.beta_fn(step), np.float32)
        if self.input_dropout > 0.0:
            keep = (rng.random(labels.shape) >= self.input_dropout).astype(np.float32)
        else:
            keep = np.ones(labels.shape, np.float32)
        inputs: tuple[np.ndarray, ...] = (labels, eps, beta, keep)
        if self.sampling_fn is not None:
            own = (rng.random(labels.shape) < self.sampling_fn(step)).astype(np.float32)
            inputs = (*inputs, own)
        return inputs, {"logits": labels, "kl": np.zeros((self.batch_size, 2), np.float32)}
