"""``cadenza continue``, ``cadenza train performance`` and ``cadenza evaluate performance``.

Keras and the model code are imported inside the handlers, so ``cadenza --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from app.commands import cli_command, output_folder
from app.commands.output import (
    MIDI_OUTPUT_HELP,
    check_midi_output,
    is_stdout,
    report,
    write_midi_output,
)
from app.commands.progress import progress_bar
from models import limits
from models.errors import CadenzaError

CONTINUE_EPILOG = """\
output files:
  OUT holds the primer followed by the continuation (only the continuation with
  --continuation-only). With --variations N > 1 the takes go to separate files named
  after OUT: OUT-1.mid, OUT-2.mid, ... (e.g. -o take.mid --variations 3 writes take-1.mid,
  take-2.mid and take-3.mid).

conditioning:
  By default the continuation follows the primer: --density and --pitch-histogram
  are taken from the primer itself (its last bars weigh most), which keeps the
  continuation in the primer's key and near its pace (Magenta's multiconditioned
  PerformanceRNN controls). "off" leaves a control out (both off: conditioning is
  off); --density also takes notes per second, --pitch-histogram 12 comma-separated
  weights starting at C, or a key name such as "C major" or "F# minor".

tempo:
  --tempo BPM gives the takes one tempo, BPM (your DAW's, as the app's Live sync
  does), with every note at the same second: drop the file into a project at that
  tempo and it lines up with the bars. The primer's time signature is kept. Without
  it the takes keep the primer's tempo.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "continue",
        help="continue a piano MIDI file with PerformanceRNN",
        description="Continue a MIDI primer with PerformanceRNN (expressive piano).",
        epilog=CONTINUE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("primer", type=Path, help="MIDI (or MusicXML) file to continue")
    p.add_argument("-o", "--output", required=True,
                   help=MIDI_OUTPUT_HELP + " (one take: --variations 1)")
    p.add_argument("--seconds", type=float, default=20.0, help="continuation length (20)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (1.0)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass, e.g. 0.95")
    p.add_argument("--variations", type=int, default=1, help="takes, generated in one batch (1)")
    p.add_argument("--seed", type=int, default=None, help="random seed for reproducible output")
    p.add_argument("--density", default="primer", metavar="primer|off|NOTES_PER_S",
                   help="note density: from the primer (default), off, or notes per second")
    p.add_argument("--pitch-histogram", default="primer", metavar="primer|off|WEIGHTS|KEY",
                   help='pitch classes: from the primer (default), off, 12 weights '
                        '"2,0,1,0,1,1,0,1,0,1,0,1" or a key like "C major"')
    p.add_argument("--model", default=None, help="model name or folder (default: shipped)")
    p.add_argument("--beam-size", type=int, default=1, help="beam search width (1 = sampling)")
    p.add_argument("--branch-factor", type=int, default=1, help="beam search branches per beam")
    p.add_argument("--steps-per-iteration", type=int, default=1,
                   help="events per beam search iteration (1)")
    p.add_argument("--continuation-only", action="store_true",
                   help="write only the generated part, not the primer")
    p.add_argument("--engine", choices=["numpy", "keras"], default="numpy",
                   help="numpy fast path (default) or keras.ops on the Keras backend")
    p.add_argument("--tempo", type=float, default=None, metavar="BPM",
                   help="the session tempo the MIDI files carry, 20..400 (default: the "
                        "primer's)")
    p.set_defaults(handler=run_continue)


