"""Morph commands: ``cadenza morph``, ``cadenza morph-instrument``, ``cadenza train nsynth``,
``cadenza evaluate nsynth``. Keras is imported inside the handlers only."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.commands import cli_command, output_file, output_folder
from app.commands.output import (
    AUDIO_OUTPUT_HELP,
    add_format_option,
    check_audio_output,
    report,
    write_audio_output,
)
from app.commands.progress import progress_bar
from models import limits
from models.errors import CadenzaError


def _log(text: str) -> None:
    tty = sys.stderr.isatty()
    print(("\r" + text + "\x1b[K") if tty else text, end="" if tty else "\n", file=sys.stderr,
          flush=True)


def register_train(train_sub: argparse._SubParsersAction) -> None:
    p = add_train_parser(
        train_sub, "nsynth",
        help="train the NSynth WaveNet autoencoder (Morph) on a 'cadenza dataset nsynth' folder",
        description="Train the WaveNet autoencoder; running it again with the same --out resumes.",
        configs=["small", "full", "tiny"], config_default="small",
        config_help="small: CPU-sized (default); full: Engel et al. 2017 sizes (GPU)",
        steps=2000, crop="--crop", crop_help="samples per crop (multiple of 512)", eval_every=50)
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    check_train_args(args)

    from dataclasses import replace

    from models.nsynth.model import CONFIGS, TRAINING
    from models.nsynth.train import train

    changes = {k: v for k, v in (("batch_size", args.batch_size), ("crop", args.crop),
                                 ("learning_rate", args.learning_rate)) if v is not None}
    return train_and_report(args, train, config=CONFIGS[args.config](),
                            settings=replace(TRAINING[args.config], **changes))


# ------------------------------------------------------------- training, of either family
def add_train_parser(train_sub: argparse._SubParsersAction, name: str, *, help: str,
                     description: str, configs: list[str], config_default: str | None,
                     config_help: str, steps: int, crop: str, crop_help: str,
                     eval_every: int) -> argparse.ArgumentParser:
    """The parser of ``cadenza train NAME`` for a Morph family (``nsynth``, ``ddsp``): the
    options they share, with the family's presets, defaults and crop option."""
    p = train_sub.add_parser(name, help=help, description=description)
    p.add_argument("--data", type=Path, required=True, help="folder from 'cadenza dataset nsynth'")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--config", choices=configs, default=config_default, help=config_help)
    p.add_argument("--steps", type=int, default=steps, help="total training steps")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument(crop, type=int, default=None, help=crop_help)
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (with a checkpoint) after this much wall time")
    p.add_argument("--checkpoint-minutes", type=float, default=3.0)
    p.add_argument("--init", type=Path, default=None, metavar="DIR",
                   help="start from this model folder's weights (same architecture; a fresh "
                        "optimizer): how a shipped model trains on")
    p.add_argument("--eval-every", type=int, default=eval_every,
                   help="steps between validation losses")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    return p


def check_train_args(args: argparse.Namespace) -> None:
    """The shared options of :func:`add_train_parser` checked (one clear line if not valid)."""
    output_folder(args.out)
    limits.integer(args.steps, "--steps", 1, limits.MAX_TRAIN_STEPS)
    limits.seed(args.seed)
    limits.number(args.checkpoint_minutes, "--checkpoint-minutes", 0, 1e6, low_open=True)
    if args.max_minutes is not None:
        limits.number(args.max_minutes, "--max-minutes", 0, 1e6, low_open=True)
    if args.learning_rate is not None:
        limits.number(args.learning_rate, "--learning-rate", 0, 1, low_open=True)
    if getattr(args, "batch_size", None) is not None:
        limits.integer(args.batch_size, "--batch-size", 1, 1024)


