"""A small Music Transformer for performance events (Huang et al. 2019), ``keras.ops`` only.

The same inputs and outputs as the LSTM (:mod:`model`): events [B, T], controls [B, T, 21] and,
when ``note_features > 0``, the note state [B, T, 256]; logits [B, T, 388] with note-offs only
for sounding pitches. Inside: the sum of an event embedding and projections of the controls and
the note state, then ``layers`` pre-norm decoder blocks of causal self-attention with *relative
position* logits and a ReLU feed-forward layer, a final layer norm, and the logits read off the
event embedding (tied) plus a bias.

Relative attention adds ``q_i . E[d]`` to the logit of query ``i`` and key ``j``, where ``d = i -
j`` is their distance and ``E`` a learned table of ``max_len`` rows per head (distance
``max_len - 1`` in row 0, distance 0 in the last row). Huang et al.'s "skewing" computes it for a
whole window from ``Q E^T`` with one pad and one reshape, in O(T d) memory instead of O(T^2 d).
Relative positions also make generation simple: the key/value cache can slide (forget its oldest
half) without recomputing anything, since no key knows its absolute position.

:class:`TransformerEngine` is the numpy generation engine (one event per row per step, a
key/value cache per layer), with the interface of the LSTM's engines in :mod:`generate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.performance_rnn import encoding as enc
from models.performance_rnn import notes as notes_lib
from models.performance_rnn.notes import network_inputs

LN_EPSILON = 1e-5


@dataclass(frozen=True)
class TransformerShape:
    """The architecture fields a transformer is built from."""

    d_model: int = 256
    layers: int = 4
    heads: int = 4
    d_ff: int = 1024
    max_len: int = 512  # the widest distance attention sees (the training window)
    dropout: float = 0.0
    note_features: int = 0  # > 0: the note state is an input (projected to d_model)
    num_classes: int = enc.NUM_CLASSES
    control_size: int = enc.CONTROL_SIZE

    @property
    def head_size(self) -> int:
        return self.d_model // self.heads


def shape_of(config: Any, dropout: float = 0.0) -> TransformerShape:
    """The shape of a transformer :class:`~models.performance_rnn.model.PerformanceConfig`."""
    width = int(config.layers[0])
    return TransformerShape(d_model=width, layers=len(config.layers), heads=config.heads,
                            d_ff=config.d_ff or 4 * width, max_len=config.max_len,
                            dropout=dropout, note_features=config.note_features,
                            num_classes=config.num_classes, control_size=config.control_size)


def _layers() -> Any:
    """The Keras layer classes of this module (built on first use: no Keras import at load)."""
    import keras
    from keras import ops

    class RelativeAttention(keras.layers.Layer):
        """Causal multi-head self-attention with relative position logits (skewed)."""

        def __init__(self, d_model: int, heads: int, max_len: int, dropout: float = 0.0,
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.d_model, self.heads, self.max_len = d_model, heads, max_len
            self.head_size = d_model // heads
            self.qkv = keras.layers.Dense(3 * d_model, name="qkv")
            self.out = keras.layers.Dense(d_model, name="out")
            self.drop = keras.layers.Dropout(dropout)

        def build(self, input_shape: Any) -> None:
            self.qkv.build(input_shape)
            self.out.build((*input_shape[:-1], self.d_model))
            self.relative = self.add_weight(
                name="relative", shape=(self.heads, self.max_len, self.head_size),
                initializer=keras.initializers.RandomNormal(stddev=self.head_size ** -0.5))

        def call(self, x: Any, training: bool = False) -> Any:
            b, t = ops.shape(x)[0], ops.shape(x)[1]
            h, dh = self.heads, self.head_size
            qkv = ops.reshape(self.qkv(x), (b, t, 3, h, dh))
            qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # [3, B, H, T, dh]
            q, k, v = qkv[0], qkv[1], qkv[2]
            content = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))  # [B, H, T, T]
            table = self.relative[:, self.max_len - t:, :]  # [H, T, dh]: distance T-1 .. 0
            rel = ops.einsum("bhtd,hld->bhtl", q, table)  # [B, H, T, T(distance rows)]
            # skew: rel[i, T-1-(i-j)] -> position (i, j)
            rel = ops.pad(rel, ((0, 0), (0, 0), (0, 0), (1, 0)))
            rel = ops.reshape(rel, (b, h, t + 1, t))[:, :, 1:, :]
            logits = (content + rel) * (dh ** -0.5)
            rows = ops.arange(t)
            causal = ops.expand_dims(rows, 1) >= ops.expand_dims(rows, 0)
            logits = ops.where(causal, logits, -1e9)
            weights = self.drop(ops.softmax(logits, axis=-1), training=training)
            mixed = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))  # [B, T, H, dh]
            return self.out(ops.reshape(mixed, (b, t, self.d_model)))

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

    class Block(keras.layers.Layer):
        def __init__(self, shape: TransformerShape, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.norm1 = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="norm1")
            self.attention = RelativeAttention(shape.d_model, shape.heads, shape.max_len,
                                               shape.dropout, name="attention")
            self.norm2 = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="norm2")
            self.ff1 = keras.layers.Dense(shape.d_ff, activation="relu", name="ff1")
            self.ff2 = keras.layers.Dense(shape.d_model, name="ff2")
            self.drop = keras.layers.Dropout(shape.dropout)
            self.d_model, self.d_ff = shape.d_model, shape.d_ff

        def build(self, input_shape: Any) -> None:
            for layer in (self.norm1, self.attention, self.norm2):
                layer.build(input_shape)
            self.ff1.build(input_shape)
            self.ff2.build((*input_shape[:-1], self.d_ff))

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def call(self, x: Any, training: bool = False) -> Any:
            x = x + self.drop(self.attention(self.norm1(x), training=training),
                              training=training)
            return x + self.drop(self.ff2(self.ff1(self.norm2(x))), training=training)

    class TiedLogits(keras.layers.Layer):
        """Logits read off the event embedding, plus a bias."""

        def __init__(self, embedding: Any, num_classes: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.embedding = embedding
            self.num_classes = num_classes

        def build(self, input_shape: Any) -> None:
            self.bias = self.add_weight(name="bias", shape=(self.num_classes,),
                                        initializer="zeros")

        def call(self, x: Any) -> Any:
            return ops.matmul(x, ops.transpose(self.embedding.embeddings)) + self.bias

    return RelativeAttention, Block, TiedLogits


class PerformanceTransformer:
    """The Keras layers and ``keras_model`` (events, controls[, notes]) -> logits [B, T, 388]."""

    def __init__(self, shape: TransformerShape, config: Any = None) -> None:
        import keras
        from keras import ops

        _, block_cls, tied_cls = _layers()
        self.shape = shape
        self.config = config if config is not None else shape
        d = shape.d_model
        self.embedding = keras.layers.Embedding(shape.num_classes, d, name="event_embedding")
        self.control_proj = keras.layers.Dense(d, use_bias=False, name="control_projection")
        self.note_proj = (keras.layers.Dense(d, use_bias=False, name="note_projection")
                          if shape.note_features > 0 else None)
        self.blocks = [block_cls(shape, name=f"block_{i}") for i in range(shape.layers)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="final_norm")
        self.to_logits = tied_cls(self.embedding, shape.num_classes, name="logits")

        events = keras.Input((None,), dtype="int32", name="events")
        controls = keras.Input((None, shape.control_size), dtype="float32", name="controls")
        inputs = [events, controls]
        x = self.embedding(events) + self.control_proj(controls)
        note_in = None
        if self.note_proj is not None:
            note_in = keras.Input((None, notes_lib.NOTE_FEATURE_SIZE), dtype="float32",
                                  name="notes")
            inputs.append(note_in)
            x = x + self.note_proj(note_in)
        for block in self.blocks:
            x = block(x)
        logits = self.to_logits(self.final_norm(x))
        if note_in is not None:
            sounding = note_in[..., :notes_lib.NUM_PITCHES] > 0.5
            offs = ops.where(sounding, logits[..., enc.NOTE_OFF:enc.TIME_SHIFT],
                             notes_lib.MASKED_LOGIT)
            logits = ops.concatenate(
                [logits[..., :enc.NOTE_OFF], offs, logits[..., enc.TIME_SHIFT:]], axis=-1)
        self.keras_model = keras.Model(inputs, logits, name="performance_transformer")

    @property
    def uses_notes(self) -> bool:
        return self.note_proj is not None

    def inputs(self, events: np.ndarray, controls: np.ndarray,
               notes: np.ndarray | None = None) -> list[np.ndarray]:
        return network_inputs(events, controls, notes, self.uses_notes)

    def logits(self, events: np.ndarray, controls: np.ndarray,
               notes: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self.keras_model.predict_on_batch(self.inputs(events, controls, notes)))

    def count_params(self) -> int:
        return int(self.keras_model.count_params())

    def numpy_weights(self) -> dict[str, Any]:
        """Every weight as float32 numpy, for :class:`TransformerEngine`."""
        from keras import ops

        def arr(w: Any) -> np.ndarray:
            return np.asarray(ops.convert_to_numpy(w), np.float32)

        out: dict[str, Any] = {
            "embedding": arr(self.embedding.embeddings),
            "control": arr(self.control_proj.kernel),
            "note": None if self.note_proj is None else arr(self.note_proj.kernel),
            "final_norm": (arr(self.final_norm.gamma), arr(self.final_norm.beta)),
            "logits_bias": arr(self.to_logits.bias),
            "blocks": [],
        }
        for block in self.blocks:
            att = block.attention
            out["blocks"].append({
                "norm1": (arr(block.norm1.gamma), arr(block.norm1.beta)),
                "qkv": (arr(att.qkv.kernel), arr(att.qkv.bias)),
                "relative": arr(att.relative),
                "out": (arr(att.out.kernel), arr(att.out.bias)),
                "norm2": (arr(block.norm2.gamma), arr(block.norm2.beta)),
                "ff1": (arr(block.ff1.kernel), arr(block.ff1.bias)),
                "ff2": (arr(block.ff2.kernel), arr(block.ff2.bias)),
            })
        return out


def _norm(x: np.ndarray) -> np.ndarray:
    """Layer normalisation without gain and shift (the engine folds those into weights); the
    ufuncs' own reductions, as ``mean`` costs as much again in Python for one row."""
    scale = 1.0 / x.shape[-1]
    centred = x - np.add.reduce(x, axis=-1, keepdims=True) * scale
    var = np.add.reduce(centred * centred, axis=-1, keepdims=True)
    var *= scale
    var += LN_EPSILON
    centred /= np.sqrt(var, out=var)
    return centred


