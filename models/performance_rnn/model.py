"""The PerformanceRNN network in Keras 3 (``keras.ops`` only: TensorFlow, JAX and torch).

Input at each position: the one-hot event (388) and the control vector (21: the
optional-conditioning "off" flag, 8 note-density bins, 12 pitch-class weights), as in Magenta's
``multiconditioned_performance_with_dynamics``; a stack of LSTMs; a dense layer to 388 logits.
With ``note_features > 0`` the network also reads the note state (:mod:`notes`: which pitches
sound and since when, 256 values) through a dense projection to that many inputs, and its
logits allow note-offs only for sounding pitches.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.checkpoint import config_from_dict, load_weights, read_model_dir
from models.errors import CadenzaError
from models.performance_rnn import encoding as enc
from models.performance_rnn import notes as notes_lib
from models.performance_rnn.notes import network_inputs

FAMILY = "performance"
ARCHITECTURES = ("lstm", "transformer")


@dataclass
class PerformanceConfig:
    """The architecture: all that rebuilding the network needs; saved as ``config.json``."""

    name: str = "full"
    layers: tuple[int, ...] = (512, 512, 512)
    num_classes: int = enc.NUM_CLASSES
    control_size: int = enc.CONTROL_SIZE
    encoding_version: int = enc.ENCODING_VERSION
    # Width of the note-state projection (0: none, Magenta's inputs only); see ``notes``.
    note_features: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # "lstm": ``layers`` are the LSTMs' units. "transformer": a Music Transformer decoder
    # (``transformer.py``), one block per entry of ``layers`` (all the same width), with
    # ``heads`` attention heads, a feed-forward width ``d_ff`` (0: four times the width) and
    # relative positions up to ``max_len`` events apart.
    arch: str = "lstm"
    heads: int = 4
    d_ff: int = 0
    max_len: int = 512


@dataclass
class PerformanceTraining:
    """Training settings; saved with each run in ``history.json`` (see :mod:`models.training`)."""

    batch_size: int = 64
    seq_len: int = 512
    learning_rate: float = 1e-3
    lr_decay: float = 1.0  # the learning rate is multiplied by this every step (1.0: constant)
    warmup_steps: int = 0  # the rate rises linearly from 1/warmup_steps of itself over these steps
    clip_norm: float = 3.0
    dropout: float = 0.0  # the LSTMs' input dropout
    cond_drop: float = 0.5  # fraction of training windows with conditioning switched off
    transpose: int = 3
    stretch: float = 0.05
    validation_fraction: float = 0.1


CONFIGS: dict[str, PerformanceConfig] = {
    # Magenta's multiconditioned_performance_with_dynamics: 3 x 512, batch 64, 512 events.
    "full": PerformanceConfig(note_features=64),
    # Sized for a laptop CPU: trains in an hour, generates thousands of events/s at batch 1.
    "small": PerformanceConfig(name="small", layers=(256, 256), note_features=64),
    # For tests only.
    "tiny": PerformanceConfig(name="tiny", layers=(32,), note_features=8),
    # The architecture study's candidates (see the model card of performance-small).
    "wide": PerformanceConfig(name="wide", layers=(1024,), note_features=64),
    "transformer-small": PerformanceConfig(name="transformer-small", arch="transformer",
                                           layers=(256, 256), heads=4, d_ff=512, max_len=256,
                                           note_features=64),
    "transformer-tiny": PerformanceConfig(name="transformer-tiny", arch="transformer",
                                          layers=(32,), heads=2, d_ff=64, max_len=64,
                                          note_features=8),
}
TRAINING: dict[str, PerformanceTraining] = {
    "full": PerformanceTraining(),
    "small": PerformanceTraining(batch_size=32, seq_len=256, learning_rate=2e-3),
    "tiny": PerformanceTraining(batch_size=8, seq_len=64),
    "wide": PerformanceTraining(batch_size=32, seq_len=256, learning_rate=1e-3),
    "transformer-small": PerformanceTraining(batch_size=32, seq_len=256, learning_rate=1e-3),
    "transformer-tiny": PerformanceTraining(batch_size=8, seq_len=64),
}


def get_config(name: str, **overrides: Any) -> PerformanceConfig:
    """The architecture ``name`` (full, small, tiny), with ``overrides`` (None: not given)."""
    if name not in CONFIGS:
        raise CadenzaError(f"unknown performance config '{name}' (one of {', '.join(CONFIGS)})")
    return replace(CONFIGS[name], **{k: v for k, v in overrides.items() if v is not None})


def get_training(name: str, **overrides: Any) -> PerformanceTraining:
    """The training settings of config ``name``, with ``overrides`` (None: not given)."""
    if name not in TRAINING:
        raise CadenzaError(f"unknown performance config '{name}' (one of {', '.join(TRAINING)})")
    return replace(TRAINING[name], **{k: v for k, v in overrides.items() if v is not None})


class PerformanceModel:
    """The Keras layers plus two graphs over them.

    ``keras_model``: (events [B, T] int, controls [B, T, C][, notes [B, T, 256]]) -> logits
    [B, T, 388], zero initial state; trained and saved. ``stateful_model``: the same plus
    initial (h, c) per layer in and final (h, c) out, for priming and for long evaluation chunks.
    ``notes`` (the note state after each event, :func:`notes.note_features`) is an input only
    when ``config.note_features > 0``.
    """

    def __init__(self, config: PerformanceConfig, dropout: float = 0.0) -> None:
        import keras

        self.config = config
        self.lstms = [
            keras.layers.LSTM(units, return_sequences=True, return_state=True,
                              dropout=dropout, name=f"lstm_{i}")
            for i, units in enumerate(config.layers)
        ]
        self.dense = keras.layers.Dense(config.num_classes, name="logits")
        self.note_proj = (keras.layers.Dense(config.note_features, use_bias=False,
                                             name="note_projection")
                          if self.uses_notes else None)
        events = keras.Input((None,), dtype="int32", name="events")
        controls = keras.Input((None, config.control_size), dtype="float32", name="controls")
        inputs = [events, controls]
        note_in = None
        if self.uses_notes:
            note_in = keras.Input((None, notes_lib.NOTE_FEATURE_SIZE), dtype="float32",
                                  name="notes")
            inputs.append(note_in)
        states_in = []
        for i, units in enumerate(config.layers):
            states_in += [keras.Input((units,), name=f"h{i}"), keras.Input((units,), name=f"c{i}")]
        logits, _ = self._forward(events, controls, note_in, None)
        self.keras_model = keras.Model(inputs, logits, name="performance_rnn")
        logits_s, states_out = self._forward(events, controls, note_in, states_in)
        self.stateful_model = keras.Model([*inputs, *states_in], [logits_s, *states_out],
                                          name="performance_rnn_stateful")

    @property
    def uses_notes(self) -> bool:
        return self.config.note_features > 0

    def _forward(self, events: Any, controls: Any, note_in: Any, states: list | None
                 ) -> tuple[Any, list]:
        from keras import ops

        parts = [ops.one_hot(events, self.config.num_classes, dtype="float32"), controls]
        if self.note_proj is not None:
            parts.append(self.note_proj(note_in))
        x = ops.concatenate(parts, axis=-1)
        out_states = []
        for i, lstm in enumerate(self.lstms):
            init = None if states is None else [states[2 * i], states[2 * i + 1]]
            x, h, c = lstm(x, initial_state=init)
            out_states += [h, c]
        logits = self.dense(x)
        if self.note_proj is not None:
            # A note-off only for a sounding pitch (see ``notes``).
            sounding = note_in[..., :notes_lib.NUM_PITCHES] > 0.5
            offs = ops.where(sounding, logits[..., enc.NOTE_OFF:enc.TIME_SHIFT],
                             notes_lib.MASKED_LOGIT)
            logits = ops.concatenate(
                [logits[..., :enc.NOTE_OFF], offs, logits[..., enc.TIME_SHIFT:]], axis=-1)
        return logits, out_states

    # -------------------------------------------------------------------- helpers
    def zero_states(self, batch: int) -> list[np.ndarray]:
        out = []
        for units in self.config.layers:
            out += [np.zeros((batch, units), np.float32), np.zeros((batch, units), np.float32)]
        return out

    def inputs(self, events: np.ndarray, controls: np.ndarray,
               notes: np.ndarray | None = None) -> list[np.ndarray]:
        """The network's inputs for [B, T] events (see :func:`network_inputs`)."""
        return network_inputs(events, controls, notes, self.uses_notes)

    def logits(self, events: np.ndarray, controls: np.ndarray,
               notes: np.ndarray | None = None) -> np.ndarray:
        """Logits from a zero state (numpy in, numpy out; a compiled graph, not eager)."""
        out = self.keras_model.predict_on_batch(self.inputs(events, controls, notes))
        return np.asarray(out)

    def run_stateful(self, events: np.ndarray, controls: np.ndarray,
                     states: list[np.ndarray], notes: np.ndarray | None = None
                     ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits and final states from ``states``; ``notes`` [B, T, 256] is required when the
        model reads the note state (it depends on events before these)."""
        if self.uses_notes and notes is None:
            raise ValueError("this model needs the note state of the events")
        outs = self.stateful_model.predict_on_batch(
            [*self.inputs(events, controls, notes), *[np.asarray(s, np.float32) for s in states]])
        return np.asarray(outs[0]), [np.asarray(s) for s in outs[1:]]

    def numpy_weights(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(kernel [in, 4H], recurrent [H, 4H], bias [4H]) per layer, float32, gates i f c o."""
        from keras import ops

        out = []
        for lstm in self.lstms:
            cell = lstm.cell
            out.append(tuple(np.asarray(ops.convert_to_numpy(w), dtype=np.float32)
                             for w in (cell.kernel, cell.recurrent_kernel, cell.bias)))
        return out

    def numpy_note_kernel(self) -> np.ndarray | None:
        """[256, 4H] note-state rows of the first LSTM kernel, through the projection (Keras'
        gate order), or None when the model does not read the note state."""
        from keras import ops

        if self.note_proj is None:
            return None
        proj = np.asarray(ops.convert_to_numpy(self.note_proj.kernel), np.float32)
        kernel = np.asarray(ops.convert_to_numpy(self.lstms[0].cell.kernel), np.float32)
        start = self.config.num_classes + self.config.control_size
        return proj @ kernel[start:start + self.config.note_features]

    def numpy_dense(self) -> tuple[np.ndarray, np.ndarray]:
        from keras import ops

        return (np.asarray(ops.convert_to_numpy(self.dense.kernel), np.float32),
                np.asarray(ops.convert_to_numpy(self.dense.bias), np.float32))

    def count_params(self) -> int:
        return int(self.keras_model.count_params())


def check_architecture(config: PerformanceConfig) -> PerformanceConfig:
    """``config`` when it describes a network that can be built (CadenzaError otherwise)."""
    if config.arch not in ARCHITECTURES:
        raise CadenzaError(f"unknown performance network '{config.arch}' "
                           f"(one of {', '.join(ARCHITECTURES)})")
    if not config.layers or any(int(u) < 1 for u in config.layers):
        raise CadenzaError("a performance network needs at least one layer of positive width")
    if config.arch == "transformer":
        width = int(config.layers[0])
        if any(int(u) != width for u in config.layers):
            raise CadenzaError("a transformer's blocks all have the same width")
        if config.heads < 1 or width % config.heads:
            raise CadenzaError(f"a transformer of width {width} cannot have {config.heads} "
                               "heads (the width must divide by them)")
        if config.d_ff < 0 or config.max_len < 2:
            raise CadenzaError("a transformer needs d_ff >= 0 and max_len >= 2")
    return config


def build_model(config: PerformanceConfig, dropout: float = 0.0) -> Any:
    """A network of the architecture ``config`` with fresh weights (``dropout``: a training
    setting): a :class:`PerformanceModel` (LSTM) or a
    :class:`~models.performance_rnn.transformer.PerformanceTransformer`."""
    check_architecture(config)
    if config.arch == "transformer":
        from models.performance_rnn.transformer import PerformanceTransformer, shape_of

        return PerformanceTransformer(shape_of(config, dropout), config)
    return PerformanceModel(config, dropout)


def read_config(directory: str | Path) -> PerformanceConfig:
    """The architecture of a performance model folder (CadenzaError for another family or
    encoding); an older config.json's training settings are left out."""
    payload = read_model_dir(directory)
    if payload["family"] != FAMILY:
        raise CadenzaError(f"{directory} holds a '{payload['family']}' model, not '{FAMILY}'")
    config = check_architecture(config_from_dict(PerformanceConfig, payload["config"]))
    if config.encoding_version != enc.ENCODING_VERSION:
        raise CadenzaError(f"{directory} uses event encoding v{config.encoding_version}; "
                           f"this Cadenza speaks v{enc.ENCODING_VERSION}")
    return config


def load_model(directory: str | Path) -> Any:
    model = build_model(read_config(directory))
    load_weights(model.keras_model, directory)
    return model
