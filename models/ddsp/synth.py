"""DDSP's synthesizers and the frame features, in numpy (a leaf module: numpy only).

The decoder of :mod:`models.ddsp.model` turns frame controls into sound through two
synthesizers whose structure makes pitched, clean sound by construction (Engel et al., DDSP,
ICLR 2020):

* **Harmonic** (additive): ``n_harmonics`` sines at whole multiples of the fundamental, their
  amplitudes the frame's overall amplitude times its harmonic distribution; harmonics above the
  training Nyquist are silent. Controls are linearly interpolated between frame centres.
* **Filtered noise**: a fixed bank of band-limited noise signals, one per band (triangular bands
  on the mel scale up to the training Nyquist, each of unit RMS), mixed with per-frame band
  gains. The bands are defined in Hz, so the same controls render the same spectrum at 16, 44.1
  or 48 kHz.

Frame ``i`` of a note is centred on sample ``i * hop`` at the model's rate (``i * hop * rate /
model_rate`` at another rate). :func:`frame_features` gives the encoder's input (MFCCs without
the 0th, so loudness is left out) and the decoder's loudness (A-weighted, in dB) per frame.
The Keras model (training) and :mod:`models.ddsp.engine` (inference) use the same definitions; a
test checks that the two synthesize the same signal.
"""

from __future__ import annotations

import math

import numpy as np

from models.nsynth.signal import hz_to_mel, mel_filterbank, mel_to_hz

LOUDNESS_FLOOR_DB = -100.0
MIX_FLOOR_DB = -60.0  # a source counts at least this loud in a mix while another sounds
NOISE_BANK_SECONDS = 4.0


# ---------------------------------------------------------------------------- features
def a_weighting_db(freqs: np.ndarray) -> np.ndarray:
    """The A-weighting curve (IEC 61672) in dB at ``freqs`` Hz (0 dB at 1 kHz)."""
    f2 = np.maximum(np.asarray(freqs, np.float64), 1e-3) ** 2
    ra = (12194.0 ** 2 * f2 ** 2) / ((f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2)
                                                                  * (f2 + 737.9 ** 2))
                                     * (f2 + 12194.0 ** 2))
    return 20.0 * np.log10(np.maximum(ra, 1e-12)) + 2.0


