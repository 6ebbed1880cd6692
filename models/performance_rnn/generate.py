"""Continuing a performance: sampling (temperature, top-p), Magenta's beam search, variations.

Two interchangeable step engines run the LSTM stack one event at a time:

* :class:`NumpyEngine` (the CPU path): the LSTM weights are copied out of the Keras model once
  and the recurrence runs in numpy float32 with preallocated buffers; the one-hot input becomes a
  row lookup in the first kernel and the (constant) controls are folded into the bias.
* :class:`KerasEngine`: the same recurrence written with ``keras.ops`` on the backend's tensors
  (runs on any backend and device, e.g. to check GPU inference).

Both warm up on a primer in one batched pass (:meth:`prime`): layer by layer, the input
projection of every primer event is one matrix product and only the recurrent part is sequential
(the Keras engine runs the whole primer through the stateful Keras model in one call).

For a model that reads the note state (:mod:`notes`), the engine's state list ends with a
:class:`notes.NoteTracker` pair after the LSTM layers' (h, c) pairs; every step reads it and
masks note-offs of silent pitches, so callers sample from the model's own distribution.

:class:`Continuer` is the session object: ``prime(seq)`` once, then ``generate_detailed(seconds)``
as often as wanted; each call starts from the warm primer state and returns
:class:`Continuation` objects (the events, the decoded notes, their log-likelihood and the
primer joined with them, by :func:`join`). The sampling and beam-search loops report
``progress(fraction)`` and stop with :class:`models.errors.Cancelled` when ``cancel()`` says so.
Generated notes are cut at :data:`MAX_NOTE_SECONDS`, as Magenta's generator does. The Continue
workspace's job and ``cadenza continue`` both call
:meth:`models.performance_rnn.facade.PerformanceRNN.generate`, which runs one session; the live
duet's streaming form (:mod:`models.performance_rnn.live`) uses the same engines, sampling and
decoding rules one event at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from models import limits
from models.compute import single_blas_thread
from models.errors import CadenzaError, Cancelled
from models.performance_rnn import encoding as enc
from models.performance_rnn import notes as notes_lib
from models.performance_rnn.follow import Following
from models.performance_rnn.model import PerformanceModel
from models.sequence import NoteSequence

# Magenta's performance generator cuts generated notes at 5 s (MAX_NOTE_DURATION_SECONDS).
MAX_NOTE_SECONDS = 5.0
# A primer of nothing starts from a 10 ms time shift (Magenta starts empty primers this way).
EMPTY_PRIMER = np.asarray([enc.TIME_SHIFT], dtype=np.int16)
# The sampling and beam loops ask ``cancel()`` every this many events.
CANCEL_EVERY = 16
# ... and report progress when it grew by this much (and at the end).
PROGRESS_STEP = 0.01

Progress = Callable[[float], None]
Cancel = Callable[[], bool]


def as_network(model: Any) -> PerformanceModel:
    """The Keras network of a :class:`~models.performance_rnn.facade.PerformanceRNN` façade
    (what the registry loads), or ``model`` itself when it is the network already."""
    return getattr(model, "network", model)


def _fold_gates(kernel: np.ndarray, units: int) -> np.ndarray:
    """Reorder Keras' gate columns (i, f, c, o) to (i, f, o, c) and halve i, f, o, so that
    ``sigmoid(x) = 0.5 * tanh(x') + 0.5`` needs one tanh over the three sigmoid gates."""
    i, f, c, o = (kernel[..., k * units:(k + 1) * units] for k in range(4))
    return np.ascontiguousarray(np.concatenate([0.5 * i, 0.5 * f, 0.5 * o, c], axis=-1),
                                dtype=np.float32)


class _NoteSlot:
    """The note-state part shared by both engines: for a model that reads it, the state list
    holds a :class:`notes.NoteTracker` pair after the layers' (h, c) pairs (``note_kernel`` set
    by the engine; None for a model without the note state)."""

    units: list[int]
    note_kernel: Any = None

    def _note_zero(self, batch: int) -> list:
        if self.note_kernel is None:
            return []
        return [notes_lib.NoteTracker.from_state(notes_lib.NoteState(), batch)]

    def _note_step(self, state: list, events: np.ndarray) -> np.ndarray | None:
        """Read one event per row into the tracker; the features after it (or None)."""
        if self.note_kernel is None:
            return None
        return notes_lib.NoteTracker.update(state[len(self.units)], events)

    def _note_prime(self, events: np.ndarray, initial: list | None
                    ) -> tuple[np.ndarray | None, list]:
        """Features [T, 256] of a primer read from ``initial``'s tracker (or silence), and the
        state-list tail after it."""
        if self.note_kernel is None:
            return None, []
        start = None if initial is None else notes_lib.NoteTracker.to_state(
            initial[len(self.units)])
        feats, after = notes_lib.note_features(np.asarray(events), start)
        return feats, [notes_lib.NoteTracker.from_state(after, 1)]

    @staticmethod
    def _mask(logits: np.ndarray, feats: np.ndarray | None) -> np.ndarray:
        if feats is not None:
            notes_lib.mask_note_offs(logits, feats[:, :notes_lib.NUM_PITCHES] > 0)
        return logits


class NumpyEngine(_NoteSlot):
    """The LSTM stack in numpy float32; state is a list of (h, c) arrays [B, H]."""

    name = "numpy"

    def __init__(self, model: PerformanceModel) -> None:
        raw = model.numpy_weights()
        self.dense_w, self.dense_b = model.numpy_dense()
        self.num_classes = model.config.num_classes
        self.units = [r.shape[0] for _, r, _ in raw]
        self.layers = []
        for (kernel, recurrent, bias), units in zip(raw, self.units, strict=True):
            self.layers.append((_fold_gates(kernel, units), _fold_gates(recurrent, units),
                                _fold_gates(bias, units)))
        first_kernel = self.layers[0][0]
        control_end = self.num_classes + model.config.control_size
        self.embed = np.ascontiguousarray(first_kernel[: self.num_classes])  # one-hot rows
        self.control_kernel = np.ascontiguousarray(first_kernel[self.num_classes:control_end])
        note_kernel = model.numpy_note_kernel()
        self.note_kernel = (None if note_kernel is None
                            else _fold_gates(note_kernel, self.units[0]))
        # Upper layers: one product [x, h] @ [kernel; recurrent].
        self.stacked = [np.ascontiguousarray(np.concatenate([k, r], axis=0))
                        for k, r, _ in self.layers]
        self._batch = -1

    # ---------------------------------------------------------------- buffers
    def _buffers(self, batch: int) -> None:
        if batch == self._batch:
            return
        self._batch = batch
        self.gates = [np.empty((batch, 4 * h), np.float32) for h in self.units]
        self.xh = [np.empty((batch, self.units[i - 1] + h), np.float32) if i else None
                   for i, h in enumerate(self.units)]
        self.tmp = [np.empty((batch, h), np.float32) for h in self.units]
        self.logits_buf = np.empty((batch, self.num_classes), np.float32)

    def zero_state(self, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
        return [*((np.zeros((batch, h), np.float32), np.zeros((batch, h), np.float32))
                  for h in self.units), *self._note_zero(batch)]

    def first_bias(self, controls: np.ndarray) -> np.ndarray:
        """[B, 4H] bias of the first layer with the controls folded in."""
        return (np.atleast_2d(controls).astype(np.float32) @ self.control_kernel
                + self.layers[0][2]).astype(np.float32)

    @staticmethod
    def _cell(g: np.ndarray, c: np.ndarray, h: np.ndarray, tmp: np.ndarray, units: int) -> None:
        """LSTM update in place from folded pre-activations ``g`` [B, 4H] (i, f, o, c)."""
        sig = g[:, :3 * units]
        np.tanh(sig, out=sig)
        sig *= 0.5
        sig += 0.5
        cand = g[:, 3 * units:]
        np.tanh(cand, out=cand)
        c *= g[:, units:2 * units]  # c = f * c
        np.multiply(g[:, :units], cand, out=tmp)
        c += tmp  # + i * tanh(candidate)
        np.tanh(c, out=tmp)
        np.multiply(g[:, 2 * units:3 * units], tmp, out=h)

    # ---------------------------------------------------------------- one step
    def step(self, events: np.ndarray, state: list[tuple[np.ndarray, np.ndarray]],
             bias0: np.ndarray) -> np.ndarray:
        """Advance every row by one event (in place on ``state``); returns logits [B, 388]."""
        self._buffers(events.shape[0])
        feats = self._note_step(state, events)
        x = None
        for i, units in enumerate(self.units):
            h, c = state[i]
            g = self.gates[i]
            if i == 0:
                np.matmul(h, self.layers[0][1], out=g)
                g += self.embed[events]
                g += bias0
                if feats is not None:
                    # Only sounding pitches have non-zero features: a few rows of the kernel.
                    cols = np.flatnonzero(feats.any(axis=0))
                    if cols.size:
                        g += feats[:, cols] @ self.note_kernel[cols]
            else:
                xh = self.xh[i]
                xh[:, : x.shape[1]] = x
                xh[:, x.shape[1]:] = h
                np.matmul(xh, self.stacked[i], out=g)
                g += self.layers[i][2]
            self._cell(g, c, h, self.tmp[i], units)
            x = h
        np.matmul(x, self.dense_w, out=self.logits_buf)
        self.logits_buf += self.dense_b
        return self._mask(self.logits_buf, feats)

    # ---------------------------------------------------------------- primer
    def prime(self, events: np.ndarray, controls: np.ndarray,
              initial: list[tuple[np.ndarray, np.ndarray]] | None = None
              ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """Run a [T] primer (controls [T, C]) from ``initial`` (default zero) state of batch 1;
        returns (state, last logits).

        Layer by layer: the input projections of all T events are one matrix product; only
        the recurrent product is sequential.
        """
        ev = np.asarray(events, dtype=np.int64)
        seq_in = None
        state: list = []
        feats, note_tail = self._note_prime(ev, initial)
        for i, (kernel, recurrent, bias) in enumerate(self.layers):
            if i == 0:
                proj = self.embed[ev] + controls.astype(np.float32) @ self.control_kernel + bias
                if feats is not None:
                    proj = proj + feats @ self.note_kernel
            else:
                proj = seq_in @ kernel + bias
            proj = np.ascontiguousarray(proj, dtype=np.float32)
            units = self.units[i]
            if initial is None:
                h = np.zeros((1, units), np.float32)
                c = np.zeros((1, units), np.float32)
            else:
                h, c = (np.array(a, np.float32).reshape(1, units) for a in initial[i])
            outs = np.empty((ev.size, units), np.float32)
            g = np.empty((1, 4 * units), np.float32)
            tmp = np.empty((1, units), np.float32)
            for k in range(ev.size):
                np.matmul(h, recurrent, out=g)
                g += proj[k]
                self._cell(g, c, h, tmp, units)
                outs[k] = h[0]
            state.append((h, c))
            seq_in = outs
        logits = (seq_in[-1:] @ self.dense_w + self.dense_b).astype(np.float32)
        return [*state, *note_tail], self._mask(logits, None if feats is None else feats[-1:])

    def tile(self, state: list[tuple[np.ndarray, np.ndarray]], reps: int
             ) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(np.repeat(h, reps, axis=0), np.repeat(c, reps, axis=0)) for h, c in state]

    def select(self, state: list[tuple[np.ndarray, np.ndarray]], rows: np.ndarray
               ) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(h[rows].copy(), c[rows].copy()) for h, c in state]

    def sequence_logits(self, events: np.ndarray, controls: np.ndarray) -> np.ndarray:
        """Logits [T, 388] for every position of one sequence (from zero state)."""
        state = self.zero_state(1)
        out = np.empty((len(events), self.num_classes), np.float32)
        for k, e in enumerate(np.asarray(events)):
            out[k] = self.step(np.asarray([e]), state, self.first_bias(controls[k]))[0]
        return out


class KerasEngine(_NoteSlot):
    """The same recurrence with ``keras.ops`` on backend tensors (any backend, any device)."""

    name = "keras"

    def __init__(self, model: PerformanceModel) -> None:
        from keras import ops

        self.model = model
        self.ops = ops
        self.num_classes = model.config.num_classes
        self.units = list(model.config.layers)
        self.layers = [(lstm.cell.kernel, lstm.cell.recurrent_kernel, lstm.cell.bias)
                       for lstm in model.lstms]
        self.dense_w, self.dense_b = model.dense.kernel, model.dense.bias
        kernel0 = self.layers[0][0]
        control_end = self.num_classes + model.config.control_size
        self.embed = kernel0[: self.num_classes]
        self.control_kernel = kernel0[self.num_classes:control_end]
        self.note_kernel = None
        if model.note_proj is not None:
            self.note_kernel = ops.matmul(
                model.note_proj.kernel,
                kernel0[control_end:control_end + model.config.note_features])

    def zero_state(self, batch: int) -> list[tuple[Any, Any]]:
        ops = self.ops
        return [*((ops.zeros((batch, h)), ops.zeros((batch, h))) for h in self.units),
                *self._note_zero(batch)]

    def first_bias(self, controls: np.ndarray) -> Any:
        ops = self.ops
        ctl = ops.convert_to_tensor(np.atleast_2d(controls).astype(np.float32))
        return ops.matmul(ctl, self.control_kernel) + self.layers[0][2]

    def step(self, events: np.ndarray, state: list[tuple[Any, Any]], bias0: Any) -> np.ndarray:
        ops = self.ops
        feats = self._note_step(state, events)
        x = None
        for i, (kernel, recurrent, bias) in enumerate(self.layers):
            h, c = state[i]
            if i == 0:
                g = ops.take(self.embed, ops.convert_to_tensor(np.asarray(events, np.int32)),
                             axis=0) + bias0
                if feats is not None:
                    g = g + ops.matmul(ops.convert_to_tensor(feats), self.note_kernel)
            else:
                g = ops.matmul(x, kernel) + bias
            g = g + ops.matmul(h, recurrent)
            gi, gf, gc, go = ops.split(g, 4, axis=-1)
            c = ops.sigmoid(gf) * c + ops.sigmoid(gi) * ops.tanh(gc)
            h = ops.sigmoid(go) * ops.tanh(c)
            state[i] = (h, c)
            x = h
        logits = ops.matmul(x, self.dense_w) + self.dense_b
        return self._mask(np.asarray(ops.convert_to_numpy(logits), dtype=np.float32), feats)

    def prime(self, events: np.ndarray, controls: np.ndarray,
              initial: list[tuple[Any, Any]] | None = None
              ) -> tuple[list[tuple[Any, Any]], np.ndarray]:
        layers = len(self.units)
        if initial is None:
            start = self.model.zero_states(1)
        else:
            start = [np.asarray(self.ops.convert_to_numpy(a), np.float32)
                     for pair in initial[:layers] for a in pair]
        feats, note_tail = self._note_prime(events, initial)
        logits, states = self.model.run_stateful(
            np.asarray(events, np.int32)[None], np.asarray(controls, np.float32)[None], start,
            notes=None if feats is None else feats[None])
        ops = self.ops
        pairs = [(ops.convert_to_tensor(states[2 * i]), ops.convert_to_tensor(states[2 * i + 1]))
                 for i in range(layers)]
        return [*pairs, *note_tail], logits[0, -1:]

    def tile(self, state: list[tuple[Any, Any]], reps: int) -> list[tuple[Any, Any]]:
        ops = self.ops
        layers = len(self.units)
        out = [(ops.repeat(h, reps, axis=0), ops.repeat(c, reps, axis=0))
               for h, c in state[:layers]]
        return out + [(np.repeat(a, reps, axis=0), np.repeat(b, reps, axis=0))
                      for a, b in state[layers:]]

    def select(self, state: list[tuple[Any, Any]], rows: np.ndarray) -> list[tuple[Any, Any]]:
        ops = self.ops
        layers = len(self.units)
        idx = ops.convert_to_tensor(np.asarray(rows, np.int32))
        out = [(ops.take(h, idx, axis=0), ops.take(c, idx, axis=0)) for h, c in state[:layers]]
        return out + [(a[rows].copy(), b[rows].copy()) for a, b in state[layers:]]

    def sequence_logits(self, events: np.ndarray, controls: np.ndarray) -> np.ndarray:
        state = self.zero_state(1)
        out = np.empty((len(events), self.num_classes), np.float32)
        for k, e in enumerate(np.asarray(events)):
            out[k] = self.step(np.asarray([e]), state, self.first_bias(controls[k]))[0]
        return out


def make_engine(model: Any, backend: str = "numpy") -> NumpyEngine | KerasEngine:
    """The step engine for a network (or the façade that holds it)."""
    model = as_network(model)
    if getattr(model.config, "arch", "lstm") == "transformer":
        from models.performance_rnn.transformer import TransformerEngine

        if backend != "numpy":
            raise CadenzaError("a transformer generates with the numpy engine only")
        return TransformerEngine(model)  # type: ignore[return-value]
    if backend == "numpy":
        return NumpyEngine(model)
    if backend == "keras":
        return KerasEngine(model)
    raise CadenzaError(f"unknown generation engine '{backend}' (numpy or keras)")


def sample(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
           top_p: float | None = None, release: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One event per row; returns (events [B], log-probabilities of them [B]). ``release``
    (nats) is added to the note-off logits first (a followed model's, see
    :class:`~models.performance_rnn.follow.Following`)."""
    z = np.array(logits, dtype=np.float64)
    if release:
        z[..., enc.NOTE_OFF:enc.TIME_SHIFT] += release
    z *= 1.0 / max(temperature, 1e-6)
    z -= z.max(axis=-1, keepdims=True)
    probs = np.exp(z)
    total = probs.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(probs, order, axis=-1) / total
        keep_sorted = np.cumsum(sorted_p, axis=-1) - sorted_p < top_p  # always keeps the top
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        probs = np.where(keep, probs, 0.0)
    u = rng.random(probs.shape[0])
    cdf = np.cumsum(probs, axis=-1)
    events = np.minimum((cdf < (u * cdf[:, -1])[:, None]).sum(axis=-1), probs.shape[1] - 1)
    rows = np.arange(len(events))
    logp = z[rows, events] - np.log(total[:, 0])
    return events.astype(np.int64), logp


def conditioned_release(control: np.ndarray, following: Following) -> float:
    """The note-off bias to sample with under ``control``: ``following.release`` while the
    control conditions (its first entry, the "off" flag, is 0), else none."""
    return following.release if control[0] == 0 else 0.0


@dataclass
class Continuation:
    """One generated continuation.

    ``events``: the sampled events; ``continuation``: their notes (decoded with the 5 s cap;
    times from the primer's end); ``log_likelihood`` of the events; ``boundary``: where the
    primer ends (seconds); ``joined``: the primer followed by the continuation (:func:`join`).
    """

    events: np.ndarray
    continuation: NoteSequence
    log_likelihood: float
    boundary: float
    joined: NoteSequence

    def at_tempo(self, qpm: float) -> Continuation:
        """This take carrying one tempo, ``qpm`` (the session's), with its notes at the same
        seconds: a performance is not quantized, so only the MIDI file's beats change. The
        joined take keeps the primer's time signatures; the continuation alone gets the one in
        force where the primer ends."""
        metre = self.joined.sorted().time_signatures
        in_force = [ts for ts in metre if ts.time <= self.boundary] or metre[:1]
        continuation = self.continuation.with_tempo(qpm)
        if in_force and not continuation.time_signatures:
            continuation.time_signatures = [replace(in_force[-1], time=0.0)]
        return replace(self, continuation=continuation, joined=self.joined.with_tempo(qpm))


def join(primer: NoteSequence, continuation: NoteSequence, boundary: float) -> NoteSequence:
    """The primer followed by a continuation that starts ``boundary`` seconds in (the primer's
    tempo, time signatures and controls are kept)."""
    out = primer.copy()
    out.notes = list(primer.notes) + continuation.shift(boundary).notes
    return out.sorted()


class _Ticker:
    """Progress and cancel inside a generation loop: ``cancel()`` every :data:`CANCEL_EVERY`
    events, ``progress(fraction)`` when the fraction grew by :data:`PROGRESS_STEP`."""

    def __init__(self, progress: Progress | None, cancel: Cancel | None) -> None:
        self.progress = progress
        self.cancel = cancel
        self.count = 0
        self.reported = 0.0

    def __call__(self, fraction: Callable[[np.ndarray], float], steps: np.ndarray) -> None:
        """One event generated; ``fraction(steps)`` is how far the rows' ``steps`` have got."""
        self.count += 1
        if self.cancel is not None and self.count % CANCEL_EVERY == 0 and self.cancel():
            raise Cancelled("generation cancelled")
        if self.progress is not None:
            value = min(1.0, fraction(steps))
            if value >= self.reported + PROGRESS_STEP:
                self.reported = value
                self.progress(value)

    def done(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("generation cancelled")
        if self.progress is not None:
            self.progress(1.0)


def last_velocity(events: np.ndarray) -> int:
    """The velocity the next note-on has after ``events``: their last velocity event's, or 64
    (where a continuation's decoding starts)."""
    vel = np.asarray(events)[np.asarray(events) >= enc.VELOCITY]
    return enc.bin_to_velocity(int(vel[-1]) - enc.VELOCITY + 1) if vel.size else 64


def decode(events: np.ndarray | Sequence[int], velocity: int = 64) -> NoteSequence:
    """Generated events to notes: Magenta's decoding with its 5 s cap on a note
    (:data:`MAX_NOTE_SECONDS`). :class:`models.performance_rnn.live.StreamDecoder` decodes the
    same way one event at a time."""
    return enc.decode(events, velocity=velocity, max_note_duration=MAX_NOTE_SECONDS)


class Continuer:
    """A session that keeps the LSTM warm after a primer.

    >>> session = Continuer(model)               # numpy engine by default
    >>> session.prime(primer_sequence)           # one batched pass over the primer
    >>> takes = session.generate_detailed(10.0, variations=3, seed=1)   # list[Continuation]

    ``model`` is the registry's :class:`~models.performance_rnn.facade.PerformanceRNN` or its
    network. :meth:`generate` returns the continuations' notes only (times start at 0 = the
    end of the primer); :meth:`continue_sequence` returns primer + continuation.
    """

    def __init__(self, model: Any, engine: str = "numpy",
                 following: Following = Following()) -> None:
        self.model = as_network(model)
        self.engine = make_engine(self.model, engine)
        # how the model follows: its release applies while the continuation is conditioned
        self.following = following
        self.primer_events: np.ndarray = EMPTY_PRIMER
        self.primer_end = 0.0
        # What continuations are joined to: the primed sequence (None: the decoded events).
        self.primer: NoteSequence | None = NoteSequence()
        self._state: Any = None
        self._last_logits: np.ndarray | None = None
        self._controls_key: bytes | None = None

    # ---------------------------------------------------------------- primer
    def prime(self, primer: NoteSequence | None, density: float | None = None,
              pitch_histogram: Sequence[float] | str | None = None) -> None:
        """Encode ``primer`` (sustain applied) and warm the state on it in one pass."""
        events = EMPTY_PRIMER
        end = 0.0
        if primer is not None and primer.notes:
            pitched = [n for n in primer.notes if not n.is_drum]
            seq = NoteSequence(notes=pitched, control_changes=primer.control_changes)
            try:
                events = enc.encode(seq)
            except ValueError as exc:
                raise CadenzaError(f"cannot encode the primer: {exc}") from exc
            end = enc.events_duration_steps(events) / enc.STEPS_PER_SECOND
            # Pad to the primer's own end (trailing rests), up to 1 s more.
            total = enc.quantize(min(primer.total_time, end + 1.0))
            gap = total - enc.events_duration_steps(events)
            if gap > 0:
                events = np.concatenate([events, [enc.TIME_SHIFT + gap - 1]]).astype(np.int16)
                end = total / enc.STEPS_PER_SECOND
            if events.size == 0:
                events = EMPTY_PRIMER
        self.primer_events = events
        self.primer_end = end
        self.primer = primer.copy() if primer is not None else NoteSequence()
        self._prime_with(self._controls(density, pitch_histogram))

    def feed(self, events: np.ndarray | Sequence[int]) -> None:
        """Append events (e.g. what the player just played, encoded) to the primer and advance
        the warm state over them only: the live duet's way to keep up without re-priming."""
        new = np.asarray(events, dtype=np.int16)
        if new.size == 0:
            return
        if ((new < 0) | (new >= enc.NUM_CLASSES)).any():
            raise CadenzaError("events outside the 388-event vocabulary")
        if self._state is None:
            self.prime(None)
        control = np.frombuffer(self._controls_key, dtype=np.float32)
        controls = np.repeat(control[None], new.size, axis=0)
        with single_blas_thread():
            self._state, self._last_logits = self.engine.prime(new, controls, self._state)
        self.primer_events = np.concatenate([self.primer_events, new])
        self.primer_end += enc.events_duration_steps(new) / enc.STEPS_PER_SECOND
        self.primer = None  # joined to the decoded events from now on

    def _controls(self, density: float | None,
                  pitch_histogram: Sequence[float] | str | None) -> np.ndarray:
        try:
            hist = pitch_histogram if isinstance(pitch_histogram, str) or pitch_histogram is None \
                else np.asarray(pitch_histogram, dtype=np.float64)
            return enc.control_vector(density, hist)
        except ValueError as exc:
            raise CadenzaError(str(exc)) from exc

    def _prime_with(self, control: np.ndarray) -> None:
        # The control at a position belongs to the next event; the primer's own positions see the
        # same control as the continuation (Magenta gives the requested controls throughout).
        controls = np.repeat(control[None], self.primer_events.size, axis=0)
        with single_blas_thread():
            self._state, self._last_logits = self.engine.prime(self.primer_events, controls)
        self._controls_key = control.tobytes()

    # ---------------------------------------------------------------- generation
    def generate(
        self,
        seconds: float = 10.0,
        temperature: float = 1.0,
        variations: int = 1,
        seed: int | None = None,
        top_p: float | None = None,
        density: float | None = None,
        pitch_histogram: Sequence[float] | str | None = None,
        beam_size: int = 1,
        branch_factor: int = 1,
        steps_per_iteration: int = 1,
        max_events: int | None = None,
    ) -> list[NoteSequence]:
        """``variations`` continuations of ``seconds`` each (times from the primer's end)."""
        return [c.continuation for c in self.generate_detailed(
            seconds, temperature, variations, seed, top_p, density, pitch_histogram, beam_size,
            branch_factor, steps_per_iteration, max_events)]

    def generate_detailed(
        self,
        seconds: float = 10.0,
        temperature: float = 1.0,
        variations: int = 1,
        seed: int | None = None,
        top_p: float | None = None,
        density: float | None = None,
        pitch_histogram: Sequence[float] | str | None = None,
        beam_size: int = 1,
        branch_factor: int = 1,
        steps_per_iteration: int = 1,
        max_events: int | None = None,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> list[Continuation]:
        """``variations`` continuations of ``seconds`` each, generated as one batch (beam
        search: one search per variation). ``progress(fraction)`` is called as they grow and
        ``cancel()`` is asked every few dozen events (true: :class:`Cancelled` is raised)."""
        if not (math.isfinite(seconds) and seconds > 0):
            raise CadenzaError(f"the continuation length must be a positive number of seconds, "
                               f"not {seconds}")
        limits.number(seconds, "the continuation length", 0, limits.CONTINUE_MAX_SECONDS,
                      low_open=True, unit=" s")
        if variations < 1 or beam_size < 1 or branch_factor < 1 or steps_per_iteration < 1:
            raise CadenzaError("variations, beam size, branch factor and steps per iteration "
                               "must be at least 1")
        limits.integer(variations, "variations", 1, limits.MAX_VARIATIONS)
        limits.integer(beam_size, "the beam size", 1, limits.MAX_BEAM_SIZE)
        limits.integer(branch_factor, "the branch factor", 1, limits.MAX_BRANCH_FACTOR)
        limits.integer(steps_per_iteration, "steps per iteration", 1,
                       limits.MAX_STEPS_PER_ITERATION)
        if not (math.isfinite(temperature) and temperature > 0):
            raise CadenzaError(f"temperature must be positive, not {temperature}")
        if top_p is not None and not 0 < top_p <= 1:
            raise CadenzaError("top-p must be in (0, 1]")
        seed = limits.seed(seed, "the seed")
        if self._state is None:
            self.prime(None)
        control = self._controls(density, pitch_histogram)
        if control.tobytes() != self._controls_key:
            self._prime_with(control)
        if not np.isfinite(self._last_logits).all():
            raise CadenzaError("the model's output is NaN or infinite: its weights are broken")
        target = int(round(seconds * enc.STEPS_PER_SECOND))
        limit = max_events or max(64, target * 4)
        rng = np.random.default_rng(seed)
        tick = _Ticker(progress, cancel)
        release = conditioned_release(control, self.following)
        with single_blas_thread():
            if beam_size > 1 or branch_factor > 1:
                rows = self._beam_search(target, limit, temperature, top_p, variations,
                                         beam_size, branch_factor, steps_per_iteration, control,
                                         rng, tick, release)
            else:
                rows = self._sample(target, limit, temperature, top_p, variations, control, rng,
                                    tick, release)
        tick.done()
        velocity = last_velocity(self.primer_events)
        primer = self.primer if self.primer is not None else enc.decode(self.primer_events)
        out = []
        for events, loglik in rows:
            seq = decode(events, velocity)
            out.append(Continuation(np.asarray(events, np.int16), seq, float(loglik),
                                    self.primer_end, join(primer, seq, self.primer_end)))
        return out

    def _sample(self, target: int, limit: int, temperature: float, top_p: float | None,
                batch: int, control: np.ndarray, rng: np.random.Generator,
                tick: _Ticker, release: float = 0.0) -> list[tuple[list[int], float]]:
        engine = self.engine
        state = engine.tile(self._state, batch)
        bias0 = engine.first_bias(np.repeat(control[None], batch, axis=0))
        logits = np.repeat(self._last_logits, batch, axis=0)
        events: list[list[int]] = [[] for _ in range(batch)]
        steps = np.zeros(batch, np.int64)
        loglik = np.zeros(batch)
        done = np.zeros(batch, bool)

        def fraction(steps: np.ndarray) -> float:  # the rows' mean share of the length
            return float(np.minimum(steps, target).sum()) / (target * batch)

        for _ in range(limit):
            ev, lp = sample(logits, rng, temperature, top_p, release)
            for b in np.nonzero(~done)[0]:
                events[b].append(int(ev[b]))
            loglik += np.where(done, 0.0, lp)
            steps += np.where(done, 0, enc.shift_steps(ev))
            done |= steps >= target
            if done.all():
                break
            tick(fraction, steps)
            logits = engine.step(ev, state, bias0)
        return [(_trim_to(e, target), float(ll)) for e, ll in zip(events, loglik, strict=True)]

    def _beam_search(self, target: int, limit: int, temperature: float, top_p: float | None,
                     variations: int, beam_size: int, branch_factor: int,
                     steps_per_iteration: int, control: np.ndarray, rng: np.random.Generator,
                     tick: _Ticker, release: float = 0.0) -> list[tuple[list[int], float]]:
        """Magenta's ``_beam_search``: grow every beam by ``branch_factor`` sampled branches of
        ``steps_per_iteration`` events, keep the ``beam_size`` most likely, repeat; here until the
        best beam reaches the requested length. Variations are independent searches."""
        engine = self.engine
        width = beam_size
        # rows: variation-major [variations * width]
        state = engine.tile(self._state, variations * width)
        logits = np.repeat(self._last_logits, variations * width, axis=0)
        seqs: list[list[int]] = [[] for _ in range(variations * width)]
        scores = np.zeros(variations * width)
        steps = np.zeros(variations * width, np.int64)
        first = True
        produced = 0

        def fraction(steps: np.ndarray) -> float:  # the variations' longest beams, on average
            return float(np.minimum(steps, target).reshape(variations, -1).max(axis=1).mean()
                         ) / target

        while True:
            # Branch: each beam row becomes branch_factor rows (the first iteration starts from
            # beam_size copies of the primer, like Magenta, without branching).
            reps = 1 if first else branch_factor
            rows = np.repeat(np.arange(len(seqs)), reps)
            state = engine.select(state, rows) if reps > 1 else state
            logits = logits[rows]
            seqs = [list(seqs[r]) for r in rows]
            scores = scores[rows]
            steps = steps[rows]
            bias0 = engine.first_bias(np.repeat(control[None], len(rows), axis=0))
            for _ in range(steps_per_iteration):
                ev, lp = sample(logits, rng, temperature, top_p, release)
                active = steps < target
                for b in np.nonzero(active)[0]:
                    seqs[b].append(int(ev[b]))
                scores += np.where(active, lp, 0.0)
                steps += np.where(active, enc.shift_steps(ev), 0)
                tick(fraction, steps)
                logits = engine.step(ev, state, bias0).copy()
            produced += steps_per_iteration
            first = False
            # Prune: keep the best beam_size of each variation's rows.
            per = len(seqs) // variations
            keep = []
            for v in range(variations):
                block = np.arange(v * per, (v + 1) * per)
                best = block[np.argsort(-scores[block], kind="stable")[:width]]
                keep.extend(best.tolist())
            keep_idx = np.asarray(keep)
            state = engine.select(state, keep_idx)
            logits = logits[keep_idx]
            seqs = [seqs[r] for r in keep_idx]
            scores = scores[keep_idx]
            steps = steps[keep_idx]
            best_done = all(steps[v * width] >= target for v in range(variations))
            if best_done or produced >= limit:
                break
        return [(_trim_to(seqs[v * width], target), float(scores[v * width]))
                for v in range(variations)]

    # ---------------------------------------------------------------- convenience
    def continue_sequence(self, primer: NoteSequence, seconds: float = 10.0,
                          **kwargs: Any) -> list[NoteSequence]:
        """Prime on ``primer`` and return primer + continuation for each variation."""
        self.prime(primer, kwargs.get("density"), kwargs.get("pitch_histogram"))
        return [c.joined for c in self.generate_detailed(seconds, **kwargs)]


def _trim_to(events: list[int], target: int) -> list[int]:
    """Cut after the event that reaches ``target`` steps (a last shift is shortened to fit)."""
    total = 0
    for i, e in enumerate(events):
        if enc.TIME_SHIFT <= e < enc.VELOCITY:
            total += e - enc.TIME_SHIFT + 1
            if total >= target:
                over = total - target
                out = events[: i + 1]
                if over:
                    out[-1] = e - over
                    if out[-1] < enc.TIME_SHIFT:
                        out.pop()
                return out
    return events
