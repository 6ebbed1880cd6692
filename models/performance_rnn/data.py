"""A folder of MIDI files -> cached event arrays -> augmented fixed-length training windows.

* Files are found recursively (``.mid``/``.midi``) and grouped into pieces: an ASAP-style
  ``metadata.csv`` (columns ``folder`` and ``midi_performance``) in the data folder or above a
  file maps each performance to its piece folder, so all performances of one piece share a side;
  otherwise a file is its own piece (POP909: one file, or one song folder, per song). The split
  is a stable hash of the piece name, so it never changes when files are added.
* Encoded events are cached in one ``.npz`` under the cache folder, keyed by the file list
  (paths, sizes, modification times) and :data:`encoding.ENCODING_VERSION`.
* :class:`WindowDataset` streams batches of random windows (transposed by up to +-3 semitones
  and stretched by 0.95..1.05 in event space), with Magenta's controls computed on the augmented
  window and switched off for a fraction of examples (optional conditioning), and for models
  that read it the note state (:mod:`notes`), carried in from the events before the window.
"""

from __future__ import annotations

import csv
import hashlib
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import files as atomic
from models.errors import CadenzaError
from models.performance_rnn import encoding as enc
from models.performance_rnn import notes as notes_lib

MIDI_SUFFIXES = (".mid", ".midi")