def train_and_report(args: argparse.Namespace, train: Callable[..., Any], **family: Any) -> int:
    """``train`` (a family's ``train(data, out, ...)``) run with the shared options and the
    family's ``family`` arguments (the architecture, the settings); its progress lines on
    stderr, its result as one JSON line on stdout."""
    result = train(
        args.data, args.out, steps=args.steps,
        checkpoint_seconds=60 * args.checkpoint_minutes, eval_every=args.eval_every,
        seed=args.seed, fresh=args.fresh, init=args.init, log=_line,
        command=cli_command() or "",
        max_seconds=None if args.max_minutes is None else 60 * args.max_minutes, **family,
    )
    print(json.dumps({"step": result.step, "loss": round(result.loss, 4),
                      "val_loss": round(result.val_loss, 4),
                      "seconds": round(result.seconds, 1), "out": str(args.out)}))
    return 0


def _line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- morph
def xy_arg(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--xy takes X,Y such as 0.25,0.75, not '{text}'") from exc
    return x, y


def _add_common(p: argparse.ArgumentParser, sample_rate: int | None = None) -> None:
    """The options of ``morph`` and ``morph-instrument``; ``sample_rate``: the default of
    ``--sample-rate`` (None: the model's own)."""
    p.add_argument("sources", nargs="+",
                   help="2 or 4 sounds: audio files, or General MIDI instruments like gm:flute")
    p.add_argument("--mix", type=float, default=0.5, help="0 = first source, 1 = second")
    p.add_argument("--xy", type=xy_arg, default=None, help="X,Y in 0..1 for four sources")
    p.add_argument("--model", default=None, help="model name or folder (default: shipped)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--seed", type=int, default=0)
    default = f"{sample_rate}" if sample_rate else "the model's, 16000"
    p.add_argument("--sample-rate", type=int, default=sample_rate, metavar="HZ",
                   help=f"write the audio at this rate, e.g. 44100 or 48000 (default: "
                        f"{default}); a model that renders at any rate renders at it, "
                        f"another's output is resampled")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "morph",
        help="morph 2 (--mix) or 4 (--xy) sounds with the NSynth WaveNet autoencoder",
        description="Encode the sources, mix their embeddings and decode the mix (4 s, 16 kHz).",
    )
    _add_common(p)
    p.add_argument("-o", "--output", required=True, help=AUDIO_OUTPUT_HELP)
    add_format_option(p)
    p.add_argument("--bits", choices=["16", "24", "float"], default="16",
                   help="sample format (default 16; OGG and MP3 ignore it)")
    p.add_argument("--pitch", type=int, default=None, metavar="NOTE",
                   help="the MIDI note the morph plays (default: the pitch of the source that "
                        "weighs most); gm: sources are rendered there (default 60)")
    p.add_argument("--tempo", type=float, default=None, metavar="BPM",
                   help="the session tempo, 20..400: a WAV says it in its acid chunk, as a "
                        "one-shot whose root note is the pitch the morph plays (DAWs read it)")
    p.set_defaults(handler=run_morph)
    q = sub.add_parser(
        "morph-instrument",
        help="render a morph at 16 pitches into a folder of WAVs plus an SFZ instrument",
        description="Render the morph every 4 semitones from C2 (batched) as WAVs + SFZ: each "
                    "note at the export rate, without DC, with a seamless sustain loop "
                    "(loop_start/loop_end in the SFZ) and the same level as its neighbours.",
    )
    _add_common(q, sample_rate=48000)
    q.add_argument("-o", "--output", type=Path, required=True, help="folder to write")
    q.add_argument("--pitches", default=None, help="comma-separated MIDI pitches")
    q.add_argument("--release", type=float, default=0.3, help="SFZ ampeg_release seconds")
    q.set_defaults(handler=run_morph_instrument)


def _load_morpher(name: str | None) -> Any:
    """The NSynth ``Morpher``, by name or folder (None: the installed default)."""
    from models.registry import MORPH_FAMILIES, ModelRegistry

    return ModelRegistry().load(name, MORPH_FAMILIES)


