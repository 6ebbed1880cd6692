"""The DDSP autoencoder's networks in numpy float32: inference without Keras.

A cold ``cadenza morph`` then never imports a deep-learning backend, and live voices run the
decoder one frame at a time with their own GRU state (:meth:`DDSPEngine.step`). The weights are
read with h5py from the ``model.weights.h5`` that Keras wrote for
:class:`models.ddsp.model.DDSPAutoencoder`, whose layers are named attributes (``enc_in``,
``enc_dil_0``, ..., ``dec_gru``): the file's paths are fixed. A test checks that this engine and
the Keras model give the same embeddings and controls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.ddsp.synth import (
    filtered_noise,
    harmonic_mask,
    harmonic_wavetable,
    noise_bank,
    upsample,
)
from models.errors import CadenzaError

_LOG10 = math.log(10.0)


def read_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a Keras weights file by its path (``"enc_in/vars/0"``), float32."""
    import h5py

    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(str(path), "r") as f:
            def visit(name: str, item: object) -> None:
                if isinstance(item, h5py.Dataset):
                    out[name] = np.asarray(item, np.float32)

            f.visititems(visit)
    except OSError as exc:
        raise CadenzaError(f"cannot read the model weights {path}: {exc}") from exc
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def exp_sigmoid(x: np.ndarray) -> np.ndarray:
    """DDSP's positive output (see :func:`models.ddsp.model.exp_sigmoid`)."""
    return 2.0 * np.exp(_LOG10 * np.log(np.maximum(_sigmoid(x), 1e-30))) + 1e-7


def _lrelu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, 0.2 * x)