def register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "performance",
        help="train PerformanceRNN on a folder of piano MIDI files",
        description=(
            "Train PerformanceRNN on every MIDI file under --data (split by piece into train "
            "and validation). Rerun with the same --out to continue from the last checkpoint."
        ),
    )
    p.add_argument("--data", type=Path, required=True, help="folder of MIDI files (recursive)")
    p.add_argument("--out", type=Path, required=True, help="model folder to write/resume")
    p.add_argument("--config", default="small",
                   choices=["full", "small", "tiny", "wide", "transformer-small",
                            "transformer-tiny"],
                   help="full = Magenta's 3 x 512 LSTM; small = CPU-sized 2 x 256 LSTM "
                        "(default); wide = 1 x 1024 LSTM; transformer-small = a 2-block Music "
                        "Transformer of width 256")
    p.add_argument("--steps", type=int, default=10_000, help="total training steps (10000)")
    p.add_argument("--batch-size", type=int, default=None, help="default from the config")
    p.add_argument("--seq-len", type=int, default=None, help="events per window (config)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="Adam's initial rate (config: 1e-3 full, 2e-3 small)")
    p.add_argument("--lr-decay", type=float, default=None, metavar="FACTOR",
                   help="multiply the learning rate by this every step, e.g. 0.9996 "
                        "(default 1: constant)")
    p.add_argument("--warmup-steps", type=int, default=None, metavar="N",
                   help="raise the learning rate linearly over the first N steps (default 0); "
                        "keeps a warm start's fresh optimizer from unsettling the weights")
    p.add_argument("--note-features", type=int, default=None, metavar="N",
                   help="width of the note-state input (which pitches sound, since when); "
                        "0 = Magenta's inputs only (config: 64); with --init, a new width "
                        "starts the new inputs at zero weight")
    p.add_argument("--depth", type=int, default=None, metavar="N",
                   help="blocks (transformer) or layers (LSTM), each as wide as the config's; "
                        "with --init from a transformer of fewer blocks, it grows: the new "
                        "blocks start adding nothing, so the run begins as the old model")
    p.add_argument("--init", type=Path, default=None, metavar="MODEL_DIR",
                   help="warm start a new run from this model folder's architecture and "
                        "weights (fresh optimizer, step 0); ignored when --out holds a run")
    p.add_argument("--checkpoint-steps", type=int, default=200,
                   help="steps between checkpoints and validation (200)")
    p.add_argument("--val-windows", type=int, default=64, help="validation windows (64)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (with a checkpoint) at the first step after this many minutes")
    p.add_argument("--workers", type=int, default=1, help="processes encoding MIDI (1)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed for the initial weights and the training windows (0)")
    p.set_defaults(handler=run_train)


def register_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "performance",
        help="NLL per event of a PerformanceRNN on a folder of MIDI files",
        description=(
            "Teacher-forced NLL (nats/event) and accuracy over every event of every MIDI file "
            "under --data, state carried across each file, conditioning switched off (Magenta's "
            "controls describe upcoming events). Prints JSON."
        ),
    )
    p.add_argument("--data", type=Path, required=True, help="folder of MIDI files (recursive)")
    p.add_argument("--model", default=None, help="model name or folder (default: shipped)")
    p.add_argument("--continuations", type=int, default=0, metavar="N",
                   help="also continue N pieces (seconds 10-18 as primer, 10 s, following the "
                        "primer) and report how the continuations follow them against the real "
                        "seconds 18-28: in-key share, pitch-class divergence, notes per second, "
                        "median note length")
    p.add_argument("--seed", type=int, default=0, help="seed of the continuations (0)")
    p.set_defaults(handler=run_evaluate)


# ------------------------------------------------------------------------------ handlers
def _load(name: str | None) -> Any:
    """The PerformanceRNN façade, by name or folder (None: the installed default)."""
    from models.registry import ModelRegistry

    return ModelRegistry().load(name, "performance")


def parse_density(text: str | None) -> float | str | None:
    """``--density``: "primer", "off" (None) or notes per second (finite, 0..1000)."""
    if text is None or text.strip().lower() == "off":
        return None
    if text.strip().lower() == "primer":
        return "primer"
    try:
        value = float(text)
    except ValueError:
        raise CadenzaError(f"--density: notes per second, 'primer' or 'off', not '{text}'"
                           ) from None
    return limits.number(value, "--density", 0, limits.MAX_DENSITY, unit=" notes per second")


def parse_histogram(text: str | None) -> list[float] | str | None:
    """``--pitch-histogram``: "primer", "off" (None), 12 finite weights >= 0 (not all 0) or a
    key name (checked here, before any model loads)."""
    if text is None or text.strip().lower() == "off":
        return None
    if text.strip().lower() == "primer":
        return "primer"
    parts = [p for p in text.replace(";", ",").split(",") if p.strip()]
    if len(parts) == 1 and not parts[0].strip().replace(".", "", 1).isdigit():
        from models.performance_rnn.encoding import key_histogram

        try:
            key_histogram(parts[0].strip())
        except ValueError as exc:
            raise CadenzaError(f"--pitch-histogram: {exc}") from None
        return parts[0].strip()
    try:
        values = [float(p) for p in parts]
    except ValueError as exc:
        raise CadenzaError(f"--pitch-histogram: 12 numbers or a key name, not '{text}'") from exc
    if len(values) != 12:
        raise CadenzaError(f"--pitch-histogram needs 12 weights, got {len(values)}")
    if not all(math.isfinite(v) and v >= 0 for v in values) or sum(values) <= 0:
        raise CadenzaError(f"--pitch-histogram: 12 finite weights >= 0, not all 0, not '{text}'")
    return values


