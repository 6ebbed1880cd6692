"""Signal measures shared by the Morph code: a leaf module (numpy only, no other Cadenza imports).

* :func:`estimate_f0`: YIN (de Cheveigné & Kawahara 2002) on the held part of a note: the
  cumulative-mean-normalised difference function per frame, the first dip under a threshold,
  parabolic refinement, and the median over voiced frames.
* :func:`log_mel`: a numpy mel filterbank (HTK mel scale, triangular, area-normalised like
  Slaney's) over an STFT magnitude, then ``log(mel + 1e-5)``; :func:`spectral_distance`.
* :func:`loudness_db` (RMS per frame, in dB) and :func:`follow_envelope` (turn a signal down to
  a target level, frame by frame).
* :func:`harmonic_share` (the share of a note's energy at the harmonics of its fundamental) and
  :func:`flatness` (spectral flatness), both over :func:`band_power`: the power spectrum of the
  held part of a note, long Hann frames, 50 Hz to 7 kHz.

The data set (each note's f0), the evaluation, the morphs and the instruments use them.
"""

from __future__ import annotations

import numpy as np


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


# ---------------------------------------------------------------------------- loudness
FLOOR_DB = -100.0


def loudness_db(audio: np.ndarray, hop: int = 512) -> np.ndarray:
    """The level of each ``hop``-sample frame of a mono signal, in dB (RMS; -100 for silence)."""
    x = np.asarray(audio, np.float64).ravel()
    n = x.shape[0] // hop
    if n == 0:
        return np.zeros(0)
    power = np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1)
    return np.maximum(10.0 * np.log10(power + 1e-12), FLOOR_DB)


def follow_envelope(audio: np.ndarray, target_db: np.ndarray, hop: int = 512) -> np.ndarray:
    """``audio`` turned down, frame by frame, wherever it is louder than ``target_db``; the gain
    moves linearly between frame centres, so there are no steps. Frames past the end of
    ``target_db`` keep its last value."""
    y = np.asarray(audio, np.float32).ravel()
    target = np.asarray(target_db, np.float64).ravel()
    level = loudness_db(y, hop)
    if level.size == 0 or target.size == 0:
        return y
    target = np.pad(target, (0, max(0, level.size - target.size)), mode="edge")[: level.size]
    gain = 10.0 ** (np.minimum(0.0, target - level) / 20.0)
    centres = np.arange(level.size) * hop + hop / 2.0
    return (y * np.interp(np.arange(y.shape[0]), centres, gain)).astype(np.float32)


# ---------------------------------------------------------------------------- harmonicity
BAND = (50.0, 7000.0)
"""The band :func:`harmonic_share` and :func:`flatness` look at, in Hz."""
SPAN = (0.2, 3.5)
"""The part of a note they look at, in seconds: after the attack, up to the end of the release
of a 4-second NSynth note."""
HARMONIC_TOLERANCE = 0.03
"""A harmonic ``k * f0`` holds the bins within +-3 % of ``f0`` of it."""
MAIN_LOBE_BINS = 2
"""A Hann window's main lobe, in bins either side: the least a harmonic's window holds."""


def band_power(audio: np.ndarray, sample_rate: int, band: tuple[float, float] = BAND,
               span: tuple[float, float] = SPAN, frame_seconds: float = 1.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(freqs, power)``: the power spectrum of ``span`` s of a mono signal, summed over
    Hann-windowed frames, at the bins in ``band`` (Hz).

    The frames are ``n_fft`` samples, the power of two nearest ``frame_seconds`` (16384 at
    16 kHz: bins 0.98 Hz apart, so +-3 % of the lowest NSynth note, C2 at 65.4 Hz, is +-2 bins,
    the Hann main lobe), with a hop of ``n_fft / 4``; a span shorter than a frame is one frame,
    padded with silence."""
    x = np.asarray(audio, np.float64).ravel()
    x = x[int(span[0] * sample_rate): int(span[1] * sample_rate)]
    n_fft = 1 << max(8, int(round(np.log2(frame_seconds * sample_rate))))
    if x.shape[0] < n_fft:
        x = np.pad(x, (0, n_fft - x.shape[0]))
    frames = _frames(x, n_fft, n_fft // 4) * np.hanning(n_fft)
    power = np.sum(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    keep = (freqs >= band[0]) & (freqs <= band[1])
    return freqs[keep], power[keep]


def harmonic_mask(freqs: np.ndarray, f0: float, tolerance: float = HARMONIC_TOLERANCE,
                  min_width: float = 0.0) -> np.ndarray:
    """The bins at ``freqs`` within ``tolerance * f0`` of a harmonic ``k * f0`` (k >= 1), or
    within ``min_width`` Hz of it where that is wider."""
    f = np.asarray(freqs, np.float64)
    k = np.maximum(1.0, np.round(f / f0))
    return np.abs(f - k * f0) <= max(tolerance * f0, min_width)


def harmonic_share(audio: np.ndarray, sample_rate: int, f0: float,
                   band: tuple[float, float] = BAND, span: tuple[float, float] = SPAN,
                   tolerance: float = HARMONIC_TOLERANCE, frame_seconds: float = 1.0) -> float:
    """The share of a note's energy that lies at the harmonics of ``f0``; ``nan`` when ``f0``
    is not a positive finite number or the span is silent.

    Exactly: over :func:`band_power` (``span`` 0.2-3.5 s of the note, Hann frames of 2**14
    samples at 16 kHz, bins 0.98 Hz apart, power summed over the frames, the bins from 50 Hz
    to 7 kHz), the power of the bins within +-``tolerance`` (3 %) of ``f0`` from a harmonic
    ``k * f0`` (k >= 1; that is, whose harmonic number f / f0 is within 0.03 of a whole
    number), widened to the Hann main lobe (+-2 bins) where that is narrower, divided by the
    power of all the bins. The windows are as wide at every harmonic, 6 % of the spacing, so
    white noise scores about 0.06 at any pitch (a window of +-3 % of ``k * f0`` would cover
    6k % of the spacing: half the spectrum at the 8th harmonic, all of it from the 17th).
    ``f0`` is the source's (YIN), not the output's own: a note played off pitch loses share,
    the more so at its higher harmonics (harmonic 10 leaves its window 5 cents off)."""
    if not (np.isfinite(f0) and f0 > 0):
        return float("nan")
    freqs, power = band_power(audio, sample_rate, band, span, frame_seconds)
    total = float(np.sum(power))
    if not total > 0 or freqs.size < 2:
        return float("nan")
    bin_hz = float(freqs[1] - freqs[0])
    mask = harmonic_mask(freqs, f0, tolerance, MAIN_LOBE_BINS * bin_hz)
    return float(np.sum(power[mask]) / total)


def flatness(audio: np.ndarray, sample_rate: int, band: tuple[float, float] = BAND,
             span: tuple[float, float] = SPAN, frame_seconds: float = 1.0) -> float:
    """Spectral flatness (Wiener entropy) of a note: the geometric mean of :func:`band_power`
    (the power spectrum of ``span`` s summed over frames, 50 Hz to 7 kHz) divided by its
    arithmetic mean; 1 for white noise, near 0 for a sum of sinusoids. Each bin's power is
    floored at 1e-10 of the mean (-100 dB), so exact zeros do not make it 0; ``nan`` when the
    span is silent."""
    _, power = band_power(audio, sample_rate, band, span, frame_seconds)
    mean = float(np.mean(power)) if power.size else 0.0
    if not mean > 0:
        return float("nan")
    floored = np.maximum(power, 1e-10 * mean)
    return float(np.exp(np.mean(np.log(floored))) / np.mean(floored))