def _mm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x (..., c_in) @ w (c_in, c_out)`` as one 2-D product (numpy's batched matmul over a
    3-D array is many times slower than BLAS on the flattened one)."""
    flat = np.ascontiguousarray(x).reshape(-1, x.shape[-1]) @ w
    return flat.reshape(*x.shape[:-1], w.shape[-1])


def _conv_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, dilation: int) -> np.ndarray:
    """Conv1D with ``padding="same"``: ``x (b, f, c_in)``, ``kernel (k, c_in, c_out)``."""
    k = kernel.shape[0]
    total = (k - 1) * dilation
    left = total // 2
    xp = np.pad(x, ((0, 0), (left, total - left), (0, 0)))
    f = x.shape[1]
    out = np.broadcast_to(bias, (x.shape[0], f, kernel.shape[2])).astype(np.float32)
    for j in range(k):
        out = out + _mm(xp[:, j * dilation:j * dilation + f], kernel[j])
    return out


@dataclass
class Controls:
    """The decoder's output per frame: overall amplitude ``(b, f)``, harmonic distribution
    ``(b, f, K)`` (unmasked) and noise-band gains ``(b, f, B)``."""

    amplitude: np.ndarray
    harmonics: np.ndarray
    noise: np.ndarray


class DDSPEngine:
    """The encoder and decoder of one model, in numpy; ``config``: its
    :class:`models.ddsp.model.DDSPConfig`."""

    def __init__(self, config: object, weights: dict[str, np.ndarray]) -> None:
        self.config = c = config  # type: ignore[assignment]
        try:
            w = weights

            def dense(name: str) -> tuple[np.ndarray, np.ndarray]:
                return w[f"{name}/vars/0"], w[f"{name}/vars/1"]

            self.enc_in = dense("enc_in")
            self.enc_dil = [dense(f"enc_dil_{i}") for i in range(c.enc_layers)]
            self.enc_res = [dense(f"enc_res_{i}") for i in range(c.enc_layers)]
            self.enc_out = dense("enc_out")
            self.dec_pitch, self.dec_loud, self.dec_z = (dense("dec_pitch"), dense("dec_loud"),
                                                         dense("dec_z"))
            self.gru_w = w["dec_gru/cell/vars/0"]
            self.gru_u = w["dec_gru/cell/vars/1"]
            self.gru_b = w["dec_gru/cell/vars/2"]
            self.dec_h1, self.dec_h2, self.dec_out = (dense("dec_h1"), dense("dec_h2"),
                                                      dense("dec_out"))
        except KeyError as exc:
            raise CadenzaError(f"the model weights lack {exc.args[0]}: they do not fit the "
                               f"config") from None
        if self.gru_u.shape != (c.gru_units, 3 * c.gru_units) or \
                self.dec_out[0].shape[1] != c.controls or self.enc_in[0].shape[1] != c.n_mfcc:
            raise CadenzaError("the model weights do not fit the config (their sizes differ)")
        self._banks: dict[int, np.ndarray] = {}

    @classmethod
    def from_file(cls, config: object, path: str | Path) -> DDSPEngine:
        return cls(config, read_weights(path))

    # ------------------------------------------------------------------ networks
    def encode(self, mfcc: np.ndarray) -> np.ndarray:
        """Scaled MFCCs ``(b, f, n_mfcc)`` -> embeddings ``(b, f, latent_dim)``."""
        x = np.asarray(mfcc, np.float32)
        h = _conv_same(x, *self.enc_in, 1)
        for (k, b), (rw, rb), d in zip(self.enc_dil, self.enc_res, self.config.enc_dilations,
                                       strict=True):
            h = h + _mm(np.maximum(_conv_same(np.maximum(h, 0), k, b, d), 0), rw) + rb
        return (_mm(h, self.enc_out[0]) + self.enc_out[1]).astype(np.float32)

    def initial_state(self, batch: int) -> np.ndarray:
        return np.zeros((batch, self.config.gru_units), np.float32)

    def controls(self, z: np.ndarray, cond: np.ndarray, state: np.ndarray | None = None
                 ) -> tuple[Controls, np.ndarray]:
        """Embeddings ``(b, f, latent)`` and decoder inputs ``(b, f, 3)``
        (:func:`models.ddsp.model.decoder_inputs`) -> the frames' :class:`Controls` and the
        GRU state after the last frame (pass it back to go on: live voices do, frame by
        frame)."""
        z = np.asarray(z, np.float32)
        cond = np.asarray(cond, np.float32)
        b, f = z.shape[0], z.shape[1]
        x = np.concatenate([
            _lrelu(_mm(cond[..., :2], self.dec_pitch[0]) + self.dec_pitch[1]),
            _lrelu(_mm(cond[..., 2:3], self.dec_loud[0]) + self.dec_loud[1]),
            _lrelu(_mm(z, self.dec_z[0]) + self.dec_z[1])], axis=-1)
        u = self.config.gru_units
        gx = _mm(x, self.gru_w) + self.gru_b[0]  # (b, f, 3u): every frame's input part at once
        h = self.initial_state(b) if state is None else np.asarray(state, np.float32)
        hs = np.empty((b, f, u), np.float32)
        for t in range(f):
            gh = h @ self.gru_u + self.gru_b[1]
            zr = _sigmoid(gx[:, t, :2 * u] + gh[:, :2 * u])
            cand = np.tanh(gx[:, t, 2 * u:] + zr[:, u:] * gh[:, 2 * u:])
            h = zr[:, :u] * h + (1.0 - zr[:, :u]) * cand
            hs[:, t] = h
        y = _lrelu(_mm(np.concatenate([hs, x], axis=-1), self.dec_h1[0]) + self.dec_h1[1])
        y = _lrelu(_mm(y, self.dec_h2[0]) + self.dec_h2[1])
        out = _mm(y, self.dec_out[0]) + self.dec_out[1]
        c = self.config
        amp = exp_sigmoid(out[..., 0]) * cond[..., 1]
        harm = exp_sigmoid(out[..., 1:1 + c.n_harmonics])
        noise = exp_sigmoid(out[..., 1 + c.n_harmonics:] + c.noise_bias)
        return Controls(amp.astype(np.float32), harm.astype(np.float32),
                        noise.astype(np.float32)), h

    # ------------------------------------------------------------------ synthesis
    def bank(self, sample_rate: int) -> np.ndarray:
        """The noise bank at ``sample_rate`` (made once per rate; bands up to the training
        Nyquist, the same in Hz at every rate)."""
        rate = int(sample_rate)
        if rate not in self._banks:
            self._banks[rate] = noise_bank(self.config.n_noise, self.config.nyquist, rate)
        return self._banks[rate]

    def harmonic_amplitudes(self, controls: Controls, f0_hz: np.ndarray) -> np.ndarray:
        """``(b, f, K)``: each harmonic's amplitude (masked above the training Nyquist and
        normalised, as in training)."""
        c = self.config
        harm = controls.harmonics * harmonic_mask(f0_hz, c.n_harmonics, c.nyquist)
        harm = harm / (harm.sum(-1, keepdims=True) + 1e-7)
        return controls.amplitude[..., None] * harm

    def synthesize(self, controls: Controls, f0_hz: np.ndarray, sample_rate: int | None = None,
                   noise_offset: int = 0) -> np.ndarray:
        """Frame controls of ``b`` voices -> audio ``(b, f * hop)`` at ``sample_rate`` (the
        model's by default): frame ``i`` is centred on sample ``i * hop`` at the model's rate."""
        c = self.config
        rate = int(sample_rate or c.sample_rate)
        hop = c.hop * rate / c.sample_rate
        f0 = np.asarray(f0_hz, np.float32).reshape(controls.amplitude.shape)
        amps = self.harmonic_amplitudes(controls, f0)
        n = int(round(f0.shape[1] * hop))
        bank = self.bank(rate)
        out = np.zeros((f0.shape[0], n), np.float32)
        for v in range(f0.shape[0]):
            sig, _ = harmonic_wavetable(upsample(f0[v], hop, n), amps[v], hop, rate)
            out[v] = sig + filtered_noise(upsample(controls.noise[v], hop, n), bank,
                                          noise_offset + v * 7919)
        return out
