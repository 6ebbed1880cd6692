"""The MusicVAE networks in Keras 3 (``keras.ops`` only: TensorFlow, JAX and torch).

As in Magenta's ``music_vae`` (``lstm_models`` and ``base_model``):

* **Encoder**: stacked bidirectional LSTMs over the input sequence; the last forward and backward
  outputs, concatenated, give ``mu = Dense(z)`` and ``sigma = softplus(Dense(z))``.
* **Flat decoder** (``CategoricalLstmDecoder``): the initial (h, c) of every LSTM layer is
  ``tanh(Dense(z))``; each step's input is the previous step's symbol (zeros at step 0)
  concatenated with ``z``; a dense layer gives the categorical logits. Teacher forcing in
  training.
* **Hierarchical encoder** (``HierarchicalLstmEncoder(level_lengths=[16, 16])``, used by
  Magenta's hierarchical trio models; optional, ``enc_top_rnn_size``): the ``enc_rnn_size``
  layers read each bar on its own (all bars in parallel), and bidirectional ``enc_top_rnn_size``
  layers read the bars' summaries (last forward and backward outputs). The longest path through
  the encoder is 32 steps instead of 256, so a small encoder holds a 16-bar melody.
* **Hierarchical decoder** (``HierarchicalLstmDecoder(level_lengths=[16, 16],
  disable_autoregression=True)``): a conductor LSTM, started from ``tanh(Dense(z))`` and fed
  zeros, emits one embedding per bar; each embedding starts (``tanh(Dense(e))``) and conditions
  (concatenated to each input) the bottom decoder for that bar's 16 steps, whose first input is
  zeros. As bars do not feed each other, all bars decode in parallel.
* **Loss** (training's, :mod:`models.music_vae.train`): per-sequence sum over steps of the
  cross entropy, plus ``beta * max(KL - free_bits * ln 2, 0)`` with
  ``beta = (1 - beta_rate**step) * max_beta``.

* **Decoder input dropout** (training only, ``input_dropout``; Bowman et al. 2016, "word
  dropout"): a share of the decoder's previous-symbol inputs is replaced by zeros, so the decoder
  has to rely on ``z`` rather than on its own history. It narrows the gap between teacher-forced
  and free-running (greedy) decoding, where a decoder that leans on its history drifts after its
  first mistake.

The Keras graph takes ``(labels, eps, beta, keep)``: the reparameterisation noise, the KL weight
and the decoder-input keep mask ([B, T], ones outside training) come in with the batch, so the
graph is stateless and identical on every backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.checkpoint import config_from_dict, load_weights, read_model_dir
from models.errors import CadenzaError
from models.music_vae import converters as conv

FAMILY = "music_vae"
CONVERTER_VERSION = 1


@dataclass
class MusicVAEConfig:
    """The architecture (and the data it reads): all that rebuilding the networks needs; saved
    as ``config.json`` beside the weights."""

    name: str = "melody-2bar"
    kind: str = "melody"  # "melody" or "drums"
    slice_bars: int = 2
    hierarchical: bool = False
    bar_steps: int = 16
    enc_rnn_size: tuple[int, ...] = (256,)
    # Non-empty: the hierarchical encoder (enc_rnn_size reads each bar, these read the bars).
    enc_top_rnn_size: tuple[int, ...] = ()
    dec_rnn_size: tuple[int, ...] = (256, 256)
    conductor_rnn_size: tuple[int, ...] = (256,)
    z_size: int = 128
    converter_version: int = CONVERTER_VERSION

    @property
    def num_steps(self) -> int:
        return self.slice_bars * self.bar_steps

    @property
    def num_classes(self) -> int:
        return conv.MELODY_CLASSES if self.kind == "melody" else conv.DRUM_CLASSES

    def converter(self) -> conv.Converter:
        return conv.Converter(self.kind, slice_bars=self.slice_bars)

    def input_table(self) -> np.ndarray:
        """[classes, input depth]: a symbol's input vector (one-hot; drums: the 9+1 roll)."""
        if self.kind == "drums":
            return conv.drum_roll_table()
        return np.eye(self.num_classes, dtype=np.float32)


