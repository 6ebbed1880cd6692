"""Time FluidSynth rendering of about three minutes of real piano performance.

    .venv/bin/python benchmarks/bench_render.py [--file F.mid] [--seconds 180]

Without ``--file`` it concatenates ASAP performances (sorted by path, so the choice is stable)
from ``../shared/datasets/piano/asap`` until they reach ``--seconds``, then trims to exactly that.
Prints: soundfont load time, render time, real-time factor, end-to-end time (load + render),
and peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.midi_io import read_midi  # noqa: E402
from models.render import Renderer  # noqa: E402
from models.sequence import NoteSequence  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "piano" / "asap"


def piano_performance(seconds: float, file: Path | None) -> tuple[NoteSequence, list[Path]]:
    files = [file] if file else sorted(DATASET.rglob("*.mid"))
    seq: NoteSequence | None = None
    used: list[Path] = []
    for path in files:
        part = read_midi(path)
        seq = part if seq is None else seq.concatenate(part, gap=0.5)
        used.append(path)
        if seq.total_time >= seconds:
            break
    assert seq is not None, "no MIDI files found"
    if seq.total_time > seconds:
        seq = seq.trim(0.0, seconds)
    return seq, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--sample-rate", type=int, default=44100)
    args = parser.parse_args()

    seq, used = piano_performance(args.seconds, args.file)
    print(f"input: {len(used)} file(s), first {used[0].relative_to(used[0].parents[3])}")
    print(f"notes: {len(seq.notes)}, control changes: {len(seq.control_changes)}, "
          f"length {seq.total_time:.1f} s")

    started = time.perf_counter()
    renderer = Renderer(sample_rate=args.sample_rate)
    loaded = time.perf_counter()
    audio = renderer.render(seq, tail=1.0)
    done = time.perf_counter()
    renderer.close()

    seconds = audio.samples.shape[0] / audio.sample_rate
    render_s = done - loaded
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"soundfont: {renderer.soundfont}")
    print(f"load: {loaded - started:.2f} s")
    print(f"render: {render_s:.2f} s for {seconds:.1f} s of audio "
          f"(real-time factor {seconds / render_s:.0f}x, i.e. {render_s / seconds:.4f})")
    print(f"total (load + render): {done - started:.2f} s")
    print(f"peak memory (max RSS): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
