"""``cadenza train ddsp``: the DDSP autoencoder (Morph). Keras is imported inside the handler.

Morphing, instruments and evaluation with a DDSP model are the Morph commands of
:mod:`app.commands.nsynth` (``--model`` picks the model, of either family)."""

from __future__ import annotations

import argparse

from app.commands.nsynth import add_train_parser, check_train_args, train_and_report


def register_train(train_sub: argparse._SubParsersAction) -> None:
    p = add_train_parser(
        train_sub, "ddsp",
        help="train the DDSP autoencoder (Morph) on a 'cadenza dataset nsynth' folder",
        description="Train the DDSP autoencoder; running it again with the same --out resumes.",
        configs=["small", "tiny"], config_default=None,
        config_help="small: CPU-sized (the default for a new run); tiny: for tests",
        steps=20000, crop="--crop-frames", crop_help="frames per training crop (125 = 1 s)",
        eval_every=100)
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    check_train_args(args)

    from dataclasses import replace

    from models.ddsp.config import TRAINING
    from models.ddsp.train import train

    changes = {k: v for k, v in (("batch_size", args.batch_size),
                                 ("crop_frames", args.crop_frames),
                                 ("learning_rate", args.learning_rate)) if v is not None}
    settings = None
    if changes or args.config is not None:
        settings = replace(TRAINING[args.config or "small"], **changes)
    return train_and_report(args, train, preset=args.config, settings=settings)