@dataclass
class MusicVAETraining:
    """The loss, optimizer, schedules and data settings of training; saved with each run in
    ``history.json`` (see :mod:`models.training`)."""

    free_bits: float = 0.0
    max_beta: float = 0.2
    beta_rate: float = 0.99999
    learning_rate: float = 1e-3
    decay_rate: float = 0.9999
    min_learning_rate: float = 1e-5
    grad_clip: float = 1.0
    batch_size: int = 64
    input_dropout: float = 0.0  # share of decoder inputs zeroed in training (word dropout)
    # Magenta's scheduled sampling: the share of decoder inputs that are the model's own
    # (greedy) previous choice instead of the true one. "constant": sampling_rate itself;
    # "inverse_sigmoid": 1 - k / (k + exp(step / k)) with k = sampling_rate; "exponential":
    # 1 - sampling_rate ** step. Off when sampling_rate is 0.
    sampling_schedule: str = "constant"
    sampling_rate: float = 0.0
    transpose_range: int = 5  # melodies: random transposition in [-n, n] semitones
    # Training pieces' windows start every train_hop steps (0: every bar, as Magenta's and as
    # the validation pieces' always do). A shorter hop is an augmentation: more phrasings of
    # the same material.
    train_hop: int = 0
    validation_fraction: float = 0.1
    # Windows of music in every metre (sixteenth-note windows that ignore bar lines, see
    # models.music_vae.converters), not only 4/4 as Magenta's (and the shipped models' data).
    any_meter: bool = False


A, T = MusicVAEConfig, MusicVAETraining
# Magenta's configs (full) and CPU-sized ones (small) that train in about half an hour on two
# cores; tiny ones for tests. Each is an architecture and its training settings.
CONFIGS: dict[str, dict[str, tuple[MusicVAEConfig, MusicVAETraining]]] = {
    "melody-2bar": {
        # cat-mel_2bar_big
        "full": (A(name="melody-2bar", enc_rnn_size=(2048,), dec_rnn_size=(2048, 2048, 2048),
                   z_size=512),
                 T(free_bits=0.0, max_beta=0.5, beta_rate=0.99999, batch_size=512)),
        "small": (A(name="melody-2bar", enc_rnn_size=(128,), dec_rnn_size=(128, 128), z_size=64),
                  T(free_bits=32.0, max_beta=0.2, beta_rate=0.9995, batch_size=64,
                    learning_rate=2e-3, decay_rate=0.9997)),
        "tiny": (A(name="melody-2bar", enc_rnn_size=(32,), dec_rnn_size=(32,), z_size=8),
                 T(free_bits=0.0, max_beta=0.2, beta_rate=0.99, batch_size=16,
                   learning_rate=3e-3)),
    },
    "drums-2bar": {
        # cat-drums_2bar_big sizes, free bits as in cat-drums_2bar_small
        "full": (A(name="drums-2bar", kind="drums", enc_rnn_size=(2048,),
                   dec_rnn_size=(2048, 2048, 2048), z_size=512),
                 T(free_bits=48.0, max_beta=0.2, beta_rate=0.99999, batch_size=512)),
        "small": (A(name="drums-2bar", kind="drums", enc_rnn_size=(128,),
                    dec_rnn_size=(128, 128), z_size=64),
                  T(free_bits=48.0, max_beta=0.2, beta_rate=0.9995, batch_size=64,
                    transpose_range=0, learning_rate=2e-3, decay_rate=0.9997)),
        "tiny": (A(name="drums-2bar", kind="drums", enc_rnn_size=(32,), dec_rnn_size=(32,),
                   z_size=8),
                 T(free_bits=0.0, max_beta=0.2, beta_rate=0.99, batch_size=16,
                   transpose_range=0, learning_rate=3e-3)),
    },
    "melody-16bar": {
        # hierdec-mel_16bar
        "full": (A(name="melody-16bar", slice_bars=16, hierarchical=True, enc_rnn_size=(2048,),
                   conductor_rnn_size=(1024, 1024), dec_rnn_size=(1024, 1024, 1024),
                   z_size=512),
                 T(free_bits=256.0, max_beta=0.2, beta_rate=0.0, batch_size=512)),
        # The hierarchical encoder (bars, then the bar sequence) in place of Magenta's flat
        # one: a flat [128] encoder read 256 steps too poorly (0.69 after 13,500 steps).
        "small": (A(name="melody-16bar", slice_bars=16, hierarchical=True, enc_rnn_size=(128,),
                    enc_top_rnn_size=(128,), conductor_rnn_size=(128,), dec_rnn_size=(128,),
                    z_size=96),
                  T(free_bits=256.0, max_beta=0.2, beta_rate=0.9995, batch_size=64,
                    learning_rate=2e-3, decay_rate=0.9997)),
        "tiny": (A(name="melody-16bar", slice_bars=16, hierarchical=True, enc_rnn_size=(24,),
                   conductor_rnn_size=(24,), dec_rnn_size=(24,), z_size=8),
                 T(free_bits=0.0, max_beta=0.2, beta_rate=0.99, batch_size=8,
                   learning_rate=3e-3)),
    },
}
del A, T