def _check_sources(args: argparse.Namespace) -> None:
    """The arguments shared by ``morph`` and ``morph-instrument`` against :mod:`models.limits`,
    and the sources (their headers, then the part a morph uses: silence, NaN): all before the
    model loads."""
    n = len(args.sources)
    if n not in limits.MORPH_SOURCES:
        raise CadenzaError(f"give 2 sources (with --mix) or 4 (with --xy), not {n}")
    if n == 4 and args.xy is None:
        args.xy = (0.5, 0.5)
    if n == 2 and args.xy is not None:
        raise CadenzaError("--xy needs four sources")
    limits.number(args.mix, "--mix", 0.0, 1.0)
    if args.xy is not None:
        for value in args.xy:
            limits.number(value, "--xy values", 0.0, 1.0)
    if args.sample_rate is not None:
        limits.sample_rate(args.sample_rate)
    limits.temperature(args.temperature, zero=True)
    limits.seed(args.seed)
    for s in args.sources:
        check_sound(s)


def check_sound(source: str) -> None:
    """A Morph source named on the command line: a General MIDI instrument (``gm:flute``), or
    an audio file whose header and the part a morph uses (silence, NaN) are read now, before
    any model loads."""
    if source.lower().startswith("gm:"):
        from models.nsynth.dataset import parse_gm

        parse_gm(source)
    else:
        from models.nsynth.sources import check_source

        limits.audio_source(source)
        check_source(source)


def run_morph(args: argparse.Namespace) -> int:
    if args.pitch is not None:
        limits.integer(args.pitch, "--pitch", 0, 127)
    limits.tempo(args.tempo)
    check_audio_output(args.output, args.format)
    _check_sources(args)

    import numpy as np

    from models.nsynth.morph import mix, mix_weights, mix_xy, morph_acid

    started = time.perf_counter()
    with progress_bar("loading the model") as progress:
        morpher = _load_morpher(args.model)
        progress(0.0, "encoding the sources")
        audios = [morpher.source_audio(s, pitch=60 if args.pitch is None else args.pitch)
                  for s in args.sources]
        emb = morpher.encode_batch(audios)
        mixed = mix_xy(list(emb), *args.xy) if args.xy is not None else mix(list(emb), args.mix)
        f0, envelope = morpher.guide(audios, mix_weights(len(audios), args.mix, args.xy))
        if args.pitch is not None:
            f0 = 440.0 * 2.0 ** ((args.pitch - 69) / 12.0)
        progress(0.0, "decoding")
        rate = {"sample_rate": args.sample_rate} if (
            args.sample_rate and getattr(morpher, "renders_at_any_rate", False)) else {}
        audio = morpher.decode(mixed, progress=progress, temperature=args.temperature,
                               seed=args.seed, f0=f0, envelope=envelope, **rate)
    if not np.isfinite(audio.samples).all():
        raise CadenzaError("the morph came out NaN: the model is broken (nothing was written)")
    if args.tempo is not None:
        audio = audio.with_acid(morph_acid(f0, args.tempo))
    if args.sample_rate and audio.sample_rate != args.sample_rate:
        audio = audio.resampled(args.sample_rate)
    subtype = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}[args.bits]
    write_audio_output(args.output, audio, subtype=subtype, format=args.format)
    report(f"{args.output}: {audio.duration:.1f} s at {audio.sample_rate} Hz "
           f"in {time.perf_counter() - started:.1f} s", args.output)
    return 0


def parse_pitches(text: str | None) -> tuple[int, ...] | None:
    """``--pitches``: comma-separated MIDI pitches, 0..127, at most
    :data:`models.limits.MAX_INSTRUMENT_PITCHES` of them (None: the default 16)."""
    if not text:
        return None
    try:
        pitches = tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError as exc:
        raise CadenzaError(f"--pitches takes numbers like 36,48,60: {text}") from exc
    if not pitches:
        raise CadenzaError(f"--pitches takes numbers like 36,48,60: {text}")
    for p in pitches:
        limits.integer(p, "--pitches", 0, 127)
    if len(pitches) > limits.MAX_INSTRUMENT_PITCHES:
        raise CadenzaError(f"--pitches: {len(pitches)} pitches, more than the "
                           f"{limits.MAX_INSTRUMENT_PITCHES} an instrument may have")
    return pitches


