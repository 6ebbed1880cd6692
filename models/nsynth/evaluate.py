"""Measuring a Morph model on notes it never saw: pitch kept, spectral distance, how harmonic
and how noisy its sound is, and whether its morphs lie between their sources.

The measures themselves (YIN f0, log-mel distance, loudness, harmonic share, flatness) are in
:mod:`models.nsynth.signal`. :func:`evaluate` takes any Morph façade (the registry's ``nsynth``
:class:`~models.nsynth.morph.Morpher`, ``ddsp`` :class:`~models.ddsp.morph.DDSPMorpher`: their
``config.sample_rate``, ``source_audio``, ``encode_batch``, ``guide`` and ``decode``). Every
audio file under a folder is encoded and reconstructed (batched), as a morph of that one sound
is: told its fundamental and following its loudness envelope, both from the family's own
``guide``.

* ``pitch_accuracy``: the share of notes (with a detectable input pitch) whose reconstruction's
  f0 is within 50 cents of the input's; ``spectral_distance``: the mean log-mel L1.
* ``harmonic_share``: :func:`~models.nsynth.signal.harmonic_share` of each reconstruction at
  the source's YIN f0 (the energy from 50 Hz to 7 kHz, over 0.2-3.5 s, within 3 % of f0 of a
  harmonic k * f0), the median over the pitched notes (``harmonic_share_mean``: the mean);
  ``flatness``: the median spectral flatness over the same band and span. The same two of the
  sources themselves, ``source_harmonic_share`` and ``source_flatness``, to read them against.
* ``between``: for up to ``pairs`` pairs of the evaluated notes at the same pitch from
  different instruments (:func:`note_pairs`), the share of 0.5 mixes whose log-mel distance to
  each source is smaller than the two sources' distance to each other.

A file that is no usable note (silent, unreadable) is skipped and counted (``skipped``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.audio_io import AUDIO_EXTENSIONS
from models.errors import CadenzaError
from models.nsynth.signal import (
    cents,
    estimate_f0,
    flatness,
    harmonic_share,
    spectral_distance,
)

AUDIO_SUFFIXES = AUDIO_EXTENSIONS  # every format models.audio_io reads
NOTE_NAME = re.compile(r"^p(\d+)-n(\d+)-v(\d+)")
"""The data set's file names (``p073-n060-v100``): program, pitch, velocity."""