def _preset(name: str, size: str) -> tuple[MusicVAEConfig, MusicVAETraining]:
    if name not in CONFIGS:
        raise CadenzaError(f"unknown MusicVAE model '{name}' (one of {', '.join(CONFIGS)})")
    if size not in CONFIGS[name]:
        raise CadenzaError(f"unknown config '{size}' for {name} "
                           f"(one of {', '.join(CONFIGS[name])})")
    return CONFIGS[name][size]


def get_config(name: str, size: str = "small", **overrides: Any) -> MusicVAEConfig:
    """The architecture of model ``name`` in ``size``, with ``overrides`` (None: not given)."""
    return replace(_preset(name, size)[0],
                   **{k: v for k, v in overrides.items() if v is not None})


def get_training(name: str, size: str = "small", **overrides: Any) -> MusicVAETraining:
    """The training settings of model ``name`` in ``size``, with ``overrides``."""
    return replace(_preset(name, size)[1],
                   **{k: v for k, v in overrides.items() if v is not None})


def beta_at(settings: MusicVAETraining, step: int) -> float:
    """Magenta's KL weight: ``(1 - beta_rate ** step) * max_beta``."""
    return float((1.0 - settings.beta_rate ** step) * settings.max_beta)


SAMPLING_SCHEDULES = ("constant", "inverse_sigmoid", "exponential")


def check_sampling_schedule(kind: str) -> None:
    if kind not in SAMPLING_SCHEDULES:
        raise CadenzaError(f"unknown sampling schedule '{kind}' "
                           f"(one of {', '.join(SAMPLING_SCHEDULES)})")


def sampling_probability(settings: MusicVAETraining, step: int) -> float:
    """Probability that a decoder input is the model's own choice at training ``step``."""
    rate, kind = float(settings.sampling_rate), settings.sampling_schedule
    check_sampling_schedule(kind)
    if rate <= 0.0:
        return 0.0
    if kind == "constant":
        return min(rate, 1.0)
    if kind == "inverse_sigmoid":
        return float(1.0 - rate / (rate + math.exp(min(step / rate, 700.0))))
    return float(1.0 - rate ** step)  # exponential


