"""Encoding, decoding, sampling and interpolation: the model object the app and CLI use.

Two decoders that give the same symbols for the same ``z``, temperature and seed:

* the **numpy fast path** (default): the LSTM, dense and embedding weights are read out of Keras
  once; a symbol's input contribution is a row lookup in ``table @ W`` and ``z @ W_z`` is computed
  once per sequence, so a step costs one small matmul per layer;
* the **keras.ops path** (``backend="keras"``): the same loop over the Keras layers' own cells, for
  any Keras backend (and as the reference the fast path is tested against).

Sampling draws Gumbel noise from ``numpy.random.default_rng(seed)``: symbol = argmax(logits /
temperature + noise); temperature 0 is greedy (argmax).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models import limits
from models.errors import CadenzaError
from models.music_vae.converters import Meters
from models.music_vae.model import MusicVAENet, load_model
from models.sequence import NoteSequence

Corner = NoteSequence | np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def _np(x: Any) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(x), np.float32)


class _NpLSTM:
    """One Keras LSTM layer as numpy arrays (gates i, f, c, o)."""

    def __init__(self, layer: Any) -> None:
        cell = layer.cell
        self.W = _np(cell.kernel)
        self.U = _np(cell.recurrent_kernel)
        self.b = _np(cell.bias)
        self.units = self.U.shape[0]

    def step(self, xw: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``xw``: the input's contribution ``x @ W + b`` (precomputed)."""
        g = xw + h @ self.U
        u = self.units
        i = _sigmoid(g[:, :u])
        f = _sigmoid(g[:, u:2 * u])
        cc = np.tanh(g[:, 2 * u:3 * u])
        o = _sigmoid(g[:, 3 * u:])
        c = f * c + i * cc
        return o * np.tanh(c), c

    def run(self, xw: np.ndarray, reverse: bool = False) -> np.ndarray:
        """Outputs [B, T, u] for precomputed ``xw`` [B, T, 4u], from a zero state."""
        n, steps = xw.shape[:2]
        h = np.zeros((n, self.units), np.float32)
        c = np.zeros_like(h)
        out = np.zeros((n, steps, self.units), np.float32)
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        for t in order:
            h, c = self.step(xw[:, t], h, c)
            out[:, t] = h
        return out


