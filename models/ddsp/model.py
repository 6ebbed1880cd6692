"""The DDSP autoencoder for Morph (Engel et al., DDSP, ICLR 2020) in Keras 3, ``keras.ops`` only.

NSynth's idea, with DDSP's decoder: a temporal encoder turns a sound into a timbre embedding per
frame, embeddings are mixed, a decoder turns the mix back into sound. Here the decoder does not
sample a waveform: a small network drives a harmonic-plus-noise synthesizer
(:mod:`models.ddsp.synth`), so the output is pitched and clean by construction and the model
trains on a CPU.

Frames are every ``hop`` samples (8 ms at 16 kHz). Per frame:

* **Encoder** (NSynth-style, non-causal): MFCCs 1..20 (:func:`models.ddsp.synth.frame_features`)
  -> an input convolution -> residual blocks ``relu -> dilated conv -> relu -> 1x1`` (added
  back; dilations 1, 2, 4, 8, twice) -> a 1x1 bottleneck to ``latent_dim``: ``z``. It runs on
  frames rather than on samples (as NSynth's does), which makes it a hundred times cheaper; the
  MFCCs leave the level out, and the decoder is told the pitch and the loudness on their own, so
  ``z`` is left to carry the timbre.
* **Decoder** (DDSP's RNN decoder, CPU-sized): ``f0`` (log-scaled, with a voiced flag),
  ``loudness`` (A-weighted dB, scaled) and ``z`` each through a dense layer; a GRU over the
  concatenation; two dense layers on the GRU's output and its inputs; a dense head to the
  controls: an overall amplitude, a harmonic distribution over ``n_harmonics`` (masked above the
  training Nyquist, normalised) and ``n_noise`` noise-band gains. Positive outputs go through
  DDSP's ``exp_sigmoid``.
* **Synthesis**: the harmonic and noise synthesizers (:func:`synthesize`, differentiable).

The loss is DDSP's multi-scale spectral loss: L1 between the magnitudes and between the log
magnitudes of STFTs of 1024, 512, 256, 128 and 64 samples (75 % overlap).

:mod:`models.ddsp.engine` runs the same networks in numpy for inference (no Keras import: a cold
``cadenza morph`` starts fast, and live voices run the decoder frame by frame).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from models.ddsp.config import DDSPConfig


def exp_sigmoid(x: object, max_value: float = 2.0, exponent: float = math.log(10.0),
                threshold: float = 1e-7) -> object:
    """DDSP's positive output: ``max * sigmoid(x) ** log(10) + threshold``."""
    return max_value * ops.power(ops.sigmoid(x), exponent) + threshold


