"""``cadenza dataset FAMILY ...``: build a training set for a model family.

``cadenza dataset nsynth --out DIR``: an NSynth-like set of 4-second notes rendered with
FluidSynth (see :mod:`models.nsynth.dataset`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from app.commands import output_folder
from models.errors import CadenzaError


def _int_list(text: str) -> list[int]:
    """``0-7,16,24-31`` or ``36:97:3`` (start:stop:step) -> integers."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if ":" in part:
                bits = [int(b) for b in part.split(":")]
                out += list(range(*bits))
            elif "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                out += list(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of numbers: '{text}'") from exc
    if not out:
        raise argparse.ArgumentTypeError(f"empty list: '{text}'")
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="build a training data set for a model family")
    fam = p.add_subparsers(dest="dataset_family", metavar="FAMILY", required=True)
    n = fam.add_parser(
        "nsynth",
        help="render NSynth-like 4-second notes (16 kHz) with FluidSynth",
        description=(
            "Render 4-second notes (3 s held, 1 s release) at 16 kHz for every General MIDI "
            "program x pitch x velocity, drop silent renders, split by instrument."
        ),
    )
    n.add_argument("--soundfont", type=Path, default=None, help="a .sf2 (default: the GM one)")
    n.add_argument("--out", type=Path, required=True, help="folder to write (outside the repo)")
    n.add_argument("--programs", type=_int_list, default=None,
                   help="GM programs, e.g. 0-111 (default) or 0,19,73")
    n.add_argument("--pitches", type=_int_list, default=None,
                   help="MIDI pitches, e.g. 36:97:3 (default) or 48,60,72")
    n.add_argument("--velocities", type=_int_list, default=None, help="default 75,127")
    n.add_argument("--valid-programs", type=_int_list, default=None,
                   help="programs held out for validation (default: one per GM family)")
    n.add_argument("--silence-db", type=float, default=-60.0,
                   help="drop renders quieter than this RMS in dBFS (default -60)")
    n.set_defaults(handler=run_nsynth)


def run_nsynth(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.out.is_dir():
        raise CadenzaError(f"--out is a file, not a folder: {args.out}")
    output_folder(args.out)
    from models.nsynth import dataset as ds

    started = time.perf_counter()
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty or done == total or done % 200 == 0:
            end = "\n" if done == total or not tty else ""
            print(f"\rrendering {done}/{total}", end=end, file=sys.stderr, flush=True)

    manifest = ds.build_dataset(
        args.out,
        soundfont=args.soundfont,
        programs=args.programs or ds.DEFAULT_PROGRAMS,
        pitches=args.pitches or ds.DEFAULT_PITCHES,
        velocities=args.velocities or ds.DEFAULT_VELOCITIES,
        valid_programs=args.valid_programs,
        silence_db=args.silence_db,
        progress=progress,
    )
    notes = manifest["notes"]
    train = sum(1 for n in notes if n["split"] == "train")
    print(
        f"{args.out}: {train} training and {len(notes) - train} validation notes "
        f"({manifest['dropped_silent']} silent renders dropped; validation programs "
        f"{manifest['valid_programs']}) in {time.perf_counter() - started:.0f} s"
    )
    return 0
