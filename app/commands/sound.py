"""What ``--output audio`` plays in ``cadenza duet`` and ``cadenza play``: FluidSynth (with
``--soundfont``), a morph instrument folder (``--instrument``, duet only) or a morph of 2 or 4
sounds played live from the DDSP model (``--morph``). The options are checked against each
other and the output in one line before any port or model is opened."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models import limits
from models.errors import CadenzaError

if TYPE_CHECKING:
    from models.nsynth.instrument import MorphInstrument


def add_morph_options(p: argparse.ArgumentParser) -> None:
    """``--morph`` and its settings: the live morph of ``duet`` and ``play``."""
    from app.commands.nsynth import xy_arg

    p.add_argument("--morph", nargs="+", default=None, metavar="SOUND",
                   help="for --output audio: play a morph of 2 or 4 sounds (audio files, or "
                        "General MIDI instruments like gm:flute) live from a DDSP model, "
                        "voice by voice, instead of FluidSynth")
    p.add_argument("--morph-xy", type=xy_arg, default=(0.5, 0.5), metavar="X,Y",
                   help="the Morph pad's position (default 0.5,0.5): with two sounds X mixes "
                        "the first into the second; with four, the corners A B (top) C D")
    p.add_argument("--morph-model", default=None, metavar="NAME|PATH",
                   help="the DDSP model of --morph (default: the installed one)")


def check_sound_options(args: argparse.Namespace, to_audio: bool) -> None:
    """``--soundfont``, ``--instrument`` and ``--morph`` (whichever the command has) against
    each other and the output, and the morph's sounds: one line, before the MIDI ports and
    any model."""
    given = [name for name, value in (("--soundfont", getattr(args, "soundfont", None)),
                                      ("--instrument", getattr(args, "instrument", None)),
                                      ("--morph", getattr(args, "morph", None)))
             if value is not None]
    if len(given) > 1:
        raise CadenzaError(f"{' and '.join(given)} exclude each other: choose one")
    for name in given:
        if name != "--soundfont" and not to_audio:
            raise CadenzaError(f"{name} plays through --output audio, not a MIDI port "
                               f"({args.output!r})")
    if getattr(args, "morph", None) is None:
        return
    from app.commands.nsynth import check_sound

    if len(args.morph) not in limits.MORPH_SOURCES:
        raise CadenzaError(f"--morph takes 2 or 4 sounds, not {len(args.morph)}")
    for value in args.morph_xy:
        limits.number(value, "--morph-xy values", 0.0, 1.0)
    for sound in args.morph:
        check_sound(sound)


def load_live_morph(args: argparse.Namespace) -> Any:
    """The :class:`~models.ddsp.voices.LiveMorph` of ``--morph`` (None without it): the DDSP
    model loaded and the sounds encoded (a second or two)."""
    if getattr(args, "morph", None) is None:
        return None
    from models.ddsp.voices import LiveMorph
    from models.registry import ModelRegistry

    morpher = ModelRegistry().load(args.morph_model, "ddsp")
    sounds = [morpher.source_audio(s, 60) for s in args.morph]
    names = " x ".join(Path(s).stem if not s.lower().startswith("gm:") else s
                       for s in args.morph)
    return LiveMorph.from_sounds(morpher, sounds, tuple(args.morph_xy), name=names)


def audio_synth(engine: Any, soundfont: str | None = None,
                instrument: MorphInstrument | None = None, live: Any = None) -> Any:
    """The live voices for ``--output audio`` on a started ``engine``: a
    :class:`~app.sampler.DDSPSynth` playing ``live`` (a
    :class:`~models.ddsp.voices.LiveMorph`, ``--morph``) or a
    :class:`~app.sampler.SamplerSynth` playing ``instrument`` (a
    :class:`~models.nsynth.instrument.MorphInstrument`) if there is one, else FluidSynth
    (:class:`~app.transport.LiveSynth` with ``soundfont``)."""
    if live is not None:
        from app.sampler import DDSPSynth

        live.warm(engine.sample_rate)
        return DDSPSynth(engine, live)
    if instrument is not None:
        from app.sampler import SamplerSynth

        return SamplerSynth(engine, instrument)
    from app.transport import LiveSynth

    return LiveSynth(engine, soundfont=soundfont)


def sound_name(args: argparse.Namespace, live: Any = None) -> str:
    """What ``--output audio`` plays, for the status line ("" for FluidSynth)."""
    if live is not None:
        return f"morph {live.name}, "
    if getattr(args, "instrument", None) is not None:
        return f"{args.instrument.resolve().name}, "
    return ""