def _dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II ``(n_in, n_out)``."""
    k = np.arange(n_out)[None, :]
    n = np.arange(n_in)[:, None]
    m = np.cos(np.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    m[:, 0] /= math.sqrt(2.0)
    return m.astype(np.float32)


def frame_features(audio: np.ndarray, sample_rate: int, hop: int, n_fft: int, n_mels: int,
                   n_mfcc: int, frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mfcc (frames, n_mfcc), loudness_db (frames,))`` of a mono signal, or of a batch
    ``(notes, samples)`` (then ``(notes, frames, ...)``).

    Frames are centred on ``i * hop`` (the signal is padded by ``n_fft / 2`` on both sides);
    ``frames`` defaults to ``len(audio) // hop``. The MFCCs are coefficients 1..n_mfcc of the
    DCT of the log-mel spectrum (the 0th, the overall level, is left out: the decoder gets the
    loudness on its own). The loudness is the mean A-weighted power of the frame in dB."""
    x = np.asarray(audio, np.float32)
    single = x.ndim == 1
    x = x.reshape(-1, x.shape[-1])
    n = x.shape[1] // hop if frames is None else int(frames)
    half = n_fft // 2
    x = np.pad(x, ((0, 0), (half, half + max(0, n * hop - x.shape[1]))))
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    window = np.hanning(n_fft).astype(np.float32)
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    weight = (10.0 ** (a_weighting_db(freqs) / 10.0)).astype(np.float32)
    fb = mel_filterbank(sample_rate, n_fft, n_mels).T
    dct = _dct_matrix(n_mels, n_mfcc + 1)[:, 1:]
    # A full-scale sine at 1 kHz comes out near 0 dB.
    scale = 4.0 / float(np.sum(window.astype(np.float64)) ** 2)
    mfcc = np.zeros((x.shape[0], n, n_mfcc), np.float32)
    loud = np.zeros((x.shape[0], n), np.float32)
    step = max(1, 32768 // max(n, 1))  # notes per chunk: about 32k frames at a time
    for a in range(0, x.shape[0], step):
        spec = np.fft.rfft(x[a:a + step][:, idx] * window, axis=-1)
        power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
        loud[a:a + step] = 10.0 * np.log10(np.maximum((power @ weight) * scale, 1e-10))
        mfcc[a:a + step] = np.log(np.sqrt(power) @ fb + 1e-5) @ dct
    loud = np.maximum(loud, LOUDNESS_FLOOR_DB)
    return (mfcc[0], loud[0]) if single else (mfcc, loud)


def mix_db(levels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Loudness curves in dB ``(..., sources)`` mixed with ``weights`` (normalised here): the
    weighted mean of the dB values, each source counted at no less than :data:`MIX_FLOOR_DB`
    wherever another is louder than that (where all are quieter, the plain mean).

    A plain mean of dB values would make a mix fall silent wherever one source does (a flute
    and an organ half and half would stop with the flute's release); a mean of amplitudes would
    let the longer source decide alone (a guitar and a kalimba would ring like the guitar). With
    the floor the mix decays between its sources, and the longer release still sounds, some
    15-20 dB down."""
    lv = np.asarray(levels, np.float64)
    w = np.asarray(weights, np.float64)
    w = w / max(float(w.sum()), 1e-9)
    floored = np.maximum(lv, MIX_FLOOR_DB) @ w
    plain = lv @ w
    return np.maximum(np.where(lv.max(-1) > MIX_FLOOR_DB, floored, plain), LOUDNESS_FLOOR_DB)


# ---------------------------------------------------------------------------- controls
def upsample(frames: np.ndarray, hop: float, samples: int) -> np.ndarray:
    """Controls ``(F, ...)`` centred on ``i * hop`` -> ``(samples, ...)`` by linear
    interpolation (held after the last frame)."""
    f = np.asarray(frames, np.float32)
    pos = np.arange(samples, dtype=np.float64) / float(hop)
    i0 = np.minimum(pos.astype(np.int64), f.shape[0] - 1)
    i1 = np.minimum(i0 + 1, f.shape[0] - 1)
    a = (pos - i0).astype(np.float32)
    a = np.minimum(a, 1.0)
    if f.ndim > 1:
        a = a.reshape(-1, *([1] * (f.ndim - 1)))
    return f[i0] * (1.0 - a) + f[i1] * a


# ---------------------------------------------------------------------------- harmonic
def harmonic(f0: np.ndarray, amplitudes: np.ndarray, sample_rate: int, phase: float = 0.0
             ) -> tuple[np.ndarray, float]:
    """Additive synthesis: ``f0 (T,)`` Hz and ``amplitudes (T, K)`` per sample (harmonic ``k``
    at ``(k + 1) * f0``) -> ``(signal (T,), phase at the end)``. Harmonics silent over the whole
    span are skipped."""
    f0 = np.asarray(f0, np.float64)
    amps = np.asarray(amplitudes, np.float32)
    omega = 2.0 * np.pi * f0 / sample_rate
    ph = phase + np.cumsum(omega)
    start = ph - omega  # the phase of each sample (the first one at ``phase``)
    end_phase = float(np.mod(ph[-1], 2 * np.pi)) if ph.size else phase
    used = np.flatnonzero(np.max(amps, axis=0) > 1e-7) if amps.size else np.zeros(0, int)
    out = np.zeros(f0.shape[0], np.float32)
    if used.size:
        base = np.mod(start, 2 * np.pi)
        for k in used:
            out += amps[:, k] * np.sin(base * (k + 1)).astype(np.float32)
    return out, end_phase


WAVETABLE_SIZE = 4096


def harmonic_wavetable(f0: np.ndarray, frame_amplitudes: np.ndarray, hop: float,
                       sample_rate: int, phase: float = 0.0, first_frame: float = 0.0,
                       size: int = WAVETABLE_SIZE) -> tuple[np.ndarray, float]:
    """:func:`harmonic` with the amplitudes given per frame ``(F, K)`` (frame ``i`` centred on
    sample ``(i - first_frame) * hop``), computed with one wavetable per frame.

    The synthesis is linear in the amplitudes, so interpolating them between two frames is
    crossfading the two frames' single-period tables (``sum_k a_k sin(k phi)``, one inverse FFT
    each) read at the same phase: the cost per sample no longer grows with the harmonics.
    Linear interpolation in a 4096-point table keeps the 60th harmonic's error below -60 dB."""
    f0 = np.asarray(f0, np.float64)
    amps = np.asarray(frame_amplitudes, np.float32)
    n = f0.shape[0]
    if n == 0:
        return np.zeros(0, np.float32), phase
    k = amps.shape[1]
    spec = np.zeros((amps.shape[0], size // 2 + 1), np.complex64)
    spec[:, 1:k + 1] = -1j * amps[:, : size // 2] * (size / 2)
    tables = np.fft.irfft(spec, size, axis=1).astype(np.float32)
    tables = np.concatenate([tables, tables[:, :1]], axis=1)  # the wrap-around neighbour
    omega = 2.0 * np.pi * f0 / sample_rate
    ph = phase + np.cumsum(omega)
    pos = np.mod(ph - omega, 2.0 * np.pi) * (size / (2.0 * np.pi))
    p0 = np.minimum(pos.astype(np.int64), size - 1)
    pf = (pos - p0).astype(np.float32)
    fpos = first_frame + np.arange(n, dtype=np.float64) / float(hop)
    i0 = np.minimum(fpos.astype(np.int64), amps.shape[0] - 1)
    i1 = np.minimum(i0 + 1, amps.shape[0] - 1)
    a = np.minimum(fpos - i0, 1.0).astype(np.float32)
    w0 = tables[i0, p0] * (1.0 - pf) + tables[i0, p0 + 1] * pf
    w1 = tables[i1, p0] * (1.0 - pf) + tables[i1, p0 + 1] * pf
    return (w0 * (1.0 - a) + w1 * a).astype(np.float32), float(np.mod(ph[-1], 2.0 * np.pi))


def harmonic_mask(f0: np.ndarray, n_harmonics: int, nyquist: float) -> np.ndarray:
    """``(..., K)``: 1 for harmonics below ``nyquist`` Hz at fundamental ``f0 (...)``."""
    k = np.arange(1, n_harmonics + 1, dtype=np.float32)
    return (np.asarray(f0, np.float32)[..., None] * k < nyquist).astype(np.float32)


# ---------------------------------------------------------------------------- noise
def noise_band_edges(n_bands: int, top_hz: float, bottom_hz: float = 20.0) -> np.ndarray:
    """``n_bands + 2`` edges (Hz) of triangular bands evenly spaced on the mel scale."""
    return mel_to_hz(np.linspace(hz_to_mel(bottom_hz), hz_to_mel(top_hz), n_bands + 2))


def noise_bank(n_bands: int, top_hz: float, sample_rate: int, seconds: float = NOISE_BANK_SECONDS,
               seed: int = 0) -> np.ndarray:
    """``(samples, n_bands)`` float32: white noise through each triangular band (zero-phase, in
    the frequency domain, circular so the bank loops without a seam), each of unit RMS."""
    n = int(round(seconds * sample_rate))
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    edges = noise_band_edges(n_bands, top_hz)
    out = np.zeros((n, n_bands), np.float32)
    for b in range(n_bands):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        gain = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, 1)
        band = np.fft.irfft(spec * gain, n)
        rms = float(np.sqrt(np.mean(band ** 2)))
        out[:, b] = band / max(rms, 1e-12)
    return out


def filtered_noise(gains: np.ndarray, bank: np.ndarray, offset: int = 0) -> np.ndarray:
    """``gains (T, B)`` per sample times the bank read from ``offset`` (looping) -> ``(T,)``."""
    t = gains.shape[0]
    idx = (offset + np.arange(t)) % bank.shape[0]
    return np.einsum("tb,tb->t", gains.astype(np.float32), bank[idx]).astype(np.float32)
