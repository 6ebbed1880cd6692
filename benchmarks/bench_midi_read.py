"""Time reading the MIDI corpus with ``read_midi`` (mido + Python) and ``read_midi_fast``
(symusic), and check that the training pipelines get the same data from both.

    .venv/bin/python benchmarks/bench_midi_read.py [--every N] [--reader both|fast|exact]

Reads every ``.mid``/``.midi`` file under ``../shared/datasets`` (``--every N``: every Nth file,
sorted by path, for a quicker look). Prints, per collection and in all: files, CPU seconds of
this process with each reader (not wall time: the figures hold on a shared, busy machine),
milliseconds per file, the files whose reading fell back to ``read_midi``, and how many files
give the same training data with both readers: Continue's performance events (piano
collections), MusicVAE's 2-bar melody windows (melody collections and POP909) and drum windows
(Groove). Files whose data differs are listed.

Measured on 2026-12-07 (2-core machine, CPU seconds): the whole corpus (3,869 files) reads in
16.8 s with ``read_midi_fast`` (4.4 ms per file; 11.3 ms for an ASAP performance). On every
4th file (968), ``read_midi`` as it was took 90.5 ms per file (249 ms for ASAP), about 350 s
for the corpus; without its deep copy to sort what it had built, 45.7 ms (129 ms); the fast
reader 4.4 ms. Those 968 files give the same notes and the same training data with both
readers; of the other 2,901, the notes differ in one (a Groove file with a drum note that is
never switched off, which ``read_midi`` holds to the end of the file).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import midi_io  # noqa: E402
from models.errors import CadenzaError  # noqa: E402
from models.music_vae import converters as conv  # noqa: E402
from models.music_vae.data import sequence_windows  # noqa: E402
from models.performance_rnn import encoding as enc  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"


def collection(path: Path) -> str:
    return "/".join(path.relative_to(DATASETS).parts[:2])


def pipeline_data(seq, name: str) -> list[np.ndarray]:
    """What the training pipelines take from one file of collection ``name``."""
    out = []
    if name.startswith("piano/"):
        piano = seq.copy()
        piano.notes = [n for n in piano.notes if not n.is_drum]
        out.append(enc.encode(piano))
    if name.startswith("melody/") or name == "piano/pop909":
        out.append(sequence_windows(seq, conv.Converter(kind="melody")))
    if name.startswith("drums/"):
        out.append(sequence_windows(seq, conv.Converter(kind="drums")))
    return out


def note_rows(seq) -> list[tuple]:
    return sorted((n.pitch, n.velocity, round(n.start, 9), round(n.end, 9), n.program, n.is_drum)
                  for n in seq.notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--reader", choices=["both", "fast", "exact"], default="both")
    args = parser.parse_args()
    files = sorted(p for p in DATASETS.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    files = files[::args.every]
    times: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    fallbacks = 0
    differ: list[str] = []
    original_read = midi_io.read_midi

    def counting_read(source):  # the fallbacks of read_midi_fast go through here
        nonlocal fallbacks
        fallbacks += 1
        return original_read(source)

    for path in files:
        name = collection(path)
        counts[name]["files"] += 1
        exact = fast = None
        if args.reader in ("both", "exact"):
            t0 = time.process_time()
            try:
                exact = original_read(path)
            except CadenzaError:
                counts[name]["unreadable"] += 1
            times[name]["exact"] += time.process_time() - t0
        if args.reader in ("both", "fast"):
            midi_io.read_midi = counting_read
            t0 = time.process_time()
            try:
                fast = midi_io.read_midi_fast(path)
            except CadenzaError:
                pass
            times[name]["fast"] += time.process_time() - t0
            midi_io.read_midi = original_read
        if exact is not None and fast is not None:
            same_notes = note_rows(exact) == note_rows(fast)
            a, b = pipeline_data(exact, name), pipeline_data(fast, name)
            same_data = len(a) == len(b) and all(
                x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b, strict=True))
            counts[name]["same notes"] += same_notes
            counts[name]["same training data"] += same_data
            if not same_data:
                differ.append(str(path.relative_to(DATASETS)))
    total = defaultdict(float)
    print(f"{len(files)} files ({'all' if args.every == 1 else f'every {args.every}th'})")
    for name in sorted(counts):
        c, t = counts[name], times[name]
        line = f"{name:16s} {c['files']:5d} files"
        for reader in ("exact", "fast"):
            if reader in t:
                total[reader] += t[reader]
                line += (f"  {reader}: {t[reader]:7.1f} s"
                         f" ({1000 * t[reader] / c['files']:6.1f} ms/file)")
        if args.reader == "both":
            line += (f"  same notes {c['same notes']}, same training data "
                     f"{c['same training data']}")
        print(line)
    for reader, seconds in total.items():
        print(f"all: {reader} reader {seconds:.1f} s ({1000 * seconds / len(files):.1f} ms/file)")
    if args.reader != "exact":
        print(f"read_midi_fast fell back to read_midi for {fallbacks} files")
    if differ:
        print(f"{len(differ)} files give other training data:", *differ[:20], sep="\n  ")


if __name__ == "__main__":
    main()
