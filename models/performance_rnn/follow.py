"""Following the player: conditioning taken from a reference performance, and the measures of
how well a continuation follows its primer.

PerformanceRNN's controls describe the music to come (Magenta's multiconditioned model): the note
density (note onsets per second) and the pitch-class histogram (seconds each pitch class
sounds). :func:`reference_controls` takes both from what was played - the primer, or in the duet
the player's recent phrases - weighting every moment by ``0.5 ** (age / half_life)``, so the
last bars count most. The density is the one the model was trained with at each note: onsets
in the 3 s around it (:data:`~models.performance_rnn.encoding.DENSITY_WINDOW_SECONDS`), averaged
over the notes, so a busy run weighs as much as its notes do. Conditioning a continuation on
them keeps it in the primer's key and at its pace.

The measures (:func:`follow_figures`) compare a continuation with its reference:

* ``in_key``: the share of the continuation's notes whose pitch class is among the reference's
  seven most used (by onsets);
* ``pc_divergence``: the Jensen-Shannon divergence (base 2, 0..1) between the pitch-class
  distributions (onsets) of continuation and reference;
* ``notes_per_second`` and ``median_note_seconds`` of the continuation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import CadenzaError
from models.performance_rnn.encoding import DENSITY_WINDOW_SECONDS, control_vector
from models.sequence import PITCH_CLASS_NAMES, Note, NoteSequence

# How fast older playing counts less when following it. Measured with bench_follow.py: at 8 s
# the in-key share is within 0.04 of a pianist's own continuation; at 4 s it overshoots by 0.06.
HALF_LIFE_SECONDS = 8.0
KEY_CLASSES = 7
PRIMER = "primer"
OFF = "off"


@dataclass(frozen=True)
class Following:
    """How one model follows a reference: the half-life of the weighting and the share of a
    flat histogram mixed into the pitch classes (a model that keys on its histogram harder
    than a pianist does gets some). Measured per model with ``benchmarks/bench_follow.py``;
    a model folder's ``config.json`` may set them:
    ``"follow": {"half_life": 8, "flatten": 0, "release": 0}``.
    """

    half_life: float = HALF_LIFE_SECONDS
    flatten: float = 0.0
    # Added to the note-off logits while a continuation is conditioned (nats): a conditioned
    # model that holds its notes longer than the music it follows lets them go sooner.
    release: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.half_life) and 0.5 <= self.half_life <= 600.0):
            raise CadenzaError(f"the half-life of following must be 0.5 to 600 seconds, not "
                               f"{self.half_life!r}")
        if not (math.isfinite(self.flatten) and 0.0 <= self.flatten <= 1.0):
            raise CadenzaError(f"the flattening of following must be 0 to 1, not "
                               f"{self.flatten!r}")
        if not (math.isfinite(self.release) and 0.0 <= self.release <= 3.0):
            raise CadenzaError(f"the release of following must be 0 to 3, not "
                               f"{self.release!r}")

    @classmethod
    def from_json(cls, value: Any) -> Following:
        """From a model folder's ``"follow"`` object (missing: the defaults); bad values are one
        line (a folder is untrusted)."""
        if value is None:
            return cls()
        if not isinstance(value, dict) or set(value) - {"half_life", "flatten", "release"}:
            raise CadenzaError('"follow" must be an object with "half_life", "flatten" and '
                               '"release"')
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                   for v in value.values()):
            raise CadenzaError('"follow" takes numbers')
        return cls(**{k: float(v) for k, v in value.items()})


@dataclass(frozen=True)
class ReferenceControls:
    """What a reference performance asks of the music to come."""

    density: float  # note onsets per second, recent playing weighted most
    histogram: np.ndarray  # 12 weights (seconds sounding), C first

    def describe(self) -> str:
        top = np.argsort(-self.histogram, kind="stable")[:3]
        return (f"{self.density:.1f} notes/s, mostly "
                + ", ".join(PITCH_CLASS_NAMES[i] for i in top if self.histogram[i] > 0))


def _pitched(seq: NoteSequence) -> list[Note]:
    played = seq.apply_sustain() if seq.control_changes else seq
    return [n for n in played.notes if not n.is_drum and n.end > n.start]


def _weight_integral(a: np.ndarray, b: np.ndarray, end: float, half_life: float) -> np.ndarray:
    """``integral over [a, b] of 0.5 ** ((end - t) / half_life) dt``."""
    k = math.log(2.0) / half_life
    return (np.exp(-k * (end - b)) - np.exp(-k * (end - a))) / k


def reference_controls(seq: NoteSequence | None, half_life: float = HALF_LIFE_SECONDS,
                       end: float | None = None, flatten: float = 0.0
                       ) -> ReferenceControls | None:
    """Density and pitch-class histogram of ``seq`` (sustain applied, drums left out), recent
    playing weighted most; None when it has no pitched notes. ``end``: the moment "now"
    (default: where ``seq`` ends); ``flatten``: the share of a flat histogram mixed in."""
    if seq is None:
        return None
    notes = _pitched(seq)
    if not notes:
        return None
    if not half_life > 0:
        raise CadenzaError("the half-life of following must be positive")
    onsets = np.array([n.start for n in notes])
    offsets = np.array([n.end for n in notes])
    now = float(max(offsets.max(), seq.total_time) if end is None else end)
    start = float(onsets.min())
    offsets = np.minimum(offsets, now)
    onset_weight = 0.5 ** ((now - np.minimum(onsets, now)) / half_life)
    density = float(np.sum(onset_weight * local_density(onsets, start, now))
                    / max(onset_weight.sum(), 1e-12))
    sounding = _weight_integral(np.minimum(onsets, now), offsets, now, half_life)
    histogram = np.zeros(12)
    np.add.at(histogram, np.array([n.pitch % 12 for n in notes]), np.maximum(sounding, 0.0))
    if histogram.sum() <= 0:
        np.add.at(histogram, np.array([n.pitch % 12 for n in notes]), 1.0)
    histogram = (1.0 - flatten) * histogram / histogram.sum() + flatten / 12.0
    return ReferenceControls(density, histogram)


def local_density(onsets: np.ndarray, start: float, end: float,
                  window: float = DENSITY_WINDOW_SECONDS) -> np.ndarray:
    """Onsets per second in the ``window`` from each onset, as the model's density control is
    computed in training, with the window moved back to lie within ``start``..``end`` (a shorter
    reference: all of it, at least 0.5 s)."""
    width = min(window, max(end - start, 0.5))
    lo = np.clip(onsets, start, max(end - width, start))
    ordered = np.sort(onsets)
    count = (np.searchsorted(ordered, lo + width, side="left")
             - np.searchsorted(ordered, lo, side="left"))
    return count / width


def follow_control(reference: NoteSequence | None, following: Following = Following(),
                   end: float | None = None) -> np.ndarray:
    """The control vector that follows ``reference`` (:func:`reference_controls`, with the
    model's ``following``); the "off" vector when there is nothing pitched to follow."""
    ref = reference_controls(reference, following.half_life, end, following.flatten)
    return control_vector(None, None) if ref is None else control_vector(ref.density,
                                                                         ref.histogram)


def resolve_controls(reference: NoteSequence | None,
                     density: float | str | None,
                     histogram: Sequence[float] | np.ndarray | str | None,
                     following: Following = Following(),
                     ) -> tuple[float | None, Sequence[float] | np.ndarray | str | None]:
    """The conditioning to generate with: ``"primer"`` (:data:`PRIMER`) takes the density or
    the histogram from ``reference`` (nothing when it has no pitched notes), ``"off"`` or None
    leaves it out, anything else (a density, 12 weights, a key name) is kept as given."""
    ref = None
    if PRIMER in (density, histogram):
        ref = reference_controls(reference, following.half_life, flatten=following.flatten)
    if isinstance(density, str):
        if density == PRIMER:
            density = None if ref is None else ref.density
        elif density == OFF:
            density = None
        else:
            raise CadenzaError(f"density: a number of notes per second, '{PRIMER}' or '{OFF}', "
                               f"not '{density}'")
    if isinstance(histogram, str) and histogram in (PRIMER, OFF):
        histogram = None if histogram == OFF or ref is None else ref.histogram
    return density, histogram


# ---------------------------------------------------------------------------- measures
def pitch_class_counts(seq: NoteSequence) -> np.ndarray:
    counts = np.zeros(12)
    for n in seq.notes:
        if not n.is_drum:
            counts[n.pitch % 12] += 1
    return counts


def js_divergence(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray) -> float:
    """Jensen-Shannon divergence of two histograms (normalised here), base 2: 0..1."""
    a = np.asarray(p, np.float64)
    b = np.asarray(q, np.float64)
    if a.sum() <= 0 or b.sum() <= 0:
        return float("nan")
    a, b = a / a.sum(), b / b.sum()
    m = 0.5 * (a + b)

    def kl(x: np.ndarray) -> float:
        keep = x > 0
        return float(np.sum(x[keep] * np.log2(x[keep] / m[keep])))

    return 0.5 * kl(a) + 0.5 * kl(b)


def in_key_share(continuation: NoteSequence, reference: NoteSequence,
                 classes: int = KEY_CLASSES) -> float:
    """The share of ``continuation``'s notes in ``reference``'s ``classes`` most used pitch
    classes (by onsets); NaN when either has no notes."""
    ref = pitch_class_counts(reference)
    got = pitch_class_counts(continuation)
    if ref.sum() == 0 or got.sum() == 0:
        return float("nan")
    top = np.argsort(-ref, kind="stable")[:classes]
    return float(got[top].sum() / got.sum())


def follow_figures(reference: NoteSequence, continuation: NoteSequence,
                   seconds: float) -> dict[str, float]:
    """How ``continuation`` (times from its start, ``seconds`` long) follows ``reference``."""
    notes = [n for n in continuation.notes if not n.is_drum]
    lengths = [n.end - n.start for n in notes]
    return {
        "in_key": in_key_share(continuation, reference),
        "pc_divergence": js_divergence(pitch_class_counts(continuation),
                                       pitch_class_counts(reference)),
        "notes_per_second": len(notes) / seconds if seconds > 0 else float("nan"),
        "median_note_seconds": float(np.median(lengths)) if lengths else float("nan"),
    }


def summarize(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over takes (NaNs left out)."""
    keys = sorted({k for r in rows for k in r})
    out = {}
    for k in keys:
        values = np.array([r[k] for r in rows if k in r], np.float64)
        values = values[np.isfinite(values)]
        out[k] = round(float(np.median(values)), 4) if values.size else float("nan")
    return out


PRIMER_SPAN = (10.0, 18.0)  # seconds of a piece used as the primer ...
REAL_SPAN = (18.0, 28.0)  # ... and the real continuation it is compared with


def continuation_figures(model: Any, files: Sequence[Path], count: int, seed: int = 0,
                         temperature: float = 1.0, density: float | str | None = PRIMER,
                         pitch_histogram: Sequence[float] | str | None = PRIMER
                         ) -> dict[str, Any]:
    """How ``model`` (the registry's PerformanceRNN) follows primers of real pieces.

    For up to ``count`` of ``files`` long enough (evenly spread over the list), the primer is
    seconds 10-18 of the piece and one continuation of 10 s is generated with the given
    conditioning (default: from the primer); the real seconds 18-28 are measured the same way.
    Returns the medians (:func:`summarize`) for ``real`` and ``generated`` continuations and for
    the ``primer`` itself (its own density and note length), and the number of ``pieces``.
    """
    from models.midi_io import read_midi

    if count < 1:
        raise CadenzaError("--continuations must be at least 1")
    seconds = REAL_SPAN[1] - REAL_SPAN[0]
    rows: dict[str, list[dict[str, float]]] = {"real": [], "generated": [], "primer": []}
    order = sorted(range(len(files)), key=lambda i: (i * 7919) % max(len(files), 1))
    for index in order:
        try:
            seq = read_midi(files[index]).apply_sustain()
        except CadenzaError:
            continue
        if seq.total_time < REAL_SPAN[1] + 1.0:
            continue
        primer = seq.trim(*PRIMER_SPAN)
        if len([n for n in primer.notes if not n.is_drum]) < 8:
            continue
        (take,) = model.generate(primer, seconds, temperature=temperature, seed=seed,
                                 density=density, pitch_histogram=pitch_histogram)
        rows["generated"].append(follow_figures(primer, take.continuation, seconds))
        rows["real"].append(follow_figures(primer, seq.trim(*REAL_SPAN), seconds))
        rows["primer"].append(follow_figures(primer, primer, PRIMER_SPAN[1] - PRIMER_SPAN[0]))
        if len(rows["real"]) >= count:
            break
    if not rows["real"]:
        raise CadenzaError(f"no file is long enough ({REAL_SPAN[1] + 1:g} s) to continue")
    return {"pieces": len(rows["real"]), **{k: summarize(v) for k, v in rows.items()}}