def check_continue_arguments(args: argparse.Namespace) -> None:
    """Every argument of ``cadenza continue`` against :mod:`models.limits` (no file read, no
    model loaded: fast)."""
    limits.number(args.seconds, "--seconds", 0, limits.CONTINUE_MAX_SECONDS, low_open=True,
                  unit=" s")
    limits.temperature(args.temperature)
    if args.top_p is not None:
        limits.number(args.top_p, "--top-p", 0, 1, low_open=True)
    limits.integer(args.variations, "--variations", 1, limits.MAX_VARIATIONS)
    limits.seed(args.seed)
    limits.integer(args.beam_size, "--beam-size", 1, limits.MAX_BEAM_SIZE)
    limits.integer(args.branch_factor, "--branch-factor", 1, limits.MAX_BRANCH_FACTOR)
    limits.integer(args.steps_per_iteration, "--steps-per-iteration", 1,
                   limits.MAX_STEPS_PER_ITERATION)
    limits.tempo(args.tempo)


def variation_paths(output: Path, count: int) -> list[Path]:
    if count == 1:
        return [output]
    suffix = output.suffix or ".mid"
    return [output.with_name(f"{output.stem}-{i}{suffix}") for i in range(1, count + 1)]


def run_continue(args: argparse.Namespace) -> int:
    check_continue_arguments(args)
    if is_stdout(args.output) and args.variations > 1:
        raise CadenzaError("-o - writes one MIDI file to stdout: use --variations 1, or a file "
                           "name (one file per take)")
    density = parse_density(args.density)
    histogram = parse_histogram(args.pitch_histogram)
    outputs = [args.output] if is_stdout(args.output) \
        else variation_paths(Path(args.output), args.variations)
    for path in outputs:
        check_midi_output(path)
    limits.midi_file(args.primer)

    from models.music_files import read_sequence

    primer = read_sequence(args.primer)
    limits.sequence_length(primer.total_time, args.primer.name)
    if not [n for n in primer.notes if not n.is_drum]:
        raise CadenzaError(f"{args.primer.name}: the primer has no (non-drum) notes")
    with progress_bar("loading the model") as progress:
        model = _load(args.model)
        progress(0.0, "continuing")
        takes = model.generate(
            primer, args.seconds, temperature=args.temperature, variations=args.variations,
            seed=args.seed, top_p=args.top_p, density=density, pitch_histogram=histogram,
            beam_size=args.beam_size, branch_factor=args.branch_factor,
            steps_per_iteration=args.steps_per_iteration, engine=args.engine, progress=progress,
        )
    if args.tempo is not None:
        takes = [take.at_tempo(args.tempo) for take in takes]
    for path, take in zip(outputs, takes, strict=True):
        write_midi_output(path, take.continuation if args.continuation_only else take.joined)
        report(f"{path}: {len(take.continuation.notes)} new notes, {args.seconds:g} s", path)
    return 0


def run_train(args: argparse.Namespace) -> int:
    output_folder(args.out)
    limits.integer(args.steps, "--steps", 1, limits.MAX_TRAIN_STEPS)
    limits.integer(args.checkpoint_steps, "--checkpoint-steps", 1, limits.MAX_TRAIN_STEPS)
    limits.seed(args.seed)
    if args.warmup_steps is not None:
        limits.integer(args.warmup_steps, "--warmup-steps", 0, limits.MAX_TRAIN_STEPS)
    if args.max_minutes is not None:
        limits.number(args.max_minutes, "--max-minutes", 0, 1e6, low_open=True)
    for name in ("learning_rate", "lr_decay"):
        value = getattr(args, name)
        if value is not None:
            limits.number(value, f"--{name.replace('_', '-')}", 0, 1, low_open=True)

    from models.performance_rnn.train import describe, train

    command = cli_command()
    result = train(
        args.data, args.out, config_name=args.config, steps=args.steps,
        batch_size=args.batch_size, seq_len=args.seq_len, learning_rate=args.learning_rate,
        lr_decay=args.lr_decay, warmup_steps=args.warmup_steps,
        note_features=args.note_features, depth=args.depth, init_from=args.init,
        checkpoint_steps=args.checkpoint_steps, val_windows=args.val_windows,
        max_minutes=args.max_minutes, workers=args.workers, command=command, seed=args.seed,
    )
    print(describe(result))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    if not 0 <= args.continuations <= 10_000:
        raise CadenzaError("--continuations must be 0..10000")
    if not args.data.is_dir():
        raise CadenzaError(f"not a folder: {args.data}")
    model = _load(args.model)
    result = model.evaluate(args.data)
    if args.continuations:
        from models.performance_rnn import data as data_lib
        from models.performance_rnn.follow import continuation_figures

        result["continuations"] = continuation_figures(
            model, data_lib.find_midi_files(args.data), args.continuations, seed=args.seed)
    print(json.dumps(result))
    return 0