# ---------------------------------------------------------------------------- evaluation
def audio_files(directory: str | Path) -> list[Path]:
    root = Path(directory)
    if not root.is_dir():
        raise CadenzaError(f"not a folder: {directory}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def note_key(path: Path, f0: float) -> tuple[str, int | None]:
    """``(instrument, MIDI pitch)`` of a note: from a data set name (``p073-n060-v100``: program
    73, pitch 60), else the file's name and the MIDI pitch nearest its f0 (None: unpitched)."""
    match = NOTE_NAME.match(path.stem)
    if match:
        return f"p{int(match.group(1))}", int(match.group(2))
    if not (math.isfinite(f0) and f0 > 0):
        return path.stem, None
    return path.stem, int(round(69 + 12 * math.log2(f0 / 440.0)))


def note_pairs(keys: Sequence[tuple[str, int | None]], count: int) -> list[tuple[int, int]]:
    """Up to ``count`` pairs ``(i, j)``, i < j, of notes at the same pitch from different
    instruments, chosen deterministically: the pitches in ascending order, each pitch's pairs in
    file order, one pair per pitch in turn (every pitch's first pair, then every second...)."""
    by_pitch: dict[int, list[tuple[int, int]]] = {}
    for i, (inst_i, pitch_i) in enumerate(keys):
        if pitch_i is None:
            continue
        for j in range(i + 1, len(keys)):
            inst_j, pitch_j = keys[j]
            if pitch_j == pitch_i and inst_j != inst_i:
                by_pitch.setdefault(pitch_i, []).append((i, j))
    chosen: list[tuple[int, int]] = []
    rank = 0
    while len(chosen) < count and any(rank < len(p) for p in by_pitch.values()):
        for pitch in sorted(by_pitch):
            if rank < len(by_pitch[pitch]) and len(chosen) < count:
                chosen.append(by_pitch[pitch][rank])
        rank += 1
    return chosen


def _stats(values: Sequence[float]) -> tuple[float | None, float | None]:
    """``(median, mean)`` of the finite values, rounded; ``(None, None)`` when there are none."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], np.float64)
    if not x.size:
        return None, None
    return round(float(np.median(x)), 4), round(float(np.mean(x)), 4)


def _r(x: float, digits: int = 4) -> float | None:
    return round(float(x), digits) if np.isfinite(x) else None


def evaluate(
    morpher: Any,
    directory: str | Path,
    limit: int | None = None,
    batch: int = 16,
    temperature: float = 1.0,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    save_dir: str | Path | None = None,
    raw: bool = False,
    pairs: int = 8,
) -> dict[str, Any]:
    """The measures of the module docstring over the audio under a folder: ``{"pitch_accuracy",
    "spectral_distance", "harmonic_share", "flatness", "source_harmonic_share",
    "source_flatness", "between", "pairs", "notes", ...}``, with per-note ``details``, per-pair
    ``pair_details`` and the ``skipped_files`` (each with its reason).

    ``limit``: this many files, evenly spread over the sorted list. ``raw`` leaves the loudness
    envelope out (the decoder's output as it comes). ``pairs``: how many morphs measure
    ``between`` (0: none)."""
    files = audio_files(directory)
    if not files:
        raise CadenzaError(f"no audio files (.wav, .flac, ...) under {directory}")
    if limit is not None and 0 < limit < len(files):
        pick = np.linspace(0, len(files) - 1, limit).round().astype(int)
        files = [files[i] for i in sorted(set(pick.tolist()))]
    sr = morpher.config.sample_rate
    kept, pitched, dists, details, skipped = 0, 0, [], [], []
    notes: list[tuple[Path, np.ndarray, np.ndarray, float]] = []  # file, audio, embedding, f0
    for start in range(0, len(files), batch):
        chunk, inputs = [], []
        for f in files[start:start + batch]:
            try:
                inputs.append(morpher.source_audio(f))
            except CadenzaError as exc:
                skipped.append({"file": str(f), "reason": str(exc)})
                continue
            chunk.append(f)
        if chunk:
            # each note is told its fundamental and follows its loudness as the family
            # measures them for a morph of that one sound (guide)
            guides = [morpher.guide([x], [1.0]) for x in inputs]
            f0s = np.array([g[0] for g in guides], np.float64)
            envs = None if raw else [g[1] for g in guides]
            embeddings = np.asarray(morpher.encode_batch(inputs))
            outs = morpher.decode(embeddings, temperature=temperature, seed=seed + start,
                                  f0=f0s, envelope=envs)
            for f, x, emb, y, f_in in zip(chunk, inputs, embeddings, outs, f0s, strict=True):
                rec = y.samples[:, 0]
                f_out = estimate_f0(rec, sr)
                dist = spectral_distance(x, rec, sr)
                dists.append(dist)
                f_yin = estimate_f0(x, sr)  # every model's figures at the same reference
                ok = None
                if np.isfinite(f_in):
                    pitched += 1
                    ok = bool(np.isfinite(f_out) and abs(cents(f_out, f_in)) <= 50.0)
                    kept += int(ok)
                details.append({
                    "file": str(f), "f0_in": round(f_in, 2), "f0_out": round(f_out, 2),
                    "pitch_kept": ok, "spectral_distance": round(dist, 4),
                    "harmonic_share": _r(harmonic_share(rec, sr, f_yin)),
                    "flatness": _r(flatness(rec, sr), 5),
                    "source_harmonic_share": _r(harmonic_share(x, sr, f_yin)),
                    "source_flatness": _r(flatness(x, sr), 5),
                })
                notes.append((f, np.asarray(x, np.float32), emb, f_yin))
                if save_dir is not None:
                    from models.audio_io import write_audio

                    Path(save_dir).mkdir(parents=True, exist_ok=True)
                    write_audio(Path(save_dir) / (f.stem + "-recon.wav"), y)
        if progress is not None:
            progress(min(start + batch, len(files)), len(files))
    if not notes:
        raise CadenzaError(f"none of the {len(files)} audio files under {directory} is a usable "
                           f"note ({skipped[0]['reason']})")
    chosen = note_pairs([note_key(f, f0) for f, _, _, f0 in notes], max(0, int(pairs)))
    pair_details = _morph_pairs(morpher, notes, chosen, batch, temperature, seed, raw,
                                progress, len(files))
    result: dict[str, Any] = {
        "pitch_accuracy": round(kept / pitched, 4) if pitched else None,
        "spectral_distance": round(float(np.mean(dists)), 4),
    }
    for name in ("harmonic_share", "flatness", "source_harmonic_share", "source_flatness"):
        median, mean = _stats([d[name] for d in details])
        result[name] = median
        result[name + "_mean"] = mean
    inside = [p["between"] for p in pair_details]
    result.update({
        "between": round(sum(inside) / len(inside), 4) if inside else None,
        "pairs": len(inside),
        "notes": len(notes),
        "skipped": len(skipped),
        "envelope": not raw,
        "pitched_notes": pitched,
        "details": details,
        "pair_details": pair_details,
        "skipped_files": skipped,
    })
    return result


def _morph_pairs(morpher: Any, notes: list[tuple[Path, np.ndarray, np.ndarray, float]],
                 chosen: list[tuple[int, int]], batch: int, temperature: float, seed: int,
                 raw: bool, progress: Callable[[int, int], None] | None, done: int
                 ) -> list[dict[str, Any]]:
    """The 0.5 mix of each chosen pair, decoded as ``cadenza morph`` does (the pitch and
    envelope of :meth:`guide`), and its log-mel distances to the two sources."""
    sr = morpher.config.sample_rate
    out: list[dict[str, Any]] = []
    for start in range(0, len(chosen), batch):
        chunk = chosen[start:start + batch]
        mixed = np.stack([0.5 * (notes[i][2] + notes[j][2]) for i, j in chunk]).astype(np.float32)
        guides = [morpher.guide([notes[i][1], notes[j][1]], [0.5, 0.5]) for i, j in chunk]
        morphs = morpher.decode(mixed, temperature=temperature, seed=seed + 7919 + start,
                                f0=[g[0] for g in guides],
                                envelope=None if raw else [g[1] for g in guides])
        for (i, j), y, (f0, _) in zip(chunk, morphs, guides, strict=True):
            a, b, m = notes[i][1], notes[j][1], y.samples[:, 0]
            d_ab, d_ma, d_mb = (spectral_distance(a, b, sr), spectral_distance(m, a, sr),
                                spectral_distance(m, b, sr))
            out.append({
                "a": str(notes[i][0]), "b": str(notes[j][0]), "sources_apart": round(d_ab, 4),
                "to_a": round(d_ma, 4), "to_b": round(d_mb, 4),
                "between": bool(d_ma < d_ab and d_mb < d_ab),
                "harmonic_share": _r(harmonic_share(m, sr, f0)),
                "flatness": _r(flatness(m, sr), 5),
            })
        if progress is not None:
            progress(done + min(start + batch, len(chosen)), done + len(chosen))
    return out
