"""Fast WaveNet generation (Paine et al. 2016, as in NSynth's ``fastgen``): cached queues.

Each dilated layer keeps a ring buffer of its last ``(kernel - 1) * dilation`` inputs, so a new
sample costs one small matmul per layer (the dilated taps and the current input are stacked into
one ``(batch, kernel * channels) @ (kernel * channels, 2 * channels)`` product) plus one fused
residual+skip matmul, instead of re-running the whole receptive field. The embedding's
contribution to every layer is computed once per frame before the loop.

Three engines compute the same thing:

* ``"xla"`` (TensorFlow installed): the per-sample loop is a ``tf.while_loop`` compiled with XLA,
  run in chunks so that progress can be reported and a cancel honoured between chunks. This is
  the only place in ``models/`` that uses TensorFlow directly, and only when it is importable.
* ``"jax"`` (the Keras backend is JAX, as on the GPU machine): the same loop as a
  ``jax.lax.scan`` under ``jax.jit``, in the same chunks, on the backend's default device.
* ``"numpy"``: the same step in numpy with a Python loop; the backend-neutral fallback and the
  reference the tests compare against.

Both can run "forced" (the input is given, the logits come back) to check them against the
teacher-forced Keras model.

A decoder with the pitch-lag input (``config.pitch_lag``) also keeps the last ``HISTORY`` output
samples per voice and reads its lag taps from them, one period back, exactly as
:func:`models.nsynth.model.lag_features` does for training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.errors import CadenzaError, Cancelled
from models.nsynth.model import NSynthAutoencoder, NSynthConfig, lag_split
from models.nsynth.mulaw import mu_law_decode

ProgressFn = Callable[[float], None]
HISTORY = 1024  # output samples kept per voice for the pitch lag (> 16 kHz / 30 Hz + taps)
CancelFn = Callable[[], bool]


@dataclass
class StepWeights:
    """The decoder's weights rearranged for one-sample steps (all numpy float32)."""

    config: NSynthConfig
    in_kernel: np.ndarray  # (k, C): taps for x[t-(k-1)], ..., x[t]
    in_bias: np.ndarray  # (C,)
    dil_kernels: list[np.ndarray]  # (k * C, 2C) each
    cond_kernels: np.ndarray  # (L, latent, 2C)
    cond_bias: np.ndarray  # (L, 2C): conditioning bias + dilated conv bias
    rs_kernels: list[np.ndarray]  # (C, C + S) each; the last layer (C, S)
    rs_bias: list[np.ndarray]
    out1_kernel: np.ndarray  # (S, S)
    out_cond_kernel: np.ndarray  # (latent, S)
    out_cond_bias: np.ndarray  # (S,): out_cond bias + out1 bias
    out2_kernel: np.ndarray  # (S, Q)
    out2_bias: np.ndarray  # (Q,)
    lag_kernel: np.ndarray | None = None  # (lag channels, L * 2C): every layer's pitch-lag input

    @classmethod
    def from_model(cls, model: NSynthAutoencoder) -> StepWeights:
        c = model.config

        def kb(layer: object) -> tuple[np.ndarray, np.ndarray]:
            k, b = layer.get_weights()  # type: ignore[attr-defined]
            return np.asarray(k, np.float32), np.asarray(b, np.float32)

        in_k, in_b = kb(model.dec_in)
        dil, cond_k, cond_b, rs_k, rs_b = [], [], [], [], []
        for i in range(c.dec_layers):
            dk, db = kb(model.dec_dil[i])
            dil.append(dk.reshape(c.dec_kernel * c.dec_channels, 2 * c.dec_channels))
            ck, cb = kb(model.dec_cond[i])
            cond_k.append(ck)
            cond_b.append(cb + db)
            sk, sb = kb(model.dec_skip[i])
            if i < c.dec_layers - 1:
                rk, rb = kb(model.dec_res[i])
                rs_k.append(np.concatenate([rk, sk], axis=1))
                rs_b.append(np.concatenate([rb, sb]))
            else:
                rs_k.append(sk)
                rs_b.append(sb)
        o1k, o1b = kb(model.out1)
        ock, ocb = kb(model.out_cond)
        o2k, o2b = kb(model.out2)
        lag = None
        if c.pitch_lag:
            lag = np.concatenate([np.asarray(layer.get_weights()[0], np.float32)
                                  for layer in model.dec_lag], axis=1)
        return cls(
            config=c, in_kernel=in_k[:, 0, :], in_bias=in_b, dil_kernels=dil,
            cond_kernels=np.stack(cond_k), cond_bias=np.stack(cond_b),
            rs_kernels=rs_k, rs_bias=rs_b, out1_kernel=o1k, out_cond_kernel=ock,
            out_cond_bias=ocb + o1b, out2_kernel=o2k, out2_bias=o2b, lag_kernel=lag,
        )

    def conditioning(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per frame: every layer's input bias ``(F, B, L, 2C)`` and the output's ``(F, B, S)``."""
        emb = np.asarray(embeddings, np.float32)  # (B, F, latent)
        layer = np.einsum("bfz,lzc->fblc", emb, self.cond_kernels) + self.cond_bias
        out = np.einsum("bfz,zs->fbs", emb, self.out_cond_kernel) + self.out_cond_bias
        return layer.astype(np.float32), out.astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# ---------------------------------------------------------------------------- numpy engine
class _NumpyState:
    def __init__(self, w: StepWeights, batch: int) -> None:
        c = w.config
        k = c.dec_kernel
        self.in_ring = np.zeros((k - 1, batch), np.float32)
        self.rings = [np.zeros(((k - 1) * d, batch, c.dec_channels), np.float32)
                      for d in c.dec_dilations]
        self.hist = np.zeros((HISTORY, batch), np.float32)


def _numpy_lag(w: StepWeights, st: _NumpyState, t: int, periods: np.ndarray) -> np.ndarray:
    """Every layer's pitch-lag input ``(B, L, 2C)`` for sample ``t`` (history up to ``t - 1``)."""
    c = w.config
    b = periods.shape[0]
    cols = np.arange(b)
    base, frac = lag_split(periods)
    feats = np.zeros((b, c.lag_channels), np.float32)
    for j, k in enumerate(c.lag_taps):
        i0 = t - base + k
        a = np.where(i0 >= 0, st.hist[i0 % HISTORY, cols], 0.0)
        n = np.where(i0 + 1 >= 0, st.hist[(i0 + 1) % HISTORY, cols], 0.0)
        feats[:, j] = (1.0 - frac) * a + frac * n
    feats[:, -1] = 1.0
    feats *= (periods > 0)[:, None]
    return (feats @ w.lag_kernel).reshape(b, c.dec_layers, 2 * c.dec_channels)


def _numpy_step(
    w: StepWeights, st: _NumpyState, t: int, x_prev: np.ndarray, cond: np.ndarray,
    cond_out: np.ndarray, periods: np.ndarray | None = None,
) -> np.ndarray:
    """Logits ``(B, Q)`` for sample ``t`` given the sample before it, ``x_prev`` (scaled)."""
    c = w.config
    k = c.dec_kernel
    ch = c.dec_channels
    if c.pitch_lag:
        st.hist[(t - 1) % HISTORY] = x_prev
        cond = cond + _numpy_lag(w, st, t, periods)
    # the causal input convolution over the scalar input (dilation 1)
    taps = [st.in_ring[(t - (k - 1) + j) % (k - 1)] for j in range(k - 1)] if k > 1 else []
    h = np.outer(x_prev, w.in_kernel[k - 1]) + w.in_bias
    for j, tap in enumerate(taps):
        h = h + np.outer(tap, w.in_kernel[j])
    if k > 1:
        st.in_ring[t % (k - 1)] = x_prev
    skip = None
    for i, d in enumerate(c.dec_dilations):
        ring = st.rings[i]
        r = (k - 1) * d
        past = [ring[(t - (k - 1 - j) * d) % r] for j in range(k - 1)]
        z = np.concatenate([*past, h], axis=1) @ w.dil_kernels[i] + cond[:, i]
        ring[t % r] = h
        gated = np.tanh(z[:, :ch]) * _sigmoid(z[:, ch:])
        rs = gated @ w.rs_kernels[i] + w.rs_bias[i]
        if i < c.dec_layers - 1:
            h = h + rs[:, :ch]
            s = rs[:, ch:]
        else:
            s = rs
        skip = s if skip is None else skip + s
    out = np.maximum(np.maximum(skip, 0.0) @ w.out1_kernel + cond_out, 0.0)
    return out @ w.out2_kernel + w.out2_bias


def _sample(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    if temperature <= 0:
        return np.argmax(logits, axis=-1)
    g = -np.log(-np.log(rng.uniform(1e-12, 1.0, size=logits.shape)))
    return np.argmax(logits / temperature + g, axis=-1)


def numpy_forced_logits(w: StepWeights, embeddings: np.ndarray, x: np.ndarray,
                        periods: np.ndarray | None = None) -> np.ndarray:
    """Logits ``(B, T, Q)`` for a given scaled input ``x (B, T)``, one sample at a time."""
    c = w.config
    cond, cond_out = w.conditioning(embeddings)
    b, n = x.shape
    periods = _periods(c, periods, b)
    st = _NumpyState(w, b)
    out = np.zeros((b, n, c.quantization), np.float32)
    prev = np.zeros(b, np.float32)
    for t in range(n):
        f = t // c.hop
        out[:, t] = _numpy_step(w, st, t, prev, cond[f], cond_out[f], periods)
        prev = x[:, t]
    return out


def _periods(config: NSynthConfig, periods: np.ndarray | None, batch: int) -> np.ndarray:
    """Pitch periods in samples, one per voice (0 = unvoiced); checked against the batch."""
    if periods is None:
        return np.zeros(batch, np.float64)
    per = np.asarray(periods, np.float64).reshape(-1)
    if per.shape[0] == 1 and batch > 1:
        per = np.repeat(per, batch)
    if per.shape[0] != batch:
        raise CadenzaError(f"{per.shape[0]} pitch periods for {batch} voices")
    per = np.where(np.isfinite(per) & (per >= 8) & (per <= HISTORY - 8), per, 0.0)
    return per


def _lag_pairs(periods: np.ndarray) -> np.ndarray:
    """``(B, 2)`` float32 for the compiled loop: ceil(P) and ceil(P) - P per voice."""
    base, frac = lag_split(periods)
    return np.stack([base.astype(np.float32), frac], axis=1)


# ---------------------------------------------------------------------------- XLA engine
def xla_available() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def _xla_chunk_fn(w: StepWeights, forced: bool) -> object:
    """A compiled ``run(t0, n, prev, in_ring, rings, cond, cond_out, xs, seed, temp)``."""
    import tensorflow as tf

    c = w.config
    k = c.dec_kernel
    ch = c.dec_channels
    q = c.quantization
    dil = [tf.constant(x) for x in w.dil_kernels]
    rsk = [tf.constant(x) for x in w.rs_kernels]
    rsb = [tf.constant(x) for x in w.rs_bias]
    in_k = tf.constant(w.in_kernel)
    in_b = tf.constant(w.in_bias)
    o1 = tf.constant(w.out1_kernel)
    o2 = tf.constant(w.out2_kernel)
    o2b = tf.constant(w.out2_bias)
    dilations = c.dec_dilations
    hop = c.hop
    lag_k = tf.constant(w.lag_kernel) if c.pitch_lag else None
    taps = list(c.lag_taps)
    layers = c.dec_layers

    from tensorflow.compiler.tf2xla.python import xla as tfxla

    def read(ring, slot):  # noqa: ANN001, ANN202
        zero = tf.zeros_like(slot)
        return tfxla.dynamic_slice(ring, [slot, zero, zero], [1, ring.shape[1], ring.shape[2]])[0]

    def write(ring, slot, value):  # noqa: ANN001, ANN202
        zero = tf.zeros_like(slot)
        return tfxla.dynamic_update_slice(ring, value[None], [slot, zero, zero])

    def lag_bias(t, hist, lag):  # noqa: ANN001, ANN202
        """Every layer's pitch-lag input ``(B, L, 2C)``; ``hist (HISTORY, B)`` holds x < t;
        ``lag (B, 2)``: ceil(P) and ceil(P) - P per voice, 0 and 0 when unvoiced."""
        b = tf.shape(lag)[0]
        cols = tf.range(b)
        base = tf.cast(lag[:, 0], tf.int32)
        frac = lag[:, 1]
        feats = []
        for k_ in taps:
            i0 = t - base + k_

            def at(i):  # noqa: ANN001, ANN202
                v = tf.gather_nd(hist, tf.stack([tf.math.floormod(i, HISTORY), cols], axis=1))
                return tf.where(i >= 0, v, 0.0)

            feats.append((1.0 - frac) * at(i0) + frac * at(i0 + 1))
        voiced = tf.cast(base > 0, tf.float32)
        f = tf.stack([*feats, tf.ones_like(voiced)], axis=1) * voiced[:, None]
        return tf.reshape(tf.matmul(f, lag_k), (b, layers, 2 * ch))

    def step(t, prev, in_ring, rings, cond_f, cond_out_f, hist, lag):  # noqa: ANN001, ANN202
        new_rings = []
        x = prev[:, None]
        if lag_k is not None:
            hist = tf.tensor_scatter_nd_update(
                hist, [[tf.math.floormod(t - 1, HISTORY)]], prev[None])
            cond_f = cond_f + lag_bias(t, hist, lag)
        h = x * in_k[k - 1][None, :] + in_b
        if k > 1:
            for j in range(k - 1):
                slot = tf.math.floormod(t - (k - 1) + j, k - 1)
                h = h + read(in_ring, slot) * in_k[j][None, :]
            in_ring = write(in_ring, tf.math.floormod(t, k - 1), x)
        skip = None
        for i, d in enumerate(dilations):
            ring = rings[i]
            r = (k - 1) * d
            past = [read(ring, tf.math.floormod(t - (k - 1 - j) * d, r)) for j in range(k - 1)]
            z = tf.matmul(tf.concat([*past, h], axis=1), dil[i]) + cond_f[:, i]
            new_rings.append(write(ring, tf.math.floormod(t, r), h))
            gated = tf.tanh(z[:, :ch]) * tf.sigmoid(z[:, ch:])
            rs = tf.matmul(gated, rsk[i]) + rsb[i]
            if i < len(dilations) - 1:
                h = h + rs[:, :ch]
                s = rs[:, ch:]
            else:
                s = rs
            skip = s if skip is None else skip + s
        out = tf.nn.relu(tf.matmul(tf.nn.relu(skip), o1) + cond_out_f)
        logits = tf.matmul(out, o2) + o2b
        return logits, in_ring, new_rings, hist

    @tf.function(jit_compile=True)
    def run(t0, n, prev, in_ring, rings, hist, lag, cond, cond_out, xs, temp):  # noqa: ANN001, ANN202
        """``xs``: the forced inputs, or one uniform number per step and voice when sampling."""
        acc0 = tf.TensorArray(tf.float32 if forced else tf.int32, size=n)

        def body(i, prev, in_ring, rings, hist, acc):  # noqa: ANN001, ANN202
            t = t0 + i
            f = t // hop
            logits, in_ring, rings, hist = step(t, prev, in_ring, rings, tf.gather(cond, f),
                                                tf.gather(cond_out, f), hist, lag)
            if forced:
                acc = acc.write(i, logits)
                nxt = tf.gather(xs, i)
            else:
                # inverse-CDF sampling from softmax(logits / temp) with one uniform per voice
                scaled = logits / tf.maximum(temp, 1e-6)
                p = tf.exp(scaled - tf.reduce_max(scaled, axis=-1, keepdims=True))
                cdf = tf.cumsum(p, axis=-1)
                u = tf.gather(xs, i)[:, None] * cdf[:, -1:]
                sampled = tf.reduce_sum(tf.cast(cdf < u, tf.int32), axis=-1)
                greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
                code = tf.minimum(tf.where(temp > 0, sampled, greedy), q - 1)
                acc = acc.write(i, code)
                nxt = tf.cast(code, tf.float32) / ((q - 1) / 2.0) - 1.0
            return i + 1, nxt, in_ring, rings, hist, acc

        _, prev, in_ring, rings, hist, acc = tf.while_loop(
            lambda i, *_: i < n, body, (tf.constant(0), prev, in_ring, rings, hist, acc0),
            maximum_iterations=n,
        )
        return prev, in_ring, rings, hist, acc.stack()

    return run


# ---------------------------------------------------------------------------- JAX engine
def jax_available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def _jax_chunk_fn(w: StepWeights, forced: bool) -> object:
    """The XLA engine's ``run`` in JAX: the same arguments, the same results."""
    import jax
    import jax.numpy as jnp

    c = w.config
    k = c.dec_kernel
    ch = c.dec_channels
    q = c.quantization
    dil = [jnp.asarray(x) for x in w.dil_kernels]
    rsk = [jnp.asarray(x) for x in w.rs_kernels]
    rsb = [jnp.asarray(x) for x in w.rs_bias]
    in_k = jnp.asarray(w.in_kernel)
    in_b = jnp.asarray(w.in_bias)
    o1 = jnp.asarray(w.out1_kernel)
    o2 = jnp.asarray(w.out2_kernel)
    o2b = jnp.asarray(w.out2_bias)
    dilations = c.dec_dilations
    hop = c.hop
    lag_k = jnp.asarray(w.lag_kernel) if c.pitch_lag else None
    taps = list(c.lag_taps)
    layers = c.dec_layers

    def lag_bias(t, hist, lag):  # noqa: ANN001, ANN202
        b = lag.shape[0]
        cols = jnp.arange(b)
        base = lag[:, 0].astype(jnp.int32)
        frac = lag[:, 1]

        def at(i):  # noqa: ANN001, ANN202
            return jnp.where(i >= 0, hist[jnp.mod(i, HISTORY), cols], 0.0)

        feats = [(1.0 - frac) * at(t - base + k_) + frac * at(t - base + k_ + 1) for k_ in taps]
        voiced = (base > 0).astype(jnp.float32)
        f = jnp.stack([*feats, jnp.ones_like(voiced)], axis=1) * voiced[:, None]
        return (f @ lag_k).reshape(b, layers, 2 * ch)

    def step(t, prev, in_ring, rings, cond_f, cond_out_f, hist, lag):  # noqa: ANN001, ANN202
        x = prev[:, None]
        if lag_k is not None:
            hist = hist.at[jnp.mod(t - 1, HISTORY)].set(prev)
            cond_f = cond_f + lag_bias(t, hist, lag)
        h = x * in_k[k - 1][None, :] + in_b
        if k > 1:
            for j in range(k - 1):
                h = h + in_ring[jnp.mod(t - (k - 1) + j, k - 1)] * in_k[j][None, :]
            in_ring = in_ring.at[jnp.mod(t, k - 1)].set(x)
        skip = None
        new_rings = []
        for i, d in enumerate(dilations):
            ring = rings[i]
            r = (k - 1) * d
            past = [ring[jnp.mod(t - (k - 1 - j) * d, r)] for j in range(k - 1)]
            z = jnp.concatenate([*past, h], axis=1) @ dil[i] + cond_f[:, i]
            new_rings.append(ring.at[jnp.mod(t, r)].set(h))
            gated = jnp.tanh(z[:, :ch]) * jax.nn.sigmoid(z[:, ch:])
            rs = gated @ rsk[i] + rsb[i]
            if i < len(dilations) - 1:
                h = h + rs[:, :ch]
                s = rs[:, ch:]
            else:
                s = rs
            skip = s if skip is None else skip + s
        out = jax.nn.relu(jax.nn.relu(skip) @ o1 + cond_out_f)
        return out @ o2 + o2b, in_ring, new_rings, hist

    @jax.jit
    def run(t0, prev, in_ring, rings, hist, lag, cond, cond_out, xs, temp):  # noqa: ANN001, ANN202
        def body(carry, item):  # noqa: ANN001, ANN202
            prev, in_ring, rings, hist = carry
            i, x_i = item
            t = t0 + i
            f = t // hop
            logits, in_ring, rings, hist = step(t, prev, in_ring, rings, cond[f], cond_out[f],
                                                hist, lag)
            if forced:
                return (x_i, in_ring, rings, hist), logits
            scaled = logits / jnp.maximum(temp, 1e-6)
            p = jnp.exp(scaled - jnp.max(scaled, axis=-1, keepdims=True))
            cdf = jnp.cumsum(p, axis=-1)
            u = x_i[:, None] * cdf[:, -1:]
            sampled = jnp.sum(cdf < u, axis=-1).astype(jnp.int32)
            greedy = jnp.argmax(logits, axis=-1).astype(jnp.int32)
            code = jnp.minimum(jnp.where(temp > 0, sampled, greedy), q - 1)
            nxt = code.astype(jnp.float32) / ((q - 1) / 2.0) - 1.0
            return (nxt, in_ring, rings, hist), code

        steps = jnp.arange(xs.shape[0], dtype=jnp.int32)
        (prev, in_ring, rings, hist), acc = jax.lax.scan(
            body, (prev, in_ring, list(rings), hist), (steps, xs))
        return prev, in_ring, rings, hist, acc

    def call(t0, n, prev, in_ring, rings, hist, lag, cond, cond_out, xs, temp):  # noqa: ANN001, ANN202
        return run(jnp.int32(t0), prev, in_ring, rings, hist, lag, cond, cond_out,
                   xs[:n], jnp.float32(temp))

    return call


# ---------------------------------------------------------------------------- public
class FastGenerator:
    """Generates audio from embeddings with a trained decoder, batched across voices."""

    def __init__(self, model: NSynthAutoencoder, engine: str = "auto") -> None:
        self.weights = StepWeights.from_model(model)
        self.config = model.config
        if engine == "auto":
            import keras

            backend = keras.backend.backend()
            if backend == "tensorflow" and xla_available():
                engine = "xla"
            elif backend == "jax" and jax_available():
                engine = "jax"
            else:
                engine = "numpy"
        if engine not in ("xla", "jax", "numpy"):
            raise CadenzaError(f"unknown generation engine '{engine}' (xla, jax or numpy)")
        if engine == "xla" and not xla_available():
            raise CadenzaError("the xla generation engine needs TensorFlow")
        if engine == "jax" and not jax_available():
            raise CadenzaError("the jax generation engine needs JAX")
        self.engine = engine
        # The compiled loops (sampled and forced) belong to this generator and its weights:
        # built on first use, dropped with it (a Morpher keeps one generator per loaded model).
        self._compiled_fns: dict[bool, Callable[..., tuple]] = {}

    def _compiled(self, forced: bool) -> Callable[..., tuple]:
        fn = self._compiled_fns.get(forced)
        if fn is None:
            build = _jax_chunk_fn if self.engine == "jax" else _xla_chunk_fn
            fn = self._compiled_fns[forced] = build(self.weights, forced)  # type: ignore[assignment]
        return fn

    def _init_state(self, batch: int) -> tuple[np.ndarray, list[np.ndarray]]:
        c = self.config
        k = c.dec_kernel
        in_ring = np.zeros((max(k - 1, 1), batch, 1), np.float32)
        rings = [np.zeros(((k - 1) * d, batch, c.dec_channels), np.float32)
                 for d in c.dec_dilations]
        return in_ring, rings

    def forced_logits(self, embeddings: np.ndarray, x: np.ndarray,
                      periods: np.ndarray | None = None) -> np.ndarray:
        """Step-by-step logits ``(B, T, Q)`` for the given scaled input ``x (B, T)``
        (``periods``: pitch periods in samples per voice, for a pitch-lag decoder)."""
        emb = np.asarray(embeddings, np.float32)
        x = np.asarray(x, np.float32)
        if self.engine == "numpy":
            return numpy_forced_logits(self.weights, emb, x, periods)
        run = self._compiled(forced=True)
        cond, cond_out = self.weights.conditioning(emb)
        in_ring, rings = self._init_state(x.shape[0])
        lag = _lag_pairs(_periods(self.config, periods, x.shape[0]))
        hist = np.zeros((HISTORY, x.shape[0]), np.float32)
        prev = np.zeros(x.shape[0], np.float32)
        *_, logits = run(np.int32(0), x.shape[1], prev, in_ring, rings, hist, lag, cond,
                         cond_out, np.ascontiguousarray(x.T), np.float32(1.0))
        return np.transpose(np.asarray(logits), (1, 0, 2))

    def generate(
        self,
        embeddings: np.ndarray,
        samples: int | None = None,
        temperature: float = 1.0,
        seed: int = 0,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        chunk: int = 4000,
        periods: np.ndarray | None = None,
    ) -> np.ndarray:
        """Audio ``(B, samples)`` float32 at the model's rate from embeddings ``(B, F, latent)``;
        ``periods``: the pitch period in samples of each voice (0: unvoiced), for a decoder with
        the pitch-lag input.

        The compiled loop runs ``chunk`` samples per call (4 s = 16 chunks of 4000: one compile
        per batch size); ``progress(fraction)`` and ``cancel()`` are called between chunks.
        """
        c = self.config
        emb = np.asarray(embeddings, np.float32)
        if emb.ndim == 2:
            emb = emb[None]
        if emb.ndim != 3 or emb.shape[-1] != c.latent_dim or emb.shape[1] < 1:
            raise CadenzaError(
                f"embeddings must be (frames, {c.latent_dim}) or (batch, frames, {c.latent_dim})"
                f", not {emb.shape}"
            )
        if not np.all(np.isfinite(emb)):
            raise CadenzaError("the embedding has NaN or infinite values")
        total = emb.shape[1] * c.hop if samples is None else int(samples)
        total = min(total, emb.shape[1] * c.hop)
        b = emb.shape[0]
        cond, cond_out = self.weights.conditioning(emb)
        codes = np.zeros((b, total), np.int32)
        rng = np.random.default_rng(seed)
        in_ring, rings = self._init_state(b)
        per = _periods(c, periods, b)
        hist = np.zeros((HISTORY, b), np.float32)
        prev = np.zeros(b, np.float32)
        if self.engine != "numpy":
            run = self._compiled(forced=False)
        else:
            st = _NumpyState(self.weights, b)
        t = 0
        while t < total:
            if cancel is not None and cancel():
                raise Cancelled("generation cancelled")
            n = min(chunk, total - t)
            if self.engine != "numpy":
                us = rng.uniform(0.0, 1.0, size=(n, b)).astype(np.float32)
                prev, in_ring, rings, hist, out = run(
                    np.int32(t), n, prev, in_ring, rings, hist, _lag_pairs(per), cond,
                    cond_out, us, np.float32(temperature),
                )
                codes[:, t:t + n] = np.asarray(out).T
            else:
                for i in range(t, t + n):
                    f = i // c.hop
                    logits = _numpy_step(self.weights, st, i, prev, cond[f], cond_out[f], per)
                    code = _sample(logits, temperature, rng)
                    codes[:, i] = code
                    prev = (code.astype(np.float32) / ((c.quantization - 1) / 2.0) - 1.0)
            t += n
            if progress is not None:
                progress(t / total)
        return mu_law_decode(codes)