class NumpyVAE:
    """The encoder and decoders of a :class:`MusicVAENet` as numpy arrays (weights read once)."""

    def __init__(self, net: MusicVAENet) -> None:
        c = self.config = net.config
        self.table = net.table.astype(np.float32)
        self.encoders = [(_NpLSTM(b.forward_layer), _NpLSTM(b.backward_layer))
                         for b in net.encoders]
        self.top_encoders = [(_NpLSTM(b.forward_layer), _NpLSTM(b.backward_layer))
                             for b in net.top_encoders]
        self.mu = (_np(net.mu_dense.kernel), _np(net.mu_dense.bias))
        self.sigma = (_np(net.sigma_dense.kernel), _np(net.sigma_dense.bias))
        self.dec_init = (_np(net.dec_init.kernel), _np(net.dec_init.bias))
        self.decoders = [_NpLSTM(layer) for layer in net.decoders]
        self.out = (_np(net.out_dense.kernel), _np(net.out_dense.bias))
        depth = self.table.shape[1]
        # Layer 0's input is [symbol vector, conditioning]: split its kernel.
        w0 = self.decoders[0].W
        self.sym_w = self.table @ w0[:depth]  # [classes, 4u]
        self.cond_w = w0[depth:]
        fw0, bw0 = self.encoders[0]
        # The first encoder layer's input is a symbol vector: precompute table @ W + b.
        self.enc_sym_w = (self.table @ fw0.W + fw0.b, self.table @ bw0.W + bw0.b)
        if c.hierarchical:
            self.conductor_init = (_np(net.conductor_init.kernel), _np(net.conductor_init.bias))
            self.conductor = [_NpLSTM(layer) for layer in net.conductor]

    # ---------------------------------------------------------------- encoder
    @staticmethod
    def _bidirectional(layers: list[tuple[_NpLSTM, _NpLSTM]], h: np.ndarray | None,
                       first: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Stacked bidirectional LSTMs over ``h`` [N, T, D]: the last forward and backward
        outputs [N, 2u]. ``first``: layer 0's precomputed inputs (forward, backward)."""
        for k, (fw, bw) in enumerate(layers):
            if k == 0 and first is not None:
                xf, xb = first
            else:
                xf, xb = h @ fw.W + fw.b, h @ bw.W + bw.b
            of, ob = fw.run(xf), bw.run(xb, reverse=True)
            h = np.concatenate([of, ob], axis=-1)
        units = layers[-1][0].units
        return np.concatenate([h[:, -1, :units], h[:, 0, units:]], axis=-1)

    def encode(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        labels = np.asarray(labels, np.int64)
        n = len(labels)
        if self.top_encoders:  # each bar on its own, then the bars
            labels = labels.reshape(n * c.slice_bars, c.bar_steps)
        last = self._bidirectional(
            self.encoders, None, (self.enc_sym_w[0][labels], self.enc_sym_w[1][labels]))
        if self.top_encoders:
            last = self._bidirectional(self.top_encoders, last.reshape(n, c.slice_bars, -1))
        mu = last @ self.mu[0] + self.mu[1]
        sigma = np.logaddexp(0.0, last @ self.sigma[0] + self.sigma[1])
        return mu.astype(np.float32), sigma.astype(np.float32)

    # ---------------------------------------------------------------- decoder
    @staticmethod
    def _states(flat: np.ndarray, sizes: Sequence[int]) -> list[list[np.ndarray]]:
        out, off = [], 0
        for u in sizes:
            out.append([flat[:, off:off + u], flat[:, off + u:off + 2 * u]])
            off += 2 * u
        return out

    def _decode_flat(self, cond: np.ndarray, steps: int, temperature: float,
                     noise: np.ndarray | None) -> np.ndarray:
        n = len(cond)
        states = self._states(np.tanh(cond @ self.dec_init[0] + self.dec_init[1]),
                              self.config.dec_rnn_size)
        cond_w = cond @ self.cond_w + self.decoders[0].b
        out = np.zeros((n, steps), np.int64)
        prev = None
        wo, bo = self.out
        for t in range(steps):
            xw = cond_w if prev is None else cond_w + self.sym_w[prev]
            for k, layer in enumerate(self.decoders):
                if k > 0:
                    xw = states[k - 1][0] @ layer.W + layer.b
                states[k][0], states[k][1] = layer.step(xw, states[k][0], states[k][1])
            logits = states[-1][0] @ wo + bo
            prev = _choose(logits, temperature, None if noise is None else noise[:, t])
            out[:, t] = prev
        return out

    def conduct(self, z: np.ndarray) -> np.ndarray:
        c = self.config
        states = self._states(np.tanh(z @ self.conductor_init[0] + self.conductor_init[1]),
                              c.conductor_rnn_size)
        embs = []
        for _ in range(c.slice_bars):
            xw = np.broadcast_to(self.conductor[0].b, (len(z), self.conductor[0].b.size))
            for k, layer in enumerate(self.conductor):
                if k > 0:
                    xw = states[k - 1][0] @ layer.W + layer.b
                states[k][0], states[k][1] = layer.step(xw, states[k][0], states[k][1])
            embs.append(states[-1][0])
        return np.stack(embs, axis=1)

    def decode(self, z: np.ndarray, temperature: float = 0.0,
               noise: np.ndarray | None = None) -> np.ndarray:
        c = self.config
        z = np.asarray(z, np.float32)
        if not c.hierarchical:
            return self._decode_flat(z, c.num_steps, temperature, noise)
        emb = self.conduct(z).reshape(-1, c.conductor_rnn_size[-1])
        bar_noise = None if noise is None else noise.reshape(-1, c.bar_steps, noise.shape[-1])
        out = self._decode_flat(emb, c.bar_steps, temperature, bar_noise)
        return out.reshape(len(z), c.num_steps)


def _choose(logits: np.ndarray, temperature: float, noise: np.ndarray | None) -> np.ndarray:
    if temperature <= 0 or noise is None:
        return np.argmax(logits, axis=-1)
    return np.argmax(logits / temperature + noise, axis=-1)


class KerasDecoder:
    """The same decoding loop with ``keras.ops`` over the Keras layers (any backend)."""

    def __init__(self, net: MusicVAENet) -> None:
        self.net = net
        self.config = net.config

    def _states(self, flat: Any, sizes: Sequence[int]) -> list[list[Any]]:
        out, off = [], 0
        for u in sizes:
            out.append([flat[:, off:off + u], flat[:, off + u:off + 2 * u]])
            off += 2 * u
        return out

    def _decode_flat(self, cond: Any, steps: int, temperature: float,
                     noise: np.ndarray | None) -> np.ndarray:
        from keras import ops

        net = self.net
        n = int(cond.shape[0])
        table = ops.convert_to_tensor(net.table)
        states = self._states(net.dec_init(cond), self.config.dec_rnn_size)
        prev_vec = ops.zeros((n, net.input_depth))
        out = np.zeros((n, steps), np.int64)
        for t in range(steps):
            x = ops.concatenate([prev_vec, cond], axis=-1)
            for k, layer in enumerate(net.decoders):
                x, new = layer.cell(x, states[k])
                states[k] = list(new)
            logits = _np(net.out_dense(x))
            sym = _choose(logits, temperature, None if noise is None else noise[:, t])
            out[:, t] = sym
            prev_vec = ops.take(table, ops.convert_to_tensor(sym.astype(np.int32)), axis=0)
        return out

    def decode(self, z: np.ndarray, temperature: float = 0.0,
               noise: np.ndarray | None = None) -> np.ndarray:
        from keras import ops

        c, net = self.config, self.net
        zt = ops.convert_to_tensor(np.asarray(z, np.float32))
        if not c.hierarchical:
            return self._decode_flat(zt, c.num_steps, temperature, noise)
        states = self._states(net.conductor_init(zt), c.conductor_rnn_size)
        embs = []
        x0 = ops.zeros((int(zt.shape[0]), 1))
        for _ in range(c.slice_bars):
            x = x0
            for k, layer in enumerate(net.conductor):
                x, new = layer.cell(x, states[k])
                states[k] = list(new)
            embs.append(x)
        emb = ops.reshape(ops.stack(embs, axis=1), (-1, c.conductor_rnn_size[-1]))
        bar_noise = None if noise is None else noise.reshape(-1, c.bar_steps, noise.shape[-1])
        out = self._decode_flat(emb, c.bar_steps, temperature, bar_noise)
        return out.reshape(len(z), c.num_steps)


# -------------------------------------------------------------------------------- latent maths
def slerp(p0: np.ndarray, p1: np.ndarray, t: float) -> np.ndarray:
    """Magenta's spherical interpolation (linear when the two are parallel)."""
    n0, n1 = np.linalg.norm(p0), np.linalg.norm(p1)
    if n0 == 0 or n1 == 0:
        return (1 - t) * p0 + t * p1
    omega = np.arccos(np.clip(np.dot(p0 / n0, p1 / n1), -1.0, 1.0))
    so = np.sin(omega)
    if so < 1e-6:
        return (1 - t) * p0 + t * p1
    return np.sin((1.0 - t) * omega) / so * p0 + np.sin(t * omega) / so * p1


def bilinear(corners: np.ndarray, x: float, y: float) -> np.ndarray:
    """``corners`` [4, z] in the order (x=0,y=0), (1,0), (0,1), (1,1)."""
    a, b, c, d = corners
    return ((1 - x) * (1 - y) * a + x * (1 - y) * b + (1 - x) * y * c + x * y * d).astype(
        np.float32)


# -------------------------------------------------------------------------------- the model
class MusicVAE:
    """A trained MusicVAE: what the Interpolate workspace and the CLI call.

    Sequences in and out are :class:`NoteSequence`; melodies come out as one instrument, drums
    as ``is_drum`` notes on channel 10. Every decode is greedy unless a temperature > 0 is given.
    The registry's façade for the "music_vae" family (``name``, ``family``, ``path``, ``config``,
    ``close()``).
    """

    family = "music_vae"

    def __init__(self, net: MusicVAENet, name: str = "", path: Path | None = None) -> None:
        self.net = net
        self.config = net.config
        self.name = name or net.config.name
        self.path = path
        self.converter = net.config.converter()
        self.fast = NumpyVAE(net)
        self._keras_decoder: KerasDecoder | None = None

    # ---------------------------------------------------------------- properties
    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def num_steps(self) -> int:
        return self.config.num_steps

    @property
    def z_size(self) -> int:
        return self.config.z_size

    def close(self) -> None:
        """Nothing to release (the weights go with the object)."""

    def window_seconds(self, qpm: float = 120.0) -> float:
        return self.num_steps * 60.0 / qpm / self.converter.steps_per_quarter

    # ---------------------------------------------------------------- sequences <-> labels
    def labels_for(self, seq: NoteSequence) -> np.ndarray:
        """The first window of ``seq`` as class indices (a shorter line is padded with rests).

        Any metre; from a polyphonic clip its melody track or top voice, from a drum clip its
        drums (:mod:`models.music_vae.inputs`). Raises a one-line CadenzaError saying why when
        ``seq`` gives nothing to this model.
        """
        from models.music_vae.inputs import clip_windows

        return clip_windows(seq, self.converter, seq.name or "the input")[0]

    def to_labels(self, seqs: Sequence[NoteSequence] | np.ndarray) -> np.ndarray:
        if isinstance(seqs, np.ndarray):
            return np.asarray(seqs, np.int64).reshape(-1, self.num_steps)
        return np.stack([self.labels_for(s) for s in seqs])

    def meters_of(self, seq: NoteSequence) -> Meters:
        """The time signatures of ``seq`` over the window this model reads of it, as ``(step,
        numerator, denominator)``: what its reconstruction (or a step from it) is marked with,
        metre changes in their places."""
        from models.music_vae.inputs import clip_meters

        return clip_meters(seq, self.converter, seq.name or "the input")

    def to_sequences(self, labels: np.ndarray, qpm: float = 120.0,
                     time_signature: tuple[int, int] | Meters = (4, 4)
                     ) -> list[NoteSequence]:
        return [self.converter.to_sequence(row, qpm=qpm, time_signature=time_signature)
                for row in np.asarray(labels)]

    # ---------------------------------------------------------------- core
    def encode(self, seqs: Sequence[NoteSequence] | NoteSequence | np.ndarray,
               backend: str = "numpy") -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma), each [N, z], of NoteSequences (or label windows [N, steps])."""
        if isinstance(seqs, NoteSequence):
            seqs = [seqs]
        labels = self.to_labels(seqs)
        if backend == "keras":
            return self.net.encode(labels)
        return self.fast.encode(labels)

    def decode_labels(self, z: np.ndarray, temperature: float = 0.0, seed: int | None = None,
                      backend: str = "numpy") -> np.ndarray:
        z = np.atleast_2d(np.asarray(z, np.float32))
        if z.shape[1] != self.z_size:
            raise CadenzaError(f"z has {z.shape[1]} dimensions; this model uses {self.z_size}")
        noise = None
        if temperature > 0:
            rng = np.random.default_rng(seed)
            noise = rng.gumbel(size=(len(z), self.num_steps, self.config.num_classes)).astype(
                np.float32)
        if backend == "keras":
            if self._keras_decoder is None:
                self._keras_decoder = KerasDecoder(self.net)
            return self._keras_decoder.decode(z, temperature, noise)
        return self.fast.decode(z, temperature, noise)

    def decode(self, z: np.ndarray, temperature: float = 0.0, seed: int | None = None,
               qpm: float = 120.0, backend: str = "numpy",
               time_signature: tuple[int, int] | Meters = (4, 4)) -> list[NoteSequence]:
        """NoteSequences decoded from ``z`` [N, z] (greedy when temperature is 0), marked with
        ``time_signature`` (the sixteenth-note steps are the same in every metre): one
        ``(numerator, denominator)`` or metres with their steps (:meth:`meters_of`)."""
        limits.temperature(temperature, "temperature", zero=True)
        if seed is not None:
            limits.integer(seed, "the seed", 0, 2 * limits.SEED_MAX)
        if not np.isfinite(np.asarray(z, np.float64)).all():
            raise CadenzaError("the latent vectors are NaN or infinite: the model's weights or "
                               "its input are broken")
        return self.to_sequences(self.decode_labels(z, temperature, seed, backend), qpm,
                                 time_signature)

    def sample(self, n: int, temperature: float = 0.5, seed: int | None = None,
               qpm: float = 120.0, backend: str = "numpy") -> list[NoteSequence]:
        """``n`` new sequences from z ~ N(0, I)."""
        if n < 1:
            raise CadenzaError("the number of samples must be at least 1")
        limits.integer(n, "the number of samples", 1, limits.MAX_SAMPLES)
        rng = np.random.default_rng(limits.seed(seed, "the seed"))
        z = rng.standard_normal((n, self.z_size)).astype(np.float32)
        noise_seed = None if seed is None else seed + 1
        return self.decode(z, temperature, noise_seed, qpm, backend)

    # ---------------------------------------------------------------- latent walks
    def latents(self, items: Sequence[Corner], backend: str = "numpy") -> np.ndarray:
        """Posterior means of sequences; z vectors pass through."""
        zs = []
        seqs = [(i, s) for i, s in enumerate(items) if isinstance(s, NoteSequence)]
        mus = (self.encode([s for _, s in seqs], backend)[0] if seqs
               else np.zeros((0, self.z_size)))
        by_index = {i: mus[k] for k, (i, _) in enumerate(seqs)}
        for i, item in enumerate(items):
            if i in by_index:
                zs.append(by_index[i])
            else:
                arr = np.asarray(item, np.float32).reshape(-1)
                if arr.size != self.z_size:
                    raise CadenzaError(f"a corner z has {arr.size} dimensions, not {self.z_size}")
                zs.append(arr)
        return np.stack(zs).astype(np.float32)

    def interpolation_latents(self, z_a: np.ndarray, z_b: np.ndarray, steps: int,
                              method: str = "slerp") -> np.ndarray:
        if steps < 2:
            raise CadenzaError("an interpolation needs at least 2 steps")
        limits.integer(steps, "interpolation steps", 2, limits.MAX_INTERPOLATION_STEPS)
        if method not in ("slerp", "lerp"):
            raise CadenzaError(f"unknown interpolation method '{method}' (slerp or lerp)")
        ts = np.linspace(0.0, 1.0, steps)
        if method == "slerp":
            return np.stack([slerp(z_a, z_b, t) for t in ts]).astype(np.float32)
        return np.stack([(1 - t) * z_a + t * z_b for t in ts]).astype(np.float32)

    def interpolate(self, seq_a: NoteSequence, seq_b: NoteSequence, steps: int = 11,
                    method: str = "slerp", temperature: float = 0.0, seed: int | None = None,
                    qpm: float | None = None, backend: str = "numpy") -> list[NoteSequence]:
        """``steps`` sequences from A to B; the first and last reconstruct A and B. They keep
        A's tempo (unless ``qpm`` is given) and time signatures (changes of metre included)."""
        z = self.latents([seq_a, seq_b], backend)
        zs = self.interpolation_latents(z[0], z[1], steps, method)
        return self.decode(zs, temperature, seed, qpm or seq_a.qpm, backend,
                           self.meters_of(seq_a))

    def blend4(self, corners: Sequence[Corner], x: float, y: float, temperature: float = 0.0,
               seed: int | None = None, qpm: float = 120.0,
               time_signature: tuple[int, int] | Meters | None = None) -> NoteSequence:
        """Bilinear blend of four corners (sequences or z's) ordered top-left, top-right,
        bottom-left, bottom-right; (x, y) in [0, 1]^2, (0, 0) is the first corner. Marked with
        ``time_signature``, by default the metres of the first corner that is a sequence."""
        if len(corners) != 4:
            raise CadenzaError("blend4 needs exactly four corners")
        z = bilinear(self.latents(corners), float(x), float(y))
        if time_signature is None:
            time_signature = next((self.meters_of(c) for c in corners
                                   if isinstance(c, NoteSequence)), (4, 4))
        return self.decode(z[None], temperature, seed, qpm, time_signature=time_signature)[0]

    def grid(self, corners: Sequence[Corner], n: int, temperature: float = 0.0,
             seed: int | None = None, qpm: float = 120.0) -> list[list[NoteSequence]]:
        """An n x n pad: ``grid[row][col]`` blends at x = col/(n-1), y = row/(n-1)."""
        if n < 2:
            raise CadenzaError("a grid needs n >= 2")
        if len(corners) != 4:
            raise CadenzaError("grid needs exactly four corners")
        zc = self.latents(corners)
        ts = np.linspace(0.0, 1.0, n)
        zs = np.stack([bilinear(zc, x, y) for y in ts for x in ts])
        seqs = self.decode(zs, temperature, seed, qpm)
        return [seqs[r * n:(r + 1) * n] for r in range(n)]


def load(directory: str | Path, name: str | None = None) -> MusicVAE:
    path = Path(directory)
    return MusicVAE(load_model(path), name or path.name, path)
