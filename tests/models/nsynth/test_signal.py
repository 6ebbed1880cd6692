"""The harmonicity measures of models.nsynth.signal on synthetic notes whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from models.nsynth.signal import band_power, flatness, harmonic_mask, harmonic_share

SR = 16000
T = np.arange(4 * SR) / SR


def tone(f0: float, partials: int = 12, stretch: float = 0.0, tilt: float = 1.0) -> np.ndarray:
    """A note of ``partials`` partials, amplitudes ``1 / k ** tilt``; partial k at ``k * f0 *
    (1 + stretch * (k - 1))`` (0: harmonic), each at a random phase, up to 7 kHz."""
    rng = np.random.default_rng(1)
    x = np.zeros_like(T)
    for k in range(1, partials + 1):
        f = k * f0 * (1.0 + stretch * (k - 1))
        if f < 7000:
            x += np.sin(2 * np.pi * f * T + rng.uniform(0, 2 * np.pi)) / k ** tilt
    return (0.1 * x / np.sqrt(np.mean(x ** 2))).astype(np.float32)


def noise(seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(T.shape)).astype(np.float32)


@pytest.mark.parametrize("f0", [65.41, 130.8, 261.6, 440.0, 1046.5, 2093.0])
def test_a_harmonic_tone_is_all_harmonics_and_not_flat(f0: float) -> None:
    x = tone(f0)
    assert harmonic_share(x, SR, f0) > 0.99
    assert flatness(x, SR) < 0.01
    # 20 cents off its own pitch, the harmonics from the 3rd on leave their windows
    if f0 < 2000:  # (under 7 kHz, 2093 Hz has only two more)
        assert harmonic_share(x, SR, f0 * 2 ** (20 / 1200)) < 0.9


@pytest.mark.parametrize("f0", [65.41, 261.6, 1046.5])
def test_white_noise_is_at_chance_and_flat(f0: float) -> None:
    x = noise()
    assert harmonic_share(x, SR, f0) < 0.1  # the windows cover 6 % of the spectrum
    assert flatness(x, SR) > 0.8


def test_an_inharmonic_tone_has_a_low_share() -> None:
    f0 = 220.0
    # partials stretched 6 % per step, all as loud: a bell, not a string; only the first fits
    bell = tone(f0, stretch=0.06, tilt=0.0)
    assert harmonic_share(bell, SR, f0) < 0.15
    assert harmonic_share(tone(f0, tilt=0.0), SR, f0) > 0.99
    assert flatness(bell, SR) < 0.01  # still sinusoids: not flat
    half = tone(f0 * 1.5)  # harmonics of another note: only every other partial fits
    assert harmonic_share(half, SR, f0) < 0.6
    assert harmonic_share(half, SR, f0 / 2) > 0.99


def test_a_tone_in_noise_scores_between() -> None:
    f0 = 261.6
    clean, hiss = tone(f0), noise()
    share = harmonic_share(clean + hiss, SR, f0)  # equal power: about half harmonic
    assert 0.45 < share < 0.6
    assert harmonic_share(clean + 0.3 * hiss, SR, f0) > share
    assert flatness(clean, SR) < flatness(clean + hiss, SR) < flatness(hiss, SR)


def test_the_span_and_band_are_the_ones_documented() -> None:
    f0 = 261.6
    x = tone(f0)
    late = x.copy()
    late[int(0.2 * SR):int(3.5 * SR)] = 0.0  # sound only outside 0.2-3.5 s
    late[int(3.5 * SR):] = noise()[int(3.5 * SR):]
    assert np.isnan(harmonic_share(late[: int(3.5 * SR)], SR, f0))
    hum = (0.1 * np.sin(2 * np.pi * 30 * T)).astype(np.float32)  # below the 50 Hz band
    assert harmonic_share(x + 10 * hum, SR, f0) > 0.99
    freqs, power = band_power(x, SR)
    assert freqs[0] >= 50 and freqs[-1] <= 7000 and freqs[1] - freqs[0] < 1.0
    assert power.shape == freqs.shape


def test_undefined_cases_are_nan() -> None:
    x = tone(440.0)
    assert np.isnan(harmonic_share(x, SR, float("nan")))
    assert np.isnan(harmonic_share(x, SR, 0.0))
    assert np.isnan(harmonic_share(np.zeros(4 * SR), SR, 440.0))
    assert np.isnan(flatness(np.zeros(4 * SR), SR))
    short = tone(440.0)[:100]  # shorter than the span's start: nothing to measure
    assert np.isnan(flatness(short, SR))


def test_harmonic_mask_windows() -> None:
    f0 = 100.0
    freqs = np.array([100.0, 102.9, 103.1, 150.0, 997.0, 1004.0, 1050.0])
    assert harmonic_mask(freqs, f0).tolist() == [True, True, False, False, True, False, False]
    assert harmonic_mask(np.array([95.0]), f0, min_width=6.0).tolist() == [True]
