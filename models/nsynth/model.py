"""NSynth's WaveNet autoencoder (Engel et al. 2017) in Keras 3, ``keras.ops`` only.

Encoder: a non-causal temporal stack on the mu-law scaled waveform: an input convolution, then
residual blocks ``relu -> dilated conv -> relu -> 1x1`` (added back), a 1x1 bottleneck to
``latent_dim`` channels and average pooling over ``hop`` samples: one 16-dim vector per 512
samples (32 ms at 16 kHz).

Decoder: a WaveNet on the input shifted right by one sample (teacher forcing): a causal input
convolution, then gated layers ``tanh(f) * sigmoid(g)`` where ``[f, g]`` is a dilated causal
convolution plus a 1x1 projection of the embedding (every layer is conditioned), with residual
and skip 1x1 outputs; the skip sum goes through ``relu -> 1x1 (+ conditioned) -> relu -> 1x1`` to
256 logits over the 8-bit mu-law value of the current sample.

The embedding is upsampled by repetition (each frame conditions its ``hop`` samples), as NSynth's
``condition`` does, by reshaping rather than materialising the repeated tensor.

Pitch (``pitch_lag``, the CPU config): like the pitch-conditioned variant of Engel et al.
(section 5.3), the decoder can also be told the note's fundamental. It is given as a *pitch lag*
input, the long-term predictor of CELP speech codecs: for output ``t`` the waveform one period
back, ``x[t - P + k]`` for ``k`` in ``lag_taps`` (``P = sample_rate / f0``, fractional, linearly
interpolated), plus a voiced flag; a per-layer 1x1 projection adds it to every gated layer. A
small decoder then has to learn the timbre of one period and how it changes, not how to find the
period by itself; unpitched sounds get zeros. :func:`lag_features` computes the input, and the
fast generator computes the same from its own output history.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

FAMILY = "nsynth"


@dataclass
class NSynthConfig:
    """The architecture: every size of the model; saved with the weights (``config.json``)."""

    sample_rate: int = 16000
    hop: int = 512
    latent_dim: int = 16
    quantization: int = 256
    # encoder: non-causal, dilations 2 ** (i % enc_cycle)
    enc_channels: int = 32
    enc_layers: int = 10
    enc_cycle: int = 10
    enc_kernel: int = 3
    # decoder: causal, dilations dec_base ** (i % dec_cycle)
    dec_channels: int = 32
    skip_channels: int = 64
    dec_layers: int = 10
    dec_cycle: int = 5
    dec_kernel: int = 3
    dec_base: int = 3
    note_seconds: float = 4.0  # the length of a note the model encodes and generates
    # the decoder's pitch input (see the module docstring); taps are offsets around t - P
    pitch_lag: bool = False
    lag_taps: tuple[int, ...] = (-1, 0, 1)

    @property
    def enc_dilations(self) -> list[int]:
        return [2 ** (i % self.enc_cycle) for i in range(self.enc_layers)]

    @property
    def dec_dilations(self) -> list[int]:
        return [self.dec_base ** (i % self.dec_cycle) for i in range(self.dec_layers)]

    @property
    def lag_channels(self) -> int:
        """Width of the pitch-lag input: one value per tap plus the voiced flag."""
        return len(self.lag_taps) + 1 if self.pitch_lag else 0

    @property
    def note_samples(self) -> int:
        return int(round(self.note_seconds * self.sample_rate))


def small_config() -> NSynthConfig:
    """CPU-sized: 2 stacks of kernel-3 layers dilated 1, 3, 9, 27, 81 (receptive field 487
    samples, 30 ms) at 32 residual / 64 skip channels: few layers, so one sample is cheap; with
    the pitch-lag input, so that so small a decoder keeps the note's pitch."""
    return NSynthConfig(pitch_lag=True)


def tiny_config() -> NSynthConfig:
    """For tests only: trains in seconds."""
    return NSynthConfig(
        enc_channels=8, enc_layers=4, enc_cycle=4, dec_channels=8, skip_channels=16,
        dec_layers=4, dec_cycle=4, dec_kernel=2, dec_base=2, pitch_lag=True,
    )


