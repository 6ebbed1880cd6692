"""Every bound on what Cadenza reads and on how much work one command may ask for, in one place.

Each limit is checked before any model is loaded (the command line checks its arguments before
it imports the backend), and a value past it is a one-line :class:`CadenzaError`. The limits
keep every job's time and memory bounded on an ordinary machine: no input file and no argument
can make Cadenza run for hours or ask for more memory than the machine has. They are listed for
users in ``docs/limits.md``; a test checks that every constant here is named there.

This module imports nothing heavy (no numpy), so the command line stays fast.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from models.errors import CadenzaError

# ------------------------------------------------------------------------------ MIDI files
MIDI_MAX_BYTES = 2 * 1024 * 1024
"""A MIDI file read as input: at most 2 MiB (the largest of the training data sets' 3,869 files
is under 300 kB; parsing 2 MiB takes about 10 s at worst)."""
MIDI_MAX_NOTES = 100_000
"""Notes in one MIDI file."""
MIDI_MAX_TEMPO_CHANGES = 10_000
"""Tempo events in one MIDI file."""
MIDI_MAX_SECONDS = 3600.0
"""The length of a MIDI file used as input (a primer, a file to render, an interpolation end):
one hour. (Reading alone refuses files past six hours as corrupt.)"""

# ------------------------------------------------------------------------------ MusicXML files
MUSICXML_MAX_BYTES = 8 * 1024 * 1024
"""A MusicXML file read as input, and the score inside a compressed ``.mxl`` file once
unpacked: at most 8 MiB (20,000 notes of a melody are about 5.8 MiB; music21 reads them in about
4 s of processor time and writes them in about 7 s)."""
MUSICXML_MAX_NOTES = 20_000
"""Notes (``<note>`` elements, rests included) in one MusicXML file, counted before music21
reads it; and the notes of a sequence written as MusicXML."""
MUSICXML_MAX_QUARTERS = 40_000
"""The length of a sequence written as MusicXML, in quarter notes at its own tempo (10,000 bars
of 4/4): music21 builds every bar in memory."""

# ------------------------------------------------------------------------------ audio
SAMPLE_RATE_MIN = 8000
SAMPLE_RATE_MAX = 192000
"""Output sample rates, in Hz."""
RENDER_MAX_SECONDS = 1800.0
"""Audio rendered from MIDI in one go (``cadenza render``, Export WAV): half an hour."""
RENDER_MAX_TAIL = 30.0
"""Seconds of release rendered after the last note."""
SOURCE_MAX_SECONDS = 600.0
"""A sound file used as a morph source (only its first 4 s are used): ten minutes."""

# ------------------------------------------------------------------------------ Continue
CONTINUE_MAX_SECONDS = 600.0
"""The length of one continuation, in seconds."""
MAX_VARIATIONS = 16
"""Continuations generated together."""
MAX_BEAM_SIZE = 16
MAX_BRANCH_FACTOR = 16
MAX_STEPS_PER_ITERATION = 64
"""Beam search: beams, branches per beam, events per iteration."""
MAX_TEMPERATURE = 10.0
"""Sampling temperature: above 0 (Continue, Morph) or 0 for greedy (Interpolate), at most 10."""
MAX_DENSITY = 1000.0
"""``--density``: notes per second."""

# ------------------------------------------------------------------------------ tempo
TEMPO_MIN = 20.0
TEMPO_MAX = 400.0
"""``--tempo`` (the session tempo the results carry, as the Live panel's sync sets it) and the
sync's own tempo, in BPM (quarter notes per minute)."""

# ------------------------------------------------------------------------------ Interpolate
MAX_SAMPLES = 256
"""``cadenza sample -n``."""
MAX_INTERPOLATION_STEPS = 256
"""``cadenza interpolate --steps``: sequences from A to B."""

# ------------------------------------------------------------------------------ Morph
MORPH_SOURCES = (2, 4)
"""Sounds mixed by one morph."""
MAX_INSTRUMENT_PITCHES = 32
"""Notes rendered for one morph instrument (16 by default)."""
MAX_RELEASE = 30.0
"""An instrument's release, in seconds."""
SFZ_MAX_BYTES = 256 * 1024
"""An instrument's SFZ file (at most 128 regions, each a sound file of at most ten minutes)."""

# ------------------------------------------------------------------------------ seeds, training
SEED_MAX = 2**32 - 1
"""Random seeds are 0..2**32-1."""
MAX_TRAIN_STEPS = 100_000_000
"""``cadenza train --steps``."""

# ------------------------------------------------------------------------------ model folders
CONFIG_MAX_BYTES = 1024 * 1024
"""A model folder's ``config.json``."""
CONFIG_MAX_DEPTH = 20
"""Nesting of objects and lists in ``config.json``."""
CARD_MAX_BYTES = 1024 * 1024
"""A model card (read with bad bytes replaced)."""
MAX_LAYER_SIZE = 4096
"""Units or channels of one layer of a model."""
MAX_LAYERS = 64
"""Layers of one stack of a model."""


# ------------------------------------------------------------------------------ checks
def number(value: Any, name: str, low: float, high: float, *, low_open: bool = False,
           unit: str = "") -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise CadenzaError(f"{name} must be a number, not {value!r}") from None
    below = x <= low if low_open else x < low
    if not math.isfinite(x) or below or x > high:
        span = (f"above {low:g} and at most {high:g}{unit}" if low_open
                else f"{low:g}..{high:g}{unit}")
        raise CadenzaError(f"{name} must be {span}, not {value}")
    return x


def integer(value: Any, name: str, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise CadenzaError(f"{name} must be a whole number, not {value!r}") from None
        if not math.isfinite(as_float) or as_float != int(as_float):
            raise CadenzaError(f"{name} must be a whole number, not {value}")
        value = int(as_float)
    if not low <= value <= high:
        raise CadenzaError(f"{name} must be {low}..{high}, not {value}")
    return int(value)


def seed(value: Any, name: str = "--seed") -> int | None:
    """A random seed (None: fresh randomness)."""
    return None if value is None else integer(value, name, 0, SEED_MAX)


def sample_rate(value: Any, name: str = "--sample-rate") -> int:
    return integer(value, name, SAMPLE_RATE_MIN, SAMPLE_RATE_MAX)


def temperature(value: Any, name: str = "--temperature", *, zero: bool = False) -> float:
    """A sampling temperature: (0, 10], or [0, 10] where 0 means greedy (``zero``)."""
    return number(value, name, 0.0, MAX_TEMPERATURE, low_open=not zero)


def tempo(value: Any, name: str = "--tempo") -> float | None:
    """A tempo in BPM, :data:`TEMPO_MIN`..:data:`TEMPO_MAX` (None: none given)."""
    return None if value is None else number(value, name, TEMPO_MIN, TEMPO_MAX, unit=" BPM")


def midi_file(path: str | Path) -> Path:
    """An input MIDI (or MusicXML, by its extension) file that exists, is a file, and is not
    too large to read."""
    p = Path(path)
    if not p.exists():
        raise CadenzaError(f"no such file: {p}")
    if not p.is_file():
        raise CadenzaError(f"{p}: not a file")
    size = p.stat().st_size
    if p.suffix.lower() in (".musicxml", ".xml", ".mxl"):  # models.musicxml.MUSICXML_SUFFIXES
        musicxml_data(size, p.name)
        return p
    if size > MIDI_MAX_BYTES:
        raise CadenzaError(f"{p.name}: {size / 2**20:.1f} MiB, more than the "
                           f"{MIDI_MAX_BYTES / 2**20:.0f} MiB a MIDI file may have")
    return p


def midi_data(size: int, label: str) -> None:
    """The byte count of a MIDI file about to be parsed."""
    if size > MIDI_MAX_BYTES:
        raise CadenzaError(f"{label}: {size / 2**20:.1f} MiB, more than the "
                           f"{MIDI_MAX_BYTES / 2**20:.0f} MiB a MIDI file may have")


def midi_counts(notes: int, tempos: int, label: str) -> None:
    """Notes and tempo events of a MIDI file as it is read."""
    if notes > MIDI_MAX_NOTES:
        raise CadenzaError(f"{label}: {notes:,} notes, more than the {MIDI_MAX_NOTES:,} a MIDI "
                           f"file may have")
    if tempos > MIDI_MAX_TEMPO_CHANGES:
        raise CadenzaError(f"{label}: {tempos:,} tempo changes, more than the "
                           f"{MIDI_MAX_TEMPO_CHANGES:,} a MIDI file may have")


def musicxml_data(size: int, label: str) -> None:
    """The byte count of a MusicXML file (or of the score unpacked from a ``.mxl``) about to be
    parsed."""
    if size > MUSICXML_MAX_BYTES:
        raise CadenzaError(f"{label}: {size / 2**20:.1f} MiB, more than the "
                           f"{MUSICXML_MAX_BYTES / 2**20:.0f} MiB a MusicXML file may have")


def musicxml_notes(notes: int, label: str) -> None:
    """The ``<note>`` elements of a MusicXML file, counted before it is read."""
    if notes > MUSICXML_MAX_NOTES:
        raise CadenzaError(f"{label}: {notes:,} notes, more than the {MUSICXML_MAX_NOTES:,} a "
                           f"MusicXML file may have")


def sequence_length(seconds: float, label: str, limit: float = MIDI_MAX_SECONDS) -> None:
    """The length of a sequence used as input (a primer, a file to render, ...)."""
    if not math.isfinite(seconds) or seconds > limit:
        raise CadenzaError(f"{label}: {_duration(seconds)} long, more than the "
                           f"{_duration(limit)} an input may last")


def audio_source(path: str | Path) -> Path:
    """A sound file used as a morph source: readable, not empty, not too long (read from its
    header only, before any model is loaded)."""
    import soundfile

    p = Path(path)
    if not p.is_file():
        raise CadenzaError(f"no such file: {p} (General MIDI sources look like gm:flute)")
    if p.stat().st_size == 0:
        raise CadenzaError(f"{p.name}: the sound file is empty")
    try:
        info = soundfile.info(str(p))
    except (RuntimeError, OSError, ValueError, TypeError) as exc:
        if p.suffix.lower() not in _SNDFILE_SUFFIXES:
            return p  # a format read by other means: its reader checks it
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise CadenzaError(f"{p.name}: not a readable sound file ({reason})") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise CadenzaError(f"{p.name}: the sound file is empty")
    seconds = info.frames / info.samplerate
    if seconds > SOURCE_MAX_SECONDS:
        raise CadenzaError(f"{p.name}: {_duration(seconds)} long, more than the "
                           f"{_duration(SOURCE_MAX_SECONDS)} a morph source may last")
    return p


_SNDFILE_SUFFIXES = {".wav", ".wave", ".flac", ".aif", ".aiff", ".ogg", ".oga"}


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "endlessly"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:g} s"


# ------------------------------------------------------------------------------ model configs
MAX_PARAMETERS = 300_000_000
"""The parameters a model's config may ask for (1.2 GB of float32; Magenta's full-size models,
the largest Cadenza trains, have about 140 million), estimated before anything is built."""
MAX_TEXT_FIELD = 200
"""Characters of a text field of a model config."""
CONFIG_INT_RANGE = (0, MAX_LAYER_SIZE)
"""An integer field of a model config not listed below."""
CONFIG_LIST_ITEM_RANGE = (1, MAX_LAYER_SIZE)
"""An item of a list field (layer sizes) of a model config not listed below."""
MAX_CONFIG_LIST = 16
"""Items of a list field (layers of a recurrent stack) of a model config."""
CONFIG_FIELD_RANGES: dict[str, tuple[float, float]] = {
    "sample_rate": (8000, 48000), "hop": (1, 8192), "quantization": (2, 4096),
    "latent_dim": (1, 1024), "z_size": (1, MAX_LAYER_SIZE), "num_classes": (1, MAX_LAYER_SIZE),
    "enc_channels": (1, MAX_LAYER_SIZE), "dec_channels": (1, MAX_LAYER_SIZE),
    "skip_channels": (1, MAX_LAYER_SIZE), "enc_layers": (1, MAX_LAYERS),
    "dec_layers": (1, MAX_LAYERS), "enc_kernel": (1, 64), "dec_kernel": (1, 64),
    "enc_cycle": (1, 16), "dec_cycle": (1, 12), "dec_base": (1, 4), "note_seconds": (0.1, 30.0),
    "lag_taps": (-64, 64), "slice_bars": (1, 64), "bar_steps": (1, 96),
    "encoding_version": (0, 1000), "converter_version": (0, 1000),
    "n_fft": (16, 16384), "n_mels": (1, 512), "n_mfcc": (1, 128), "n_harmonics": (1, 512),
    "n_noise": (1, 512), "noise_bias": (-20.0, 20.0), "gru_units": (1, MAX_LAYER_SIZE),
    "hidden": (1, MAX_LAYER_SIZE),
}
"""Ranges of named fields of the model configs (for a list, of each item)."""


def config_field(name: str, value: Any) -> None:
    """A value of a model config's field (types are checked before): in its range, finite,
    text and lists not too long."""
    def fail(what: str) -> None:
        raise CadenzaError(f"model config field '{name}' must be {what}, "
                           f"not {str(value)[:60]}")

    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        if len(value) > MAX_TEXT_FIELD:
            fail(f"at most {MAX_TEXT_FIELD} characters")
        return
    if isinstance(value, int | float):
        low, high = CONFIG_FIELD_RANGES.get(name, CONFIG_INT_RANGE)
        if not (math.isfinite(value) and low <= value <= high):
            fail(f"{low:g}..{high:g}")
        return
    if isinstance(value, list | tuple):
        if len(value) > MAX_CONFIG_LIST:
            fail(f"a list of at most {MAX_CONFIG_LIST} items")
        low, high = CONFIG_FIELD_RANGES.get(name, CONFIG_LIST_ITEM_RANGE)
        for item in value:
            if isinstance(item, int | float) and not isinstance(item, bool) and not (
                    math.isfinite(item) and low <= item <= high):
                fail(f"a list of values {low:g}..{high:g}")


def _lstm(sizes: Any, first_input: int, bidirectional: bool = False) -> int:
    total, width = 0, first_input
    for units in sizes or ():
        total += 4 * (width + int(units) + 1) * int(units) * (2 if bidirectional else 1)
        width = int(units) * (2 if bidirectional else 1)
    return total


def estimated_parameters(kind: str, c: dict[str, Any]) -> int:
    """About how many parameters a model of config class ``kind`` with fields ``c`` has (an
    upper estimate, from the sizes alone)."""
    g = c.get
    if kind == "PerformanceConfig":
        width = int(g("num_classes", 388)) + int(g("control_size", 0)) + int(g("note_features", 0))
        return _lstm(g("layers"), width) + int(g("num_classes", 388)) * max(
            [int(u) for u in g("layers") or (1,)])
    if kind == "MusicVAEConfig":
        classes, z = 512, int(g("z_size", 128))  # the drum vocabulary, the larger one
        enc = _lstm(g("enc_rnn_size"), classes, True)
        last = 2 * int((g("enc_rnn_size") or (1,))[-1])
        top = _lstm(g("enc_top_rnn_size"), last, True)
        conductor = _lstm(g("conductor_rnn_size"), z)
        cond_out = int((g("conductor_rnn_size") or (0,))[-1])
        dec = _lstm(g("dec_rnn_size"), classes + z + cond_out)
        return enc + top + conductor + dec + 4 * last * z + classes * max(
            [int(u) for u in g("dec_rnn_size") or (1,)])
    if kind == "NSynthConfig":
        e, d = int(g("enc_channels", 32)), int(g("dec_channels", 32))
        s = int(g("skip_channels", 64))
        latent, q = int(g("latent_dim", 16)), int(g("quantization", 256))
        enc = int(g("enc_layers", 10)) * (int(g("enc_kernel", 3)) * e * e + e * e)
        dec = int(g("dec_layers", 10)) * (int(g("dec_kernel", 3)) * d * 2 * d + d * d + d * s
                                          + latent * 2 * d)
        return enc + dec + s * s + s * q
    return 0


def model_size(kind: str, c: dict[str, Any]) -> None:
    """Refuse a config that asks for more than :data:`MAX_PARAMETERS`."""
    estimate = estimated_parameters(kind, c)
    if estimate > MAX_PARAMETERS:
        raise CadenzaError(f"the model config asks for about {estimate / 1e6:,.0f} million "
                           f"parameters, more than the {MAX_PARAMETERS / 1e6:,.0f} million "
                           f"a model may have")
