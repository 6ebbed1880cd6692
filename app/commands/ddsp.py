"""``cadenza train ddsp``: the DDSP autoencoder (Morph). Keras is imported inside the handler.

Morphing, instruments and evaluation with a DDSP model are the Morph commands of
:mod:`app.commands.nsynth` (``--model`` picks the model, of either family)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.commands import cli_command, output_folder
from models import limits


def register_train(train_sub: argparse._SubParsersAction) -> None:
    p = train_sub.add_parser(
        "ddsp",
        help="train the DDSP autoencoder (Morph) on a 'cadenza dataset nsynth' folder",
        description="Train the DDSP autoencoder; running it again with the same --out resumes.",
    )
    p.add_argument("--data", type=Path, required=True, help="folder from 'cadenza dataset nsynth'")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--config", choices=["small", "tiny"], default=None,
                   help="small: CPU-sized (the default for a new run); tiny: for tests")
    p.add_argument("--steps", type=int, default=20000, help="total training steps")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--crop-frames", type=int, default=None,
                   help="frames per training crop (125 = 1 s)")
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (with a checkpoint) after this much wall time")
    p.add_argument("--checkpoint-minutes", type=float, default=3.0)
    p.add_argument("--eval-every", type=int, default=100, help="steps between validation losses")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    output_folder(args.out)
    limits.integer(args.steps, "--steps", 1, limits.MAX_TRAIN_STEPS)
    limits.seed(args.seed)
    limits.number(args.checkpoint_minutes, "--checkpoint-minutes", 0, 1e6, low_open=True)
    if args.max_minutes is not None:
        limits.number(args.max_minutes, "--max-minutes", 0, 1e6, low_open=True)
    if args.learning_rate is not None:
        limits.number(args.learning_rate, "--learning-rate", 0, 1, low_open=True)
    if args.batch_size is not None:
        limits.integer(args.batch_size, "--batch-size", 1, 1024)

    from dataclasses import replace

    from models.ddsp.model import TRAINING
    from models.ddsp.train import train

    changes = {k: v for k, v in (("batch_size", args.batch_size),
                                 ("crop_frames", args.crop_frames),
                                 ("learning_rate", args.learning_rate)) if v is not None}
    settings = None
    if changes or args.config is not None:
        settings = replace(TRAINING[args.config or "small"], **changes)
    result = train(
        args.data, args.out, steps=args.steps, preset=args.config, settings=settings,
        checkpoint_seconds=60 * args.checkpoint_minutes, eval_every=args.eval_every,
        seed=args.seed, fresh=args.fresh, log=_line, command=cli_command() or "",
        max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
    )
    print(json.dumps({"step": result.step, "loss": round(result.loss, 4),
                      "val_loss": round(result.val_loss, 4),
                      "seconds": round(result.seconds, 1), "out": str(args.out)}))
    return 0


def _line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
