"""Measuring a Morph model: pitch kept, and log-mel spectral distance, on notes it never saw.

The measures themselves (YIN f0, log-mel distance, loudness) are in :mod:`models.nsynth.signal`.

* :func:`evaluate`: every audio file under a folder is encoded and reconstructed (batched);
  ``pitch_accuracy`` is the share of notes (with a detectable input pitch) whose reconstruction's
  f0 is within 50 cents of the input's, ``spectral_distance`` the mean L1 between log-mels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.audio_io import AUDIO_EXTENSIONS
from models.errors import CadenzaError
from models.nsynth.signal import cents, estimate_f0, loudness_db, spectral_distance

AUDIO_SUFFIXES = AUDIO_EXTENSIONS  # every format models.audio_io reads


# ---------------------------------------------------------------------------- evaluation
def audio_files(directory: str | Path) -> list[Path]:
    root = Path(directory)
    if not root.is_dir():
        raise CadenzaError(f"not a folder: {directory}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


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
) -> dict[str, Any]:
    """``{"pitch_accuracy", "spectral_distance", "notes", ...}`` over the audio under a folder.

    Each note is decoded as a morph of that one sound is: told its fundamental and following its
    loudness envelope; ``raw`` leaves the envelope out (the decoder's output as it comes)."""
    files = audio_files(directory)
    if not files:
        raise CadenzaError(f"no audio files (.wav, .flac, ...) under {directory}")
    if limit is not None and 0 < limit < len(files):
        pick = np.linspace(0, len(files) - 1, limit).round().astype(int)
        files = [files[i] for i in sorted(set(pick.tolist()))]
    sr = morpher.config.sample_rate
    kept, pitched, dists, details = 0, 0, [], []
    for start in range(0, len(files), batch):
        chunk = files[start:start + batch]
        inputs = [morpher.source_audio(f) for f in chunk]
        f0s = morpher.pitches(inputs)  # a pitch-lag decoder is told the input's fundamental
        envs = None if raw else [loudness_db(x, morpher.config.hop) for x in inputs]
        outs = morpher.decode(morpher.encode_batch(inputs), temperature=temperature,
                              seed=seed + start, f0=f0s, envelope=envs)
        for f, x, y, f_in in zip(chunk, inputs, outs, f0s, strict=True):
            rec = y.samples[:, 0]
            f_out = estimate_f0(rec, sr)
            dist = spectral_distance(x, rec, sr)
            dists.append(dist)
            ok = None
            if np.isfinite(f_in):
                pitched += 1
                ok = bool(np.isfinite(f_out) and abs(cents(f_out, f_in)) <= 50.0)
                kept += int(ok)
            details.append({"file": str(f), "f0_in": round(f_in, 2), "f0_out": round(f_out, 2),
                            "pitch_kept": ok, "spectral_distance": round(dist, 4)})
            if save_dir is not None:
                from models.audio_io import write_audio

                Path(save_dir).mkdir(parents=True, exist_ok=True)
                write_audio(Path(save_dir) / (f.stem + "-recon.wav"), y)
        if progress is not None:
            progress(min(start + batch, len(files)), len(files))
    return {
        "pitch_accuracy": round(kept / pitched, 4) if pitched else None,
        "spectral_distance": round(float(np.mean(dists)), 4),
        "notes": len(files),
        "envelope": not raw,
        "pitched_notes": pitched,
        "details": details,
    }