class MusicVAENet:
    """The Keras layers and two graphs over them.

    ``keras_model``: (labels [B, T] int, eps [B, z], beta [B, 1], keep [B, T]) ->
    {"logits": [B, T, C], "kl": [B, 2] (KL in nats, and the KL weight beta for the loss)},
    teacher forced; saved, and trained without scheduled sampling. ``scheduled_model``: what
    training with scheduled sampling fits, a graph over the same layers (so the same variables)
    that takes a fifth input, ``own`` [B, T] (1 where the step's input is the decoder's own
    greedy choice at the step before), and steps the decoder cells one symbol at a time.
    The free-bits KL cost is the training loss's (:mod:`models.music_vae.train`), so the graphs
    depend on the architecture alone. ``encoder_model``:
    labels -> (mu, sigma). The decoder layers are also stepped one symbol at a time by
    :mod:`models.music_vae.generate` (keras.ops path and numpy fast path).
    """

    def __init__(self, config: MusicVAEConfig) -> None:
        import keras

        self.config = c = config
        L = keras.layers
        self.table = c.input_table()
        self.input_depth = int(self.table.shape[1])
        self.encoders = [
            L.Bidirectional(L.LSTM(u, return_sequences=i < len(c.enc_rnn_size) - 1),
                            name=f"encoder_{i}")
            for i, u in enumerate(c.enc_rnn_size)
        ]
        self.top_encoders = [
            L.Bidirectional(L.LSTM(u, return_sequences=i < len(c.enc_top_rnn_size) - 1),
                            name=f"encoder_top_{i}")
            for i, u in enumerate(c.enc_top_rnn_size)
        ]
        self.mu_dense = L.Dense(c.z_size, name="mu")
        self.sigma_dense = L.Dense(c.z_size, name="sigma")
        if c.hierarchical:
            self.conductor_init = L.Dense(2 * sum(c.conductor_rnn_size), activation="tanh",
                                          name="conductor_init")
            self.conductor = [L.LSTM(u, return_sequences=True, name=f"conductor_{i}")
                              for i, u in enumerate(c.conductor_rnn_size)]
        self.dec_init = L.Dense(2 * sum(c.dec_rnn_size), activation="tanh", name="decoder_init")
        self.decoders = [L.LSTM(u, return_sequences=True, name=f"decoder_{i}")
                         for i, u in enumerate(c.dec_rnn_size)]
        for layer in self.decoders:  # the scheduled graph calls the cells: unique names there
            layer.cell.name = f"{layer.name}_cell"
        self.out_dense = L.Dense(c.num_classes, name="logits")

        self.keras_model, (labels, mu, sigma) = self._training_graph(scheduled=False)
        self._scheduled_model: Any = None
        self.encoder_model = keras.Model(labels, [mu, sigma], name="music_vae_encoder")

    def _training_graph(self, scheduled: bool) -> tuple[Any, tuple[Any, Any, Any]]:
        """(labels, eps, beta, keep[, own]) -> {"logits", "kl"}, and (labels, mu, sigma)."""
        import keras

        c = self.config
        labels = keras.Input((c.num_steps,), dtype="int32", name="labels")
        eps = keras.Input((c.z_size,), dtype="float32", name="eps")
        beta = keras.Input((1,), dtype="float32", name="beta")
        keep = keras.Input((c.num_steps,), dtype="float32", name="keep")
        inputs = [labels, eps, beta, keep]
        x = self.embed(labels)
        mu, sigma = self.encode_graph(x)
        z = mu + sigma * eps
        if scheduled:
            own = keras.Input((c.num_steps,), dtype="float32", name="own")
            inputs.append(own)
            logits = self.decode_scheduled(x, keep, own, z)
        else:
            logits = self.decode_teacher_forced(x * keras.ops.expand_dims(keep, -1), z)
        kl = self.kl_divergence(mu, sigma)
        kl_out = keras.ops.stack([kl, beta[:, 0]], axis=-1)
        model = keras.Model(inputs, {"logits": logits, "kl": kl_out},
                            name="music_vae_scheduled" if scheduled else "music_vae")
        return model, (labels, mu, sigma)

    @property
    def scheduled_model(self) -> Any:
        """The stepped graph scheduled sampling trains, built on first use (loading a model for
        the app never builds it)."""
        if self._scheduled_model is None:
            self._scheduled_model = self._training_graph(scheduled=True)[0]
        return self._scheduled_model

    # ------------------------------------------------------------------ graph pieces
    def embed(self, labels: Any) -> Any:
        from keras import ops

        return ops.take(ops.convert_to_tensor(self.table), labels, axis=0)

    def encode_graph(self, x: Any) -> tuple[Any, Any]:
        from keras import ops

        c = self.config
        h = x
        if self.top_encoders:  # each bar on its own, then the bars
            h = ops.reshape(x, (-1, c.bar_steps, self.input_depth))
        for layer in self.encoders:
            h = layer(h)
        if self.top_encoders:
            h = ops.reshape(h, (-1, c.slice_bars, 2 * c.enc_rnn_size[-1]))
            for layer in self.top_encoders:
                h = layer(h)
        return self.mu_dense(h), ops.softplus(self.sigma_dense(h))

    @staticmethod
    def kl_divergence(mu: Any, sigma: Any) -> Any:
        """KL(N(mu, sigma) || N(0, 1)) summed over z, per example (nats)."""
        from keras import ops

        return ops.sum(0.5 * (ops.square(mu) + ops.square(sigma) - 1.0)
                       - ops.log(sigma + 1e-8), axis=-1)

    def _split_states(self, flat: Any, sizes: tuple[int, ...]) -> list[list[Any]]:
        states, offset = [], 0
        for u in sizes:
            states.append([flat[:, offset:offset + u], flat[:, offset + u:offset + 2 * u]])
            offset += 2 * u
        return states

    def _run_decoder(self, inputs: Any, cond: Any) -> Any:
        """Bottom decoder over teacher-forced ``inputs`` [N, S, D], conditioned on [N, E]."""
        from keras import ops

        steps = inputs.shape[1]
        states = self._split_states(self.dec_init(cond), self.config.dec_rnn_size)
        tiled = ops.repeat(ops.expand_dims(cond, 1), steps, axis=1)
        h = ops.concatenate([inputs, tiled], axis=-1)
        for layer, state in zip(self.decoders, states, strict=True):
            h = layer(h, initial_state=state)
        return self.out_dense(h)

    def conductor_graph(self, z: Any) -> Any:
        """[B, bars, H] embeddings from z (the conductor is fed zeros)."""
        from keras import ops

        c = self.config
        states = self._split_states(self.conductor_init(z), c.conductor_rnn_size)
        h = ops.zeros_like(ops.repeat(ops.expand_dims(z[:, :1], 1), c.slice_bars, axis=1))
        for layer, state in zip(self.conductor, states, strict=True):
            h = layer(h, initial_state=state)
        return h

    def decode_teacher_forced(self, x: Any, z: Any) -> Any:
        from keras import ops

        c = self.config
        if not c.hierarchical:
            shifted = ops.pad(x[:, :-1], [[0, 0], [1, 0], [0, 0]])
            return self._run_decoder(shifted, z)
        emb = self.conductor_graph(z)  # [B, bars, H]
        bars = ops.reshape(x, (-1, c.bar_steps, self.input_depth))
        shifted = ops.pad(bars[:, :-1], [[0, 0], [1, 0], [0, 0]])
        flat_emb = ops.reshape(emb, (-1, c.conductor_rnn_size[-1]))
        logits = self._run_decoder(shifted, flat_emb)
        return ops.reshape(logits, (-1, c.num_steps, c.num_classes))

    def _run_decoder_scheduled(self, inputs: Any, keep: Any, own: Any, cond: Any) -> Any:
        """The bottom decoder stepped symbol by symbol: step t+1 is fed the true symbol t, or
        where ``own[:, t]`` is 1 the decoder's own greedy choice at t (no gradient through
        the choice); ``keep`` zeroes inputs as in teacher forcing."""
        from keras import ops

        steps = inputs.shape[1]
        states = self._split_states(self.dec_init(cond), self.config.dec_rnn_size)
        cells = [layer.cell for layer in self.decoders]
        table = ops.convert_to_tensor(self.table)
        prev = ops.zeros_like(inputs[:, 0])
        outputs = []
        for t in range(steps):
            h = ops.concatenate([prev, cond], axis=-1)
            for k, cell in enumerate(cells):
                h, states[k] = cell(h, states[k])
            logits = self.out_dense(h)
            outputs.append(logits)
            if t + 1 < steps:
                mine = ops.take(table, ops.argmax(ops.stop_gradient(logits), axis=-1), axis=0)
                m = own[:, t:t + 1]
                prev = (m * mine + (1.0 - m) * inputs[:, t]) * keep[:, t:t + 1]
        return ops.stack(outputs, axis=1)

    def decode_scheduled(self, x: Any, keep: Any, own: Any, z: Any) -> Any:
        from keras import ops

        c = self.config
        if not c.hierarchical:
            return self._run_decoder_scheduled(x, keep, own, z)
        emb = self.conductor_graph(z)
        bars = ops.reshape(x, (-1, c.bar_steps, self.input_depth))
        flat_emb = ops.reshape(emb, (-1, c.conductor_rnn_size[-1]))
        logits = self._run_decoder_scheduled(bars, ops.reshape(keep, (-1, c.bar_steps)),
                                             ops.reshape(own, (-1, c.bar_steps)), flat_emb)
        return ops.reshape(logits, (-1, c.num_steps, c.num_classes))

    # ------------------------------------------------------------------ helpers
    def encode(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from keras import ops

        mu, sigma = self.encoder_model(np.asarray(labels, np.int32), training=False)
        return (np.asarray(ops.convert_to_numpy(mu), np.float32),
                np.asarray(ops.convert_to_numpy(sigma), np.float32))

    def teacher_forced(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs at the posterior mean (eps = 0) with beta 0."""
        from keras import ops

        labels = np.asarray(labels, np.int32)
        n = len(labels)
        out = self.keras_model([labels, np.zeros((n, self.config.z_size), np.float32),
                                np.zeros((n, 1), np.float32),
                                np.ones(labels.shape, np.float32)], training=False)
        return {k: np.asarray(ops.convert_to_numpy(v)) for k, v in out.items()}

    def count_params(self) -> int:
        return int(self.keras_model.count_params())


def build_model(config: MusicVAEConfig) -> MusicVAENet:
    if config.kind not in ("melody", "drums"):
        raise CadenzaError(f"unknown MusicVAE data kind '{config.kind}'")
    if config.hierarchical and config.kind != "melody":
        raise CadenzaError("the hierarchical decoder is for melodies")
    if config.enc_top_rnn_size and config.slice_bars < 2:
        raise CadenzaError("the hierarchical encoder needs windows of two bars or more")
    return MusicVAENet(config)


def load_config(directory: str | Path) -> MusicVAEConfig:
    payload = read_model_dir(directory)
    if payload["family"] != FAMILY:
        raise CadenzaError(f"{directory} holds a '{payload['family']}' model, not '{FAMILY}'")
    config = config_from_dict(MusicVAEConfig, payload["config"])
    if config.converter_version != CONVERTER_VERSION:
        raise CadenzaError(f"{directory} uses converter v{config.converter_version}; "
                           f"this Cadenza speaks v{CONVERTER_VERSION}")
    return config


def load_model(directory: str | Path) -> MusicVAENet:
    net = build_model(load_config(directory))
    load_weights(net.keras_model, directory)
    return net