def run_morph_instrument(args: argparse.Namespace) -> int:
    output_file(args.output, "folder")
    parsed = parse_pitches(args.pitches)
    limits.number(args.release, "--release", 0.0, limits.MAX_RELEASE, unit=" s")
    _check_sources(args)

    from models.nsynth.instrument import DEFAULT_PITCHES, build_instrument

    pitches = parsed or DEFAULT_PITCHES
    started = time.perf_counter()
    with progress_bar("loading the model") as progress:
        morpher = _load_morpher(args.model)
        progress(0.0, f"rendering {len(pitches)} notes")
        inst = build_instrument(
            morpher, args.sources, args.output, amount=args.mix, xy=args.xy, pitches=pitches,
            release=args.release, progress=progress, temperature=args.temperature,
            seed=args.seed, sample_rate=args.sample_rate,
        )
    looped = len(inst.loops)
    print(f"{args.output}: {len(inst.pitches)} notes at {inst.sample_rate} Hz "
          f"({looped} with a sustain loop) and instrument.sfz "
          f"in {time.perf_counter() - started:.1f} s")
    return 0


# ---------------------------------------------------------------------------- evaluate
def register_evaluate(eval_sub: argparse._SubParsersAction) -> None:
    p = eval_sub.add_parser(
        "nsynth",
        help="pitch kept, spectral distance, harmonicity and morphs of a Morph model on the "
             "notes under a folder",
        description=(
            "Reconstruct every audio file under --data (recursively) and print JSON: "
            "pitch_accuracy (share within 50 cents), spectral_distance (log-mel L1), "
            "harmonic_share (energy within 3 %% of f0 of the source's harmonics, 50 Hz-7 kHz, "
            "0.2-3.5 s; median over notes) and flatness (spectral flatness, same band), the "
            "same of the sources (source_harmonic_share, source_flatness), and between: the "
            "share of 0.5 morphs of --pairs pairs of notes at the same pitch from different "
            "instruments that are nearer each source (log-mel) than the sources are to each "
            "other. Any Morph model (--model) is measured the same way."
        ),
    )
    p.add_argument("--data", type=Path, required=True, help="folder of notes (e.g. DIR/valid)")
    p.add_argument("--model", default=None, help="model name or folder (default: shipped)")
    p.add_argument("--limit", type=int, default=None, help="evaluate this many, evenly spread")
    p.add_argument("--batch", type=int, default=16, help="notes decoded together")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--save", type=Path, default=None, help="write the reconstructions here")
    p.add_argument("--details", action="store_true",
                   help="include per-note and per-pair results and the files skipped")
    p.add_argument("--raw", action="store_true",
                   help="leave out the loudness envelope: the decoder's output as it comes")
    p.add_argument("--pairs", type=int, default=8,
                   help="morph up to N pairs of notes at the same pitch for 'between' "
                        "(default 8; 0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from models.nsynth.evaluate import evaluate

    if not args.data.is_dir():
        raise CadenzaError(f"--data must be a folder: {args.data}")
    if args.limit is not None and args.limit < 1:
        raise CadenzaError(f"--limit must be positive, not {args.limit}")
    if not 1 <= args.batch <= 256:
        raise CadenzaError(f"--batch must be 1..256, not {args.batch}")
    limits.integer(args.pairs, "--pairs", 0, 1024)
    limits.temperature(args.temperature, zero=True)
    limits.seed(args.seed)
    from models.registry import MORPH_FAMILIES, ModelRegistry

    # any Morph family's model by name or folder; without --model, the installed NSynth one
    morpher = ModelRegistry().load(args.model, "nsynth" if args.model is None else MORPH_FAMILIES)

    def progress(done: int, total: int) -> None:
        _log(f"evaluated {done}/{total}")

    result = evaluate(morpher, args.data, limit=args.limit, batch=args.batch,
                      temperature=args.temperature, seed=args.seed, progress=progress,
                      save_dir=args.save, raw=args.raw, pairs=args.pairs)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if not args.details:
        for key in ("details", "pair_details", "skipped_files"):
            result.pop(key, None)
    print(json.dumps(result))
    return 0