def full_config() -> NSynthConfig:
    """The sizes of Engel et al. 2017 (h512_bo16): 30+30 layers, 512 residual / 256 skip."""
    return NSynthConfig(
        enc_channels=128, enc_layers=30, enc_cycle=10, enc_kernel=3,
        dec_channels=512, skip_channels=256, dec_layers=30, dec_cycle=10, dec_kernel=3,
        dec_base=2,
    )


CONFIGS = {"small": small_config, "full": full_config, "tiny": tiny_config}


@dataclass
class NSynthTraining:
    """Training settings; saved with each run in ``history.json`` (see :mod:`models.training`)."""

    crop: int = 4096  # samples per training crop, a multiple of the hop
    batch_size: int = 8
    learning_rate: float = 1e-3  # the peak of the warm-up and cosine decay


TRAINING = {
    "small": NSynthTraining(),
    "full": NSynthTraining(crop=6144, batch_size=32, learning_rate=2e-4),
    "tiny": NSynthTraining(crop=1024, batch_size=4, learning_rate=1e-2),
}


MAX_LAG_F0 = 30.0  # Hz: the lowest fundamental the pitch lag reaches back for


def lag_period(f0: float | None, sample_rate: int) -> float:
    """The pitch period in samples for ``f0`` Hz; 0.0 (unvoiced) for None, NaN or out of range."""
    if f0 is None or not np.isfinite(f0) or not MAX_LAG_F0 <= f0 <= sample_rate / 8:
        return 0.0
    return float(sample_rate / f0)


def lag_split(periods: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ceil(P) as int64, ceil(P) - P as float32)``: the sample ``t - P`` is ``frac`` of the
    way from ``t - ceil(P)`` to the next one. Integer arithmetic for the index keeps training
    and the generator's float32 loop reading the same samples."""
    per = np.asarray(periods, np.float64)
    base = np.ceil(per)
    return base.astype(np.int64), (base - per).astype(np.float32)


def lag_features(x: np.ndarray, periods: np.ndarray, taps: tuple[int, ...],
                 start: np.ndarray | int = 0, length: int | None = None) -> np.ndarray:
    """The decoder's pitch-lag input ``(batch, length, len(taps) + 1)``, float32.

    ``x (batch, n)``: whole scaled signals; output ``i`` is for sample ``t = start + i`` and holds
    ``x`` at ``t - P + k`` for each tap ``k`` (linear interpolation, zero before the signal's
    start), then 1.0 (voiced). A period of 0 (unvoiced) gives all zeros.
    """
    x = np.asarray(x, np.float32)
    b, n = x.shape
    length = n if length is None else int(length)
    per = np.asarray(periods, np.float64).reshape(b, 1)
    base, frac = lag_split(per)
    t = np.asarray(start, np.int64).reshape(-1, 1) + np.arange(length)[None, :]
    t = np.broadcast_to(t, (b, length))
    out = np.zeros((b, length, len(taps) + 1), np.float32)
    rows = np.arange(b)[:, None]
    for j, k in enumerate(taps):
        i0 = t - base + k  # x at t - P + k lies between i0 and i0 + 1, frac of the way
        a = np.where(i0 >= 0, x[rows, np.clip(i0, 0, n - 1)], 0.0)
        c = np.where(i0 + 1 >= 0, x[rows, np.clip(i0 + 1, 0, n - 1)], 0.0)
        out[:, :, j] = (1.0 - frac) * a + frac * c
    out[:, :, -1] = 1.0
    out *= (per > 0)[:, :, None]
    return out