class DDSPAutoencoder(keras.Model):
    """``call((mfcc, cond, f0_hz, noise))`` -> audio ``(batch, (frames - 1) * hop)``.

    ``mfcc (b, f, n_mfcc)`` scaled (:func:`scale_mfcc`), ``cond (b, f, 3)``
    (:func:`decoder_inputs`), ``f0_hz (b, f)``, ``noise (b, (f - 1) * hop, n_noise)``: the noise
    bank read at the crop (:func:`models.ddsp.synth.noise_bank`). Layers are attributes named
    ``enc_*``/``dec_*`` (no lists), so the weights file has fixed paths that
    :mod:`models.ddsp.engine` reads."""

    def __init__(self, config: DDSPConfig, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.config = c = config
        layers = keras.layers
        self.enc_in = layers.Conv1D(c.enc_channels, c.enc_kernel, padding="same", name="enc_in")
        for i, d in enumerate(c.enc_dilations):
            setattr(self, f"enc_dil_{i}", layers.Conv1D(
                c.enc_channels, c.enc_kernel, padding="same", dilation_rate=d,
                name=f"enc_dil_{i}"))
            setattr(self, f"enc_res_{i}", layers.Dense(c.enc_channels, name=f"enc_res_{i}"))
        self.enc_out = layers.Dense(c.latent_dim, name="enc_out")
        self.dec_pitch = layers.Dense(c.hidden, name="dec_pitch")
        self.dec_loud = layers.Dense(c.hidden, name="dec_loud")
        self.dec_z = layers.Dense(c.hidden, name="dec_z")
        self.dec_gru = layers.GRU(c.gru_units, return_sequences=True, name="dec_gru")
        self.dec_h1 = layers.Dense(c.hidden, name="dec_h1")
        self.dec_h2 = layers.Dense(c.hidden, name="dec_h2")
        self.dec_out = layers.Dense(c.controls, name="dec_out")

    # ------------------------------------------------------------------ parts
    def encode(self, mfcc: object) -> object:
        """Scaled MFCCs ``(b, f, n_mfcc)`` -> ``z (b, f, latent_dim)``."""
        h = self.enc_in(mfcc)
        for i in range(self.config.enc_layers):
            d = ops.relu(getattr(self, f"enc_dil_{i}")(ops.relu(h)))
            h = h + getattr(self, f"enc_res_{i}")(d)
        return self.enc_out(h)

    def controls(self, z: object, cond: object) -> tuple[object, object, object]:
        """``(amplitude (b, f), harmonic distribution (b, f, K), noise gains (b, f, B))``;
        the distribution is not yet masked by the fundamental (:meth:`synthesize` does that)."""
        c = self.config
        lrelu = ops.leaky_relu
        x = ops.concatenate([lrelu(self.dec_pitch(cond[..., :2])),
                             lrelu(self.dec_loud(cond[..., 2:3])),
                             lrelu(self.dec_z(z))], axis=-1)
        h = self.dec_gru(x)
        h = lrelu(self.dec_h1(ops.concatenate([h, x], axis=-1)))
        h = lrelu(self.dec_h2(h))
        out = self.dec_out(h)
        amp = exp_sigmoid(out[..., 0]) * cond[..., 1]  # silent harmonics when unvoiced
        harm = exp_sigmoid(out[..., 1:1 + c.n_harmonics])
        noise = exp_sigmoid(out[..., 1 + c.n_harmonics:] + c.noise_bias)
        return amp, harm, noise

    def synthesize(self, amp: object, harm: object, noise_gains: object, f0_hz: object,
                   noise: object) -> object:
        """Frame controls ``(b, f, ...)`` -> audio ``(b, (f - 1) * hop)`` (see
        :mod:`models.ddsp.synth`: the same synthesis in numpy)."""
        c = self.config
        k = ops.arange(1, c.n_harmonics + 1, dtype="float32")
        mask = ops.cast(ops.expand_dims(f0_hz, -1) * k < c.nyquist, "float32")
        harm = harm * mask
        harm = harm / (ops.sum(harm, axis=-1, keepdims=True) + 1e-7)
        amps = ops.expand_dims(amp, -1) * harm
        amps_s = _upsample(amps, c.hop)
        f0_s = _upsample(ops.expand_dims(f0_hz, -1), c.hop)[..., 0]
        omega = 2.0 * math.pi * f0_s / c.sample_rate
        phase = ops.cumsum(omega, axis=1) - omega  # the first sample at phase 0
        phase = phase - 2.0 * math.pi * ops.floor(phase / (2.0 * math.pi))
        harmonic = ops.sum(amps_s * ops.sin(ops.expand_dims(phase, -1) * k), axis=-1)
        gains = _upsample(noise_gains, c.hop)
        return harmonic + ops.sum(gains * noise, axis=-1)

    def call(self, inputs: object) -> object:
        mfcc, cond, f0_hz, noise = inputs  # type: ignore[misc]
        amp, harm, gains = self.controls(self.encode(mfcc), cond)
        return self.synthesize(amp, harm, gains, f0_hz, noise)

    def build_for(self, frames: int = 3) -> None:
        """Create the weights by running a zero batch once."""
        c = self.config
        self((np.zeros((1, frames, c.n_mfcc), "float32"), np.zeros((1, frames, 3), "float32"),
              np.zeros((1, frames), "float32"),
              np.zeros((1, (frames - 1) * c.hop, c.n_noise), "float32")))


def _upsample(x: object, hop: int) -> object:
    """Frames ``(b, f, c)`` centred on ``i * hop`` -> samples ``(b, (f - 1) * hop, c)``, linear."""
    x0 = ops.expand_dims(x[:, :-1], 2)
    x1 = ops.expand_dims(x[:, 1:], 2)
    w = ops.reshape(ops.arange(hop, dtype="float32") / hop, (1, 1, hop, 1))
    y = x0 * (1.0 - w) + x1 * w
    shape = ops.shape(x)
    return ops.reshape(y, (shape[0], (shape[1] - 1) * hop, shape[2]))


SPECTRAL_SIZES = (1024, 512, 256, 128, 64)


def spectral_loss(y_true: object, y_pred: object) -> object:
    """DDSP's multi-scale spectral loss: mean L1 of magnitudes and of log magnitudes."""
    total = 0.0
    y_true = ops.cast(y_true, "float32")
    for n in SPECTRAL_SIZES:
        mags = []
        for y in (y_true, y_pred):
            re, im = ops.stft(y, n, n // 4, n, window="hann", center=True)
            mags.append(ops.sqrt(re * re + im * im + 1e-10))
        t, p = mags
        total = total + ops.mean(ops.abs(t - p)) + ops.mean(ops.abs(ops.log(t + 1e-5)
                                                                   - ops.log(p + 1e-5)))
    return total


def build_model(config: DDSPConfig) -> DDSPAutoencoder:
    model = DDSPAutoencoder(config, name="ddsp_autoencoder")
    model.build_for()
    return model