# ------------------------------------------------------------------------------ files and pieces
def find_midi_files(root: str | Path) -> list[Path]:
    base = Path(root)
    if not base.is_dir():
        raise CadenzaError(f"not a folder: {root}")
    return sorted(p for p in base.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


def _metadata_pieces(csv_path: Path) -> dict[Path, str]:
    out: dict[Path, str] = {}
    with csv_path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            perf, folder = row.get("midi_performance"), row.get("folder")
            if perf and folder:
                out[(csv_path.parent / perf).resolve()] = folder
    return out


def piece_ids(files: Sequence[Path], root: str | Path) -> list[str]:
    """The piece each file belongs to (see the module notes)."""
    base = Path(root).resolve()
    tables: dict[Path, dict[Path, str]] = {}
    out = []
    for f in files:
        path = Path(f).resolve()
        piece = None
        for parent in path.parents:
            meta = parent / "metadata.csv"
            if meta.is_file():
                if meta not in tables:
                    tables[meta] = _metadata_pieces(meta)
                table = tables[meta]
                if path in table:
                    piece = f"{parent.name}/{table[path]}"
                else:  # a file the table does not list: its folder is its piece
                    piece = f"{parent.name}/{path.parent.relative_to(parent).as_posix()}"
                break
            if parent == base or parent == parent.parent:
                break
        if piece is None:
            rel = path.relative_to(base) if path.is_relative_to(base) else Path(path.name)
            # POP909's original layout (NNN/NNN.mid, NNN/versions/NNN_v1.mid): a folder whose
            # name starts the file's name is the song; otherwise a file is its own piece.
            piece = f"{base.name}/{rel.with_suffix('').as_posix()}"
            for depth in range(len(rel.parts) - 1, 0, -1):
                folder = rel.parts[depth - 1]
                if path.stem.startswith(folder):
                    piece = f"{base.name}/{Path(*rel.parts[:depth]).as_posix()}"
                    break
        out.append(piece)
    return out


def is_validation_piece(piece: str, fraction: float) -> bool:
    digest = hashlib.sha1(piece.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_by_piece(files: Sequence[Path], root: str | Path, validation_fraction: float = 0.1
                   ) -> tuple[list[Path], list[Path]]:
    """(train, validation) files; every piece falls wholly on one side."""
    train, val = [], []
    for f, piece in zip(files, piece_ids(files, root), strict=True):
        (val if is_validation_piece(piece, validation_fraction) else train).append(Path(f))
    if not val and len(train) > 1:  # tiny folders: still hold one piece back
        pieces = piece_ids(train, root)
        first = pieces[-1]
        val = [f for f, p in zip(train, pieces, strict=True) if p == first]
        train = [f for f, p in zip(train, pieces, strict=True) if p != first]
    return train, val


# ------------------------------------------------------------------------------ cache
@dataclass
class EncodedSet:
    names: list[str]
    events: list[np.ndarray]

    @property
    def total_events(self) -> int:
        return int(sum(e.size for e in self.events))


def _cache_key(files: Sequence[Path]) -> str:
    h = hashlib.sha1(f"performance-events-v{enc.ENCODING_VERSION}".encode())
    for f in sorted(Path(p).resolve() for p in files):
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def encode_file(path: str | Path) -> np.ndarray:
    from models.midi_io import read_midi_fast  # symusic: same notes, times and pedal

    seq = read_midi_fast(path)
    seq.notes = [n for n in seq.notes if not n.is_drum]
    return enc.encode(seq)


def _encode_or_error(path: Path) -> np.ndarray | str:
    try:
        return encode_file(path)
    except CadenzaError as exc:
        return str(exc)


def load_encoded(files: Sequence[Path], cache_dir: str | Path | None,
                 progress: Callable[[int, int], None] | None = None,
                 workers: int = 1) -> EncodedSet:
    """Encoded events of ``files`` (unreadable files are skipped), from the cache when there."""
    files = [Path(f) for f in files]
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"events-{_cache_key(files)}.npz"
        if cache.is_file():
            with np.load(cache) as data:
                flat, offsets = data["events"], data["offsets"]
                names = [str(n) for n in data["names"]]
            return EncodedSet(names, [flat[offsets[i]:offsets[i + 1]].copy()
                                      for i in range(len(names))])
    names, events = [], []
    results: Iterable[tuple[Path, np.ndarray | str]]
    if workers > 1 and len(files) > 8:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers)
        results = zip(files, pool.map(_encode_or_error, files, chunksize=4), strict=True)
    else:
        pool = None
        results = ((f, _encode_or_error(f)) for f in files)
    try:
        for i, (f, ev) in enumerate(results):
            if isinstance(ev, str):
                print(f"skipping {f}: {ev}", file=sys.stderr)
            elif ev.size:
                names.append(str(f))
                events.append(ev)
            if progress is not None:
                progress(i + 1, len(files))
    finally:
        if pool is not None:
            pool.shutdown()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        offsets = np.concatenate([[0], np.cumsum([e.size for e in events])]).astype(np.int64)
        flat = np.concatenate(events) if events else np.zeros(0, np.int16)
        with atomic.replacing(cache) as tmp, open(tmp, "wb") as handle:  # two runs: both whole
            np.savez(handle, events=flat, offsets=offsets, names=np.asarray(names))
    return EncodedSet(names, events)


def print_progress(done: int, total: int) -> None:
    if done == total or done % 50 == 0:
        print(f"\rencoding MIDI files: {done}/{total}", end="\n" if done == total else "",
              file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ windows
@dataclass
class Augment:
    transpose: int = 3
    stretch: float = 0.05

    def apply(self, events: np.ndarray, rng: np.random.Generator,
              state: notes_lib.NoteState | None = None
              ) -> tuple[np.ndarray, notes_lib.NoteState | None]:
        """The augmented events, and ``state`` (the note state before them) augmented alike."""
        out = events
        if self.stretch > 0:
            factor = float(rng.uniform(1 - self.stretch, 1 + self.stretch))
            out = enc.stretch_events(out, factor)
            state = None if state is None else state.stretched(factor)
        if self.transpose > 0:
            semitones = int(rng.integers(-self.transpose, self.transpose + 1))
            out = enc.transpose_events(out, semitones)
            state = None if state is None else state.transposed(semitones)
        return out, state


def make_example(window: np.ndarray, seq_len: int, conditioned: bool,
                 note_state: notes_lib.NoteState | None = None
                 ) -> tuple[np.ndarray, ...]:
    """(inputs [seq_len], controls [seq_len, C], targets [seq_len]) from >= seq_len+1 events,
    and the note state after each input [seq_len, 256] when ``note_state`` (the state before
    the window) is given.

    The control at input position t belongs to the event being predicted (t+1), as in Magenta's
    ``ConditionalEventSequenceEncoderDecoder``; ``window`` may run past seq_len+1 so that the
    forward-looking controls see their whole window.
    """
    controls = enc.controls_from_events(window, enabled=conditioned)
    out = (window[:seq_len].astype(np.int32), controls[1:seq_len + 1],
           window[1:seq_len + 1].astype(np.int32))
    if note_state is None:
        return out
    return (*out, notes_lib.note_features(window[:seq_len], note_state)[0])


CHECKPOINT_EVERY = 128


class NoteStates:
    """The note state before any position of a set of event arrays (checkpoints every
    :data:`CHECKPOINT_EVERY` events, then a short scan)."""

    def __init__(self, events: Sequence[np.ndarray]) -> None:
        self.events = list(events)
        self.marks = [notes_lib.checkpoints(e, CHECKPOINT_EVERY) for e in self.events]

    def before(self, index: int, position: int) -> notes_lib.NoteState:
        counts, onsets = self.marks[index]
        k = position // CHECKPOINT_EVERY
        state = notes_lib.NoteState(counts[k].astype(np.int32), onsets[k].astype(np.float64))
        return notes_lib.advance(self.events[index][k * CHECKPOINT_EVERY:position], state)


def _keras_pydataset() -> type:
    import keras

    return keras.utils.PyDataset


class WindowSampler:
    """Random augmented windows from an :class:`EncodedSet` (pure numpy; see WindowDataset)."""

    def __init__(self, data: EncodedSet, seq_len: int, augment: Augment | None = None,
                 cond_drop: float = 0.5, seed: int = 0, note_state: bool = False) -> None:
        self.seq_len = seq_len
        self.augment = augment
        self.cond_drop = cond_drop
        self.seed = seed
        need = seq_len + 2
        self.events = [e for e in data.events if e.size >= need]
        if not self.events:
            raise CadenzaError(f"no file has the {need} events a training window needs")
        sizes = np.asarray([e.size - need + 1 for e in self.events], dtype=np.float64)
        self.probs = sizes / sizes.sum()
        self.note_states = NoteStates(self.events) if note_state else None

    def batch(self, batch_size: int, rng: np.random.Generator
              ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        n, c = self.seq_len, enc.CONTROL_SIZE
        x = np.zeros((batch_size, n), np.int32)
        ctl = np.zeros((batch_size, n, c), np.float32)
        y = np.zeros((batch_size, n), np.int32)
        feats = (np.zeros((batch_size, n, notes_lib.NOTE_FEATURE_SIZE), np.float32)
                 if self.note_states is not None else None)
        # Take extra events so stretching (and the forward-looking controls) keep a full window.
        span = int(math.ceil((n + 1) * 1.1)) + n // 2
        for b in range(batch_size):
            while True:
                index = int(rng.choice(len(self.events), p=self.probs))
                ev = self.events[index]
                start = int(rng.integers(0, max(1, ev.size - (n + 1) + 1)))
                window = ev[start:start + span]
                state = (self.note_states.before(index, start)
                         if self.note_states is not None else None)
                if self.augment is not None:
                    window, state = self.augment.apply(window, rng, state)
                if window.size >= n + 1:
                    break
            conditioned = rng.random() >= self.cond_drop
            example = make_example(window, n, conditioned, state)
            x[b], ctl[b], y[b] = example[:3]
            if feats is not None:
                feats[b] = example[3]
        if feats is not None:
            return (x, ctl, feats), y
        return (x, ctl), y


def fixed_windows(data: EncodedSet, seq_len: int, count: int, conditioned: bool = False,
                  note_state: bool = False) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """``count`` evenly spread, un-augmented windows (validation), conditioning off by default;
    with ``note_state`` the inputs also hold the note state after each event."""
    rng = np.random.default_rng(1234)
    usable = [e for e in data.events if e.size >= seq_len + 1]
    if not usable:
        raise CadenzaError(f"no validation file has {seq_len + 1} events")
    columns: list[list[np.ndarray]] = [[], [], [], []]
    for i in range(count):
        ev = usable[i % len(usable)]
        start = int(rng.integers(0, ev.size - seq_len))
        state = notes_lib.advance(ev[:start]) if note_state else None
        for column, value in zip(columns, make_example(ev[start:start + seq_len * 2], seq_len,
                                                       conditioned, state), strict=False):
            column.append(value)
    inputs = [np.stack(columns[0]), np.stack(columns[1])]
    if note_state:
        inputs.append(np.stack(columns[3]))
    return tuple(inputs), np.stack(columns[2])


def timed_load(files: Sequence[Path], cache_dir: str | Path | None, workers: int = 1
               ) -> tuple[EncodedSet, float]:
    t0 = time.perf_counter()
    data = load_encoded(files, cache_dir, progress=print_progress, workers=workers)
    return data, time.perf_counter() - t0