class _Cache:
    """Keys (transposed) and values of one batch, every layer: [L, B, H, dh, W] and
    [L, B, H, W, dh], with ``length`` filled columns (the same for every row)."""

    def __init__(self, layers: int, batch: int, heads: int, dh: int, width: int) -> None:
        self.keys = np.zeros((layers, batch, heads, dh, width), np.float32)
        self.values = np.zeros((layers, batch, heads, width, dh), np.float32)
        self.length = 0

    def copy_rows(self, rows: np.ndarray) -> _Cache:
        out = _Cache.__new__(_Cache)
        out.keys = self.keys[:, rows].copy()
        out.values = self.values[:, rows].copy()
        out.length = self.length
        return out


class TransformerEngine:
    """Generation in numpy with a key/value cache per layer.

    State (a list, like the LSTM engines'): ``[cache]`` and, for a model that reads the note
    state, a :class:`notes.NoteTracker` pair after it. When the cache is full (``max_len``
    keys), its older half is dropped: relative positions need no recomputation.
    """

    name = "numpy"

    def __init__(self, model: PerformanceTransformer) -> None:
        self.shape = model.shape
        w = model.numpy_weights()
        self.num_classes = self.shape.num_classes
        self.heads = self.shape.heads
        self.dh = self.shape.head_size
        self.width = self.shape.max_len
        self.embed = w["embedding"]
        self.control_kernel = w["control"]
        self.note_kernel = w["note"]
        d = self.shape.d_model
        scale = np.ones(3 * d, np.float32)
        scale[:d] = self.dh ** -0.5  # the attention scale, folded into the queries
        # Each layer norm's gain and shift are folded into the product that follows it, so a
        # step only centres and scales: (n * g + b) @ W + c = n @ (g W) + (b W + c).
        self.blocks = []
        for blk in w["blocks"]:
            g1, b1 = blk["norm1"]
            g2, b2 = blk["norm2"]
            qkv_k, qkv_b = blk["qkv"]
            ff1_k, ff1_b = blk["ff1"]
            self.blocks.append({
                "qkv": (np.ascontiguousarray(g1[:, None] * qkv_k * scale),
                        ((b1 @ qkv_k + qkv_b) * scale).astype(np.float32)),
                "out": blk["out"],
                "ff1": (np.ascontiguousarray(g2[:, None] * ff1_k),
                        (b2 @ ff1_k + ff1_b).astype(np.float32)),
                "ff2": blk["ff2"],
                # [H, dh, W]: q [B, H, 1, dh] @ table -> [B, H, 1, W]
                "relative": np.ascontiguousarray(np.transpose(blk["relative"], (0, 2, 1))),
            })
        gf, bf = w["final_norm"]
        self.out_kernel = np.ascontiguousarray(gf[:, None] * self.embed.T)
        self.out_bias = (bf @ self.embed.T + w["logits_bias"]).astype(np.float32)

    # ---------------------------------------------------------------- state
    def zero_state(self, batch: int) -> list:
        s = self.shape
        state: list = [_Cache(s.layers, batch, s.heads, self.dh, self.width)]
        if self.note_kernel is not None:
            state.append(notes_lib.NoteTracker.from_state(notes_lib.NoteState(), batch))
        return state

    def first_bias(self, controls: np.ndarray) -> np.ndarray:
        """[B, d] input term of the controls."""
        return (np.atleast_2d(controls).astype(np.float32) @ self.control_kernel
                ).astype(np.float32)

    def tile(self, state: list, reps: int) -> list:
        rows = np.repeat(np.arange(state[0].keys.shape[1]), reps)
        return self.select(state, rows)

    def select(self, state: list, rows: np.ndarray) -> list:
        out: list = [state[0].copy_rows(np.asarray(rows))]
        if len(state) > 1:
            onsets, counts = state[1]
            out.append((onsets[rows].copy(), counts[rows].copy()))
        return out

    def _make_room(self, cache: _Cache, needed: int) -> None:
        if cache.length + needed <= self.width:
            return
        keep = max(0, min(cache.length, self.width // 2 - needed))
        if keep:
            cache.keys[..., :keep] = cache.keys[..., cache.length - keep:cache.length]
            cache.values[..., :keep, :] = cache.values[..., cache.length - keep:cache.length, :]
        cache.length = keep

    # ---------------------------------------------------------------- one step
    def step(self, events: np.ndarray, state: list, bias0: np.ndarray) -> np.ndarray:
        """Advance every row by one event (in place on ``state``); logits [B, 388]."""
        ev = np.asarray(events, np.int64).reshape(-1)
        b = ev.shape[0]
        feats = None
        x = self.embed[ev] + bias0
        if self.note_kernel is not None:
            feats = notes_lib.NoteTracker.update(state[1], ev)
            cols = np.flatnonzero(feats.any(axis=0))
            if cols.size:
                x = x + feats[:, cols] @ self.note_kernel[cols]
        cache: _Cache = state[0]
        self._make_room(cache, 1)
        n = cache.length + 1
        h, dh = self.heads, self.dh
        for i, blk in enumerate(self.blocks):
            qkv = _norm(x) @ blk["qkv"][0]
            qkv += blk["qkv"][1]  # [B, 3d]
            q = qkv[:, :h * dh].reshape(b, h, 1, dh)
            cache.keys[i, :, :, :, n - 1] = qkv[:, h * dh:2 * h * dh].reshape(b, h, dh)
            cache.values[i, :, :, n - 1, :] = qkv[:, 2 * h * dh:].reshape(b, h, dh)
            logits = q @ cache.keys[i, :, :, :, :n]  # [B, H, 1, n]
            logits += q @ blk["relative"][:, :, self.width - n:]
            logits -= np.maximum.reduce(logits, axis=-1, keepdims=True)
            np.exp(logits, out=logits)
            logits /= np.add.reduce(logits, axis=-1, keepdims=True)
            mixed = (logits @ cache.values[i, :, :, :n, :]).reshape(b, h * dh)
            x += mixed @ blk["out"][0]
            x += blk["out"][1]
            hidden = _norm(x) @ blk["ff1"][0]
            hidden += blk["ff1"][1]
            np.maximum(hidden, 0.0, out=hidden)
            x += hidden @ blk["ff2"][0]
            x += blk["ff2"][1]
        cache.length = n
        out = _norm(x) @ self.out_kernel
        out += self.out_bias
        if feats is not None:
            notes_lib.mask_note_offs(out, feats[:, :notes_lib.NUM_PITCHES] > 0)
        return out

    # ---------------------------------------------------------------- primer
    def prime(self, events: np.ndarray, controls: np.ndarray, initial: list | None = None
              ) -> tuple[list, np.ndarray]:
        """Read a [T] primer (controls [T, C]) into a batch-1 state; (state, last logits).

        The whole primer goes through the note state; attention sees its last ``max_len / 2``
        events (what the cache keeps after it slides), read in one batched pass.
        """
        ev = np.asarray(events, np.int64).reshape(-1)
        ctl = np.asarray(controls, np.float32).reshape(ev.size, -1)
        state = self.zero_state(1) if initial is None else self.select(initial, np.array([0]))
        feats = None
        if self.note_kernel is not None:
            start = notes_lib.NoteTracker.to_state(state[1])
            all_feats, after = notes_lib.note_features(ev, start)
            state[1] = notes_lib.NoteTracker.from_state(after, 1)
        cache: _Cache = state[0]
        room = max(1, self.width // 2)
        if cache.length + ev.size > self.width:
            if ev.size >= room:
                cache.length = 0
            else:
                self._make_room(cache, ev.size)
        take = min(ev.size, self.width - cache.length)
        ev, ctl = ev[ev.size - take:], ctl[ctl.shape[0] - take:]
        if self.note_kernel is not None:
            feats = all_feats[all_feats.shape[0] - take:]
        x = self.embed[ev] + ctl @ self.control_kernel
        if feats is not None:
            x = x + feats @ self.note_kernel
        t = ev.size
        past = cache.length
        n = past + t
        h, dh = self.heads, self.dh
        rows = np.arange(past, n)[:, None]
        cols = np.arange(n)[None, :]
        distance = rows - cols  # [t, n]
        visible = distance >= 0
        for i, blk in enumerate(self.blocks):
            qkv = _norm(x) @ blk["qkv"][0] + blk["qkv"][1]  # [t, 3d]
            q = qkv[:, :h * dh].reshape(t, h, dh).transpose(1, 0, 2)  # [H, t, dh]
            cache.keys[i, 0, :, :, past:n] = qkv[:, h * dh:2 * h * dh].reshape(
                t, h, dh).transpose(1, 2, 0)
            cache.values[i, 0, :, past:n, :] = qkv[:, 2 * h * dh:].reshape(
                t, h, dh).transpose(1, 0, 2)
            content = q @ cache.keys[i, 0, :, :, :n]  # [H, t, n]
            table = q @ blk["relative"]  # [H, t, W]: column W-1-d is distance d
            index = np.clip(self.width - 1 - distance, 0, self.width - 1)
            rel = np.take_along_axis(table, np.broadcast_to(index, (h, t, n)), axis=2)
            logits = np.where(visible, content + rel, -1e9)
            logits -= logits.max(axis=-1, keepdims=True)
            weights = np.exp(logits)
            weights /= weights.sum(axis=-1, keepdims=True)
            mixed = (weights @ cache.values[i, 0, :, :n, :]).transpose(1, 0, 2).reshape(t, h * dh)
            x = x + mixed @ blk["out"][0] + blk["out"][1]
            x = x + np.maximum(_norm(x) @ blk["ff1"][0] + blk["ff1"][1], 0.0) @ blk["ff2"][0] \
                + blk["ff2"][1]
        cache.length = n
        last = (_norm(x[-1:]) @ self.out_kernel + self.out_bias).astype(np.float32)
        if feats is not None:
            notes_lib.mask_note_offs(last, feats[-1:, :notes_lib.NUM_PITCHES] > 0)
        return state, last
