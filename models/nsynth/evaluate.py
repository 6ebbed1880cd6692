"""Measuring a Morph model: pitch kept, and log-mel spectral distance, on notes it never saw.

* :func:`estimate_f0`: YIN (de Cheveigné & Kawahara 2002) on the held part of a note: the
  cumulative-mean-normalised difference function per frame, the first dip under a threshold,
  parabolic refinement, and the median over voiced frames.
* :func:`log_mel`: a numpy mel filterbank (HTK mel scale, triangular, area-normalised like
  Slaney's) over an STFT magnitude, then ``log(mel + 1e-5)``.
* :func:`evaluate`: every audio file under a folder is encoded and reconstructed (batched);
  ``pitch_accuracy`` is the share of notes (with a detectable input pitch) whose reconstruction's
  f0 is within 50 cents of the input's, ``spectral_distance`` the mean L1 between log-mels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import CadenzaError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aif", ".aiff")


# ---------------------------------------------------------------------------- f0
def _frames(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    n = 1 + max(0, (x.shape[0] - length) // hop)
    idx = np.arange(length)[None, :] + hop * np.arange(n)[:, None]
    return x[idx]


def estimate_f0(
    audio: np.ndarray,
    sample_rate: int,
    fmin: float = 30.0,
    fmax: float = 2000.0,
    start: float = 0.2,
    end: float = 2.8,
    threshold: float = 0.15,
    frame_seconds: float = 0.064,
) -> float:
    """The fundamental frequency (Hz) of the part ``start..end`` s of a note; ``nan`` if none."""
    x = np.asarray(audio, np.float64).ravel()
    x = x[int(start * sample_rate): int(end * sample_rate)]
    max_lag = int(np.ceil(sample_rate / fmin))
    min_lag = max(2, int(np.floor(sample_rate / fmax)))
    w = max(int(frame_seconds * sample_rate), max_lag)
    if x.shape[0] < w + max_lag + 2 or not np.any(x):
        return float("nan")
    frames = _frames(x, w + max_lag + 1, max(1, w // 2))
    energy = np.mean(frames[:, :w] ** 2, axis=1)
    loud = energy > 1e-3 * np.max(energy) if np.max(energy) > 0 else energy > 0
    frames = frames[loud & (energy > 1e-10)]
    if frames.shape[0] == 0:
        return float("nan")
    # difference function d(tau) = sum_j (x_j - x_{j+tau})^2 for j < w, via FFT correlation
    n_fft = 1 << int(np.ceil(np.log2(2 * frames.shape[1])))
    spec = np.fft.rfft(frames, n_fft)
    head = np.fft.rfft(frames[:, :w], n_fft)
    corr = np.fft.irfft(np.conj(head) * spec, n_fft)[:, : max_lag + 1]
    sq = np.cumsum(np.pad(frames ** 2, ((0, 0), (1, 0))), axis=1)
    e0 = sq[:, w][:, None]
    taus = np.arange(max_lag + 1)
    e_tau = sq[:, taus + w] - sq[:, taus]
    d = np.maximum(e0 + e_tau - 2 * corr, 0.0)
    cum = np.cumsum(d[:, 1:], axis=1) / np.arange(1, max_lag + 1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] / np.maximum(cum, 1e-12)
    f0s = []
    for row_c, row_d in zip(cmnd, d, strict=True):
        below = np.nonzero(row_c[min_lag:max_lag] < threshold)[0]
        if below.size == 0:
            continue
        tau = int(below[0]) + min_lag
        while tau + 1 < max_lag and row_c[tau + 1] < row_c[tau]:
            tau += 1
        # parabolic refinement on the raw difference function
        a, b, c = row_d[tau - 1], row_d[tau], row_d[tau + 1]
        den = a - 2 * b + c
        shift = 0.5 * (a - c) / den if den > 0 else 0.0
        f0s.append(sample_rate / (tau + float(np.clip(shift, -1, 1))))
    if len(f0s) < max(1, frames.shape[0] // 4):
        return float("nan")
    return float(np.median(f0s))


def cents(f: float, ref: float) -> float:
    return float(1200.0 * np.log2(f / ref))


# ---------------------------------------------------------------------------- log-mel
def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = 80, fmin: float = 20.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular filters ``(n_mels, n_fft // 2 + 1)`` on the HTK mel scale, area-normalised."""
    fmax = sample_rate / 2 if fmax is None else fmax
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    fb = np.maximum(0.0, np.minimum(up, down))
    fb *= (2.0 / (hi - lo))
    return fb.astype(np.float32)


def log_mel(audio: np.ndarray, sample_rate: int, n_fft: int = 1024, hop: int = 256,
            n_mels: int = 80) -> np.ndarray:
    """``(frames, n_mels)`` natural-log mel magnitudes of a mono signal."""
    x = np.asarray(audio, np.float32).ravel()
    if x.shape[0] < n_fft:
        x = np.pad(x, (0, n_fft - x.shape[0]))
    frames = _frames(x, n_fft, hop) * np.hanning(n_fft).astype(np.float32)
    mag = np.abs(np.fft.rfft(frames, axis=1))
    return np.log(mag @ mel_filterbank(sample_rate, n_fft, n_mels).T + 1e-5)


def spectral_distance(a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
    """Mean absolute difference of the log-mels of two signals (cut to the shorter)."""
    n = min(len(a), len(b))
    return float(np.mean(np.abs(log_mel(a[:n], sample_rate) - log_mel(b[:n], sample_rate))))


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
    from models.nsynth.morph import loudness_db

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
