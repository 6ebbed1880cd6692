"""MusicVAE commands: ``cadenza sample``, ``cadenza interpolate``, ``cadenza train MODEL``
and ``cadenza evaluate MODEL`` for melody-2bar, melody-16bar and drums-2bar (Interpolate).

Keras is imported inside the handlers only, so ``cadenza --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.commands import cli_command, output_folder
from app.commands.output import (
    MIDI_OUTPUT_HELP,
    check_midi_output,
    check_notation_output,
    report,
    write_midi_output,
)
from models import limits
from models.errors import CadenzaError

MODEL_NAMES = ("melody-2bar", "melody-16bar", "drums-2bar")
TEMPO_HELP = ("the session tempo, 20..400: the sixteenths of the grid become seconds at this "
              "tempo and the MIDI file carries it (default: {default})")


def register(sub: Any) -> None:
    p = sub.add_parser("sample", help="new melodies or drum patterns from a MusicVAE model")
    p.add_argument("--model", default="melody-2bar",
                   help="model name (melody-2bar, melody-16bar, drums-2bar) or model folder")
    p.add_argument("-n", type=int, default=8, help="how many samples (default 8)")
    p.add_argument("-o", "--output", required=True, help=MIDI_OUTPUT_HELP)
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--tempo", type=float, default=None, metavar="BPM",
                   help=TEMPO_HELP.format(default="120"))
    p.set_defaults(handler=_sample)

    p = sub.add_parser("interpolate", help="morph one MIDI clip into another (MusicVAE)")
    p.add_argument("a", help="first MIDI (or MusicXML) file")
    p.add_argument("b", help="second MIDI (or MusicXML) file")
    p.add_argument("-o", "--output", required=True, help=MIDI_OUTPUT_HELP)
    p.add_argument("--steps", type=int, default=7, help="sequences from A to B (default 7)")
    p.add_argument("--model", default=None,
                   help="model name or folder (default: picked from the files: drums-2bar for "
                        "drum grooves, melody-16bar for melodies of 8 bars of 4/4 or more, "
                        "melody-2bar otherwise)")
    p.add_argument("--method", choices=["slerp", "lerp"], default="slerp")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="0 (default) decodes greedily, so the ends reconstruct A and B")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--tempo", type=float, default=None, metavar="BPM",
                   help=TEMPO_HELP.format(default="A's"))
    p.set_defaults(handler=_interpolate)


def register_train(train_sub: Any) -> None:
    for name in MODEL_NAMES:
        p = train_sub.add_parser(name, help=f"train the MusicVAE {name} model")
        p.add_argument("--data", action="append", required=True, metavar="DIR",
                       help="a folder of MIDI files, or 'music21' for the music21 folk corpus "
                            "(repeatable)")
        p.add_argument("--out", required=True, help="model folder (resumed when it exists)")
        p.add_argument("--config", choices=["small", "full", "tiny"], default=None,
                       help="architecture (default small); with --init, the layers of "
                            "MODEL_DIR that fit this architecture are copied")
        p.add_argument("--steps", type=int, default=None, help="total training steps")
        p.add_argument("--batch-size", type=int, default=None)
        p.add_argument("--input-dropout", type=float, default=None, metavar="P",
                       help="share of decoder inputs zeroed in training (word dropout)")
        p.add_argument("--learning-rate", type=float, default=None, metavar="LR",
                       help="initial learning rate (decayed per global step)")
        p.add_argument("--decay-rate", type=float, default=None, metavar="R",
                       help="learning rate decay per step")
        p.add_argument("--sampling-schedule", default=None,
                       choices=["constant", "inverse_sigmoid", "exponential"],
                       help="scheduled sampling: how the share of the decoder's own choices "
                            "grows with the step (Magenta's)")
        p.add_argument("--sampling-rate", type=float, default=None, metavar="R",
                       help="scheduled sampling rate (0 = teacher forcing throughout)")
        p.add_argument("--max-beta", type=float, default=None, help="largest KL weight")
        p.add_argument("--free-bits", type=float, default=None, help="KL free bits")
        p.add_argument("--train-hop", type=int, default=None, metavar="STEPS",
                       help="augmentation: training pieces' windows start every STEPS steps "
                            "(default one bar; validation pieces always every bar)")
        p.add_argument("--any-meter", action="store_const", const=True, default=None,
                       help="train on music in every metre (sixteenth-note windows that "
                            "ignore bar lines); default: 4/4 and 2/2 only, as Magenta's")
        p.add_argument("--cache", default=None, help="window cache folder "
                       "(default ~/.cache/cadenza/music_vae)")
        p.add_argument("--checkpoint-minutes", type=float, default=3.0)
        p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                       help="stop (with a checkpoint) after this long")
        p.add_argument("--workers", type=int, default=1, help="processes for data extraction")
        p.add_argument("--init", default=None, metavar="MODEL_DIR",
                       help="start a new run from this model folder's weights (its "
                            "architecture unless --config is given; fresh optimizer, "
                            "schedules from step 0)")
        p.set_defaults(handler=_train, model_name=name)


def register_evaluate(eval_sub: Any) -> None:
    for name in MODEL_NAMES:
        p = eval_sub.add_parser(name, help=f"reconstruction accuracy of a {name} model")
        p.add_argument("--data", required=True, metavar="DIR",
                       help="folder searched recursively for MIDI files")
        p.add_argument("--model", default=None, help="model folder (default: the installed one)")
        p.add_argument("--limit", type=int, default=None, help="evaluate at most N windows")
        p.add_argument("--any-meter", action="store_true",
                       help="windows of music in every metre too (default: 4/4 and 2/2 only, "
                            "as the models' validation windows)")
        p.set_defaults(handler=_evaluate, model_name=name)


# ----------------------------------------------------------------------------- handlers
def _load(name_or_path: str) -> Any:
    """The MusicVAE façade, by name or folder."""
    from models.registry import ModelRegistry

    return ModelRegistry().load(name_or_path, "music_vae")


def _read(path: str) -> Any:
    from models.music_files import read_sequence

    limits.midi_file(path)
    seq = read_sequence(path)
    limits.sequence_length(seq.total_time, Path(path).name)
    return seq


def _check_inputs(name: str | None, seqs: list, labels: list[str]) -> str:
    """The model to use (``name``, or the one the clips call for), once every clip is known to
    give it something: a clip that gives nothing is a one-line error before the model loads."""
    from models.music_vae import converters as conv
    from models.music_vae.inputs import clip_windows, pick_model
    from models.registry import ModelRegistry

    if name is None:
        name = pick_model(seqs, labels)
    config = ModelRegistry().entry(name, "music_vae").config
    converter = conv.Converter(str(config.get("kind", "melody")),
                               slice_bars=int(config.get("slice_bars", 2)))
    for seq, label in zip(seqs, labels, strict=True):
        clip_windows(seq, converter, label)
    return name


def _is_drums(name: str) -> bool:
    from models.registry import ModelRegistry

    return ModelRegistry().entry(name, "music_vae").config.get("kind") == "drums"


def _write(seqs: list, seconds_each: float, output: str) -> None:
    from models.sequence import join_windows

    write_midi_output(output, join_windows(seqs, seconds_each))


def _sample(args: argparse.Namespace) -> int:
    limits.integer(args.n, "-n", 1, limits.MAX_SAMPLES)
    limits.temperature(args.temperature, zero=True)
    limits.seed(args.seed)
    qpm = limits.tempo(args.tempo) or 120.0
    check_midi_output(args.output)
    check_notation_output(args.output, _is_drums(args.model))
    model = _load(args.model)
    seqs = model.sample(args.n, temperature=args.temperature, seed=args.seed, qpm=qpm)
    _write(seqs, model.window_seconds(qpm), args.output)
    report(f"wrote {len(seqs)} samples ({model.name}) to {args.output}", args.output)
    return 0


def _interpolate(args: argparse.Namespace) -> int:
    limits.integer(args.steps, "--steps", 2, limits.MAX_INTERPOLATION_STEPS)
    limits.temperature(args.temperature, zero=True)
    limits.seed(args.seed)
    tempo = limits.tempo(args.tempo)
    check_midi_output(args.output)
    a, b = _read(args.a), _read(args.b)
    name = _check_inputs(args.model, [a, b], [Path(args.a).name, Path(args.b).name])
    check_notation_output(args.output, _is_drums(name))
    model = _load(name)
    seqs = model.interpolate(a, b, steps=args.steps, method=args.method,
                             temperature=args.temperature, seed=args.seed, qpm=tempo)
    qpm = seqs[0].qpm
    _write(seqs, model.window_seconds(qpm), args.output)
    report(f"wrote {len(seqs)} steps from {Path(args.a).name} to {Path(args.b).name} "
           f"({model.name}, {args.method}) to {args.output}", args.output)
    return 0


def _train(args: argparse.Namespace) -> int:
    output_folder(Path(args.out))
    if args.steps is not None:
        limits.integer(args.steps, "--steps", 1, limits.MAX_TRAIN_STEPS)
    if args.time_limit is not None:
        limits.number(args.time_limit, "--time-limit", 0, 1e8, low_open=True, unit=" s")
    limits.number(args.checkpoint_minutes, "--checkpoint-minutes", 0, 1e6, low_open=True)

    from models.music_vae.train import train

    overrides = {k: getattr(args, k) for k in ("batch_size", "input_dropout", "learning_rate",
                                               "decay_rate", "max_beta", "free_bits",
                                               "sampling_schedule", "sampling_rate",
                                               "train_hop", "any_meter")}
    command = cli_command()
    result = train(args.model_name, list(args.data), args.out, size=args.config or "small",
                   steps=args.steps, cache_dir=args.cache,
                   checkpoint_minutes=args.checkpoint_minutes, time_limit=args.time_limit,
                   workers=args.workers, command=command, overrides=overrides,
                   init_from=args.init, init_architecture=args.config is None)
    acc = "n/a" if result.val_accuracy is None else f"{result.val_accuracy:.4f}"
    print(f"{args.model_name}: step {result.step}, validation reconstruction accuracy {acc}, "
          f"model in {result.out_dir}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from models.music_vae.evaluate import evaluate_folder, to_json

    model = _load(args.model or args.model_name)
    if model.config.name != args.model_name:
        raise CadenzaError(f"the model is a {model.config.name} model, not {args.model_name}")
    metrics = evaluate_folder(model, args.data, limit=args.limit, any_meter=args.any_meter)
    print(to_json({k: metrics[k] for k in ("reconstruction_accuracy", "kl", "examples")}))
    return 0