class NSynthAutoencoder(keras.Model):
    """``call(x)``: scaled mu-law audio ``(batch, time)`` -> logits ``(batch, time, 256)``; with
    ``pitch_lag``, ``call((x, lag))`` where ``lag`` is :func:`lag_features` of ``x``."""

    def __init__(self, config: NSynthConfig, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.config = config
        c = config
        layers = keras.layers
        self.enc_in = layers.Conv1D(c.enc_channels, c.enc_kernel, padding="same", name="enc_in")
        self.enc_dil = [
            layers.Conv1D(c.enc_channels, c.enc_kernel, padding="same", dilation_rate=d,
                          name=f"enc_dil_{i}")
            for i, d in enumerate(c.enc_dilations)
        ]
        self.enc_res = [layers.Dense(c.enc_channels, name=f"enc_res_{i}")
                        for i in range(c.enc_layers)]
        self.enc_out = layers.Dense(c.latent_dim, name="enc_bottleneck")
        self.dec_in = layers.Conv1D(c.dec_channels, c.dec_kernel, padding="causal", name="dec_in")
        self.dec_dil = [
            layers.Conv1D(2 * c.dec_channels, c.dec_kernel, padding="causal", dilation_rate=d,
                          name=f"dec_dil_{i}")
            for i, d in enumerate(c.dec_dilations)
        ]
        self.dec_cond = [layers.Dense(2 * c.dec_channels, name=f"dec_cond_{i}")
                         for i in range(c.dec_layers)]
        self.dec_lag = [layers.Dense(2 * c.dec_channels, use_bias=False, name=f"dec_lag_{i}")
                        for i in range(c.dec_layers)] if c.pitch_lag else []
        # The last layer's residual output would feed nothing: it has only a skip output.
        self.dec_res = [layers.Dense(c.dec_channels, name=f"dec_res_{i}")
                        for i in range(c.dec_layers - 1)]
        self.dec_skip = [layers.Dense(c.skip_channels, name=f"dec_skip_{i}")
                         for i in range(c.dec_layers)]
        self.out1 = layers.Dense(c.skip_channels, name="out_1")
        self.out_cond = layers.Dense(c.skip_channels, name="out_cond")
        self.out2 = layers.Dense(c.quantization, name="out_logits")

    # ------------------------------------------------------------------ parts
    def encode(self, x: object) -> object:
        """Scaled audio ``(batch, time)`` -> embeddings ``(batch, time // hop, latent_dim)``."""
        c = self.config
        h = self.enc_in(ops.expand_dims(x, -1))
        for dil, res in zip(self.enc_dil, self.enc_res, strict=True):
            d = ops.relu(dil(ops.relu(h)))
            h = h + res(d)
        z = self.enc_out(h)
        frames = ops.shape(z)[1] // c.hop
        z = ops.reshape(z[:, : frames * c.hop], (-1, frames, c.hop, c.latent_dim))
        return ops.mean(z, axis=2)

    def _condition(self, h: object, cond: object) -> object:
        """Add per-frame ``cond (b, f, ch)`` to each sample of its frame in ``h (b, f*hop, ch)``."""
        hop = self.config.hop
        ch = ops.shape(h)[-1]
        frames = ops.shape(cond)[1]
        h4 = ops.reshape(h, (-1, frames, hop, ch)) + ops.expand_dims(cond, 2)
        return ops.reshape(h4, (-1, frames * hop, ch))

    def decode(self, x: object, embedding: object, lag: object = None) -> object:
        """Teacher-forced logits: output ``t`` predicts sample ``t`` from samples ``< t``
        (and, with ``pitch_lag``, from ``lag``, the :func:`lag_features` of ``x``)."""
        c = self.config
        if c.pitch_lag and lag is None:
            raise ValueError("this decoder needs its pitch-lag input")
        shifted = ops.pad(x[:, :-1], [[0, 0], [1, 0]])
        h = self.dec_in(ops.expand_dims(shifted, -1))
        skip = None
        for i in range(c.dec_layers):
            d = self._condition(self.dec_dil[i](h), self.dec_cond[i](embedding))
            if c.pitch_lag:
                d = d + self.dec_lag[i](lag)
            gated = ops.tanh(d[..., : c.dec_channels]) * ops.sigmoid(d[..., c.dec_channels:])
            s = self.dec_skip[i](gated)
            skip = s if skip is None else skip + s
            if i < c.dec_layers - 1:
                h = h + self.dec_res[i](gated)
        out = self.out1(ops.relu(skip))
        out = ops.relu(self._condition(out, self.out_cond(embedding)))
        return self.out2(out)

    def call(self, inputs: object) -> object:
        if self.config.pitch_lag:
            x, lag = inputs  # type: ignore[misc]
            return self.decode(x, self.encode(x), lag)
        return self.decode(inputs, self.encode(inputs))

    def build_for(self, samples: int | None = None) -> None:
        """Create the weights by running a zero batch once."""
        c = self.config
        n = samples or 2 * c.hop
        x = np.zeros((1, n), dtype="float32")
        self((x, np.zeros((1, n, c.lag_channels), "float32")) if c.pitch_lag else x)


def build_model(config: NSynthConfig) -> NSynthAutoencoder:
    model = NSynthAutoencoder(config, name="nsynth_autoencoder")
    model.build_for()
    return model
