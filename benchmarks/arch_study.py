"""The performance architecture study: learning curves of several networks on this CPU.

    .venv/bin/python benchmarks/arch_study.py --out ../study [--minutes 30]
        [--arms small,wide,transformer-small] [--data ../shared/datasets/piano]

Every arm trains on the same files with the same split, augmentation, window length (256
events) and validation windows, for the same wall-clock budget, one after the other (two runs
share two cores badly). The corpus is encoded once; each arm's folder links that cache. The
study resumes: run the same command again after an interruption and each arm goes on to its
budget (with ``--cpu``, CPU minutes in all). Each arm is an ordinary model folder, so the
winner goes on training with ``cadenza train performance --data DATA --out OUT/ARM --config
ARM --steps N`` (its commands are recorded in its card).

Prints, per arm, validation NLL (nats/event, conditioning off) against wall minutes and against
CPU minutes of the process (fairer when the machine is shared), and writes ``OUT/curves.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.performance_rnn import data as data_lib  # noqa: E402
from models.training import read_history  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "piano"


def curve(folder: Path) -> list[dict]:
    history = read_history(folder)
    return [{"step": e["step"], "minutes": e.get("minutes"), "cpu_minutes": e.get("cpu_minutes"),
             "val_nll": round(float(e["val_nll"]), 4)}
            for e in history.get("log", []) if "val_nll" in e]


def at(points: list[dict], key: str, mark: float) -> float | None:
    """The best validation NLL reached by ``mark`` minutes (wall or CPU)."""
    seen = [p["val_nll"] for p in points if p.get(key) is not None and p[key] <= mark]
    return min(seen) if seen else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--arms", default="small,wide,transformer-small")
    ap.add_argument("--minutes", type=float, default=30.0,
                    help="budget per arm: wall minutes (30), or CPU minutes with --cpu")
    ap.add_argument("--cpu", action="store_true",
                    help="budget each arm in CPU minutes of its process (for a shared machine; "
                         "two busy cores give two CPU minutes a minute)")
    ap.add_argument("--val-windows", type=int, default=64)
    ap.add_argument("--period", type=int, default=100, help="steps between validations")
    ap.add_argument("--workers", type=int, default=2, help="processes encoding MIDI")
    args = ap.parse_args()
    from models.performance_rnn.train import train

    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    shared = args.out / "cache"
    files = data_lib.find_midi_files(args.data)
    train_files, val_files = data_lib.split_by_piece(files, args.data, 0.1)
    for group in (val_files, train_files):  # as the recipe loads them: one cache file each
        data_lib.timed_load(group, shared, args.workers)
    for arm in arms:
        folder = args.out / arm
        (folder / "cache").mkdir(parents=True, exist_ok=True)
        for cached in shared.glob("*.npz"):
            link = folder / "cache" / cached.name
            if not link.exists():
                os.link(cached, link)
        done = curve(folder) if (folder / "history.json").exists() else []
        if args.cpu and done and (done[-1]["cpu_minutes"] or 0) >= args.minutes:
            continue  # this arm has had its budget (the study resumes where it stopped)
        print(f"== {arm}: {args.minutes:g} {'CPU ' if args.cpu else ''}min", file=sys.stderr,
              flush=True)
        train(args.data, folder, config_name=arm, steps=10**9, checkpoint_steps=args.period,
              val_windows=args.val_windows, workers=args.workers,
              max_minutes=None if args.cpu else args.minutes,
              max_cpu_minutes=args.minutes if args.cpu else None,
              command=(f"benchmarks/arch_study.py --data {args.data} --out {args.out} "
                       f"--arms {arm} --minutes {args.minutes:g}" + (" --cpu" if args.cpu else "")
                       + f" --period {args.period} --val-windows {args.val_windows}"))
    curves = {arm: curve(args.out / arm) for arm in arms}
    marks = sorted({m for m in (5, 10, 15, 20, 30, 45, 60, 90, 120) if m < args.minutes}
                   | {args.minutes})
    report = {"minutes": args.minutes, "budget": "cpu" if args.cpu else "wall", "curves": curves,
              "by_wall_minutes": {arm: {m: at(c, "minutes", m) for m in marks}
                                  for arm, c in curves.items()},
              "by_cpu_minutes": {arm: {m: at(c, "cpu_minutes", m) for m in marks}
                                 for arm, c in curves.items()}}
    files.write_text(args.out / "curves.json", json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("minutes", "by_wall_minutes", "by_cpu_minutes")},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
