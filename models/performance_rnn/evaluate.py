"""Teacher-forced NLL over whole MIDI files, the state carried across each file.

Conditioning is switched off (the optional-conditioning flag) for every position: Magenta's
note-density and pitch-histogram controls describe the window that *starts* at each event, i.e.
the music still to come, so feeding them would leak the future into the score. Files are
batched (rows of similar length, padding masked out) and run in chunks that carry the LSTM state
(and, for models that read it, the note state: which pitches sound, from the file's start).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import CadenzaError
from models.performance_rnn import data as data_lib
from models.performance_rnn import encoding as enc
from models.performance_rnn import notes as notes_lib


def evaluate_events(model: Any, sequences: Sequence[np.ndarray],
                    chunk: int = 1024, batch: int = 16) -> dict[str, float]:
    """Sum of NLL, correct predictions and events over ``sequences`` (each >= 2 events)."""
    seqs = sorted((np.asarray(s, np.int32) for s in sequences if len(s) >= 2), key=len)
    if not hasattr(model, "run_stateful"):  # a transformer: no state to carry
        return _evaluate_windows(model, seqs, batch)
    total_nll = 0.0
    correct = 0
    count = 0
    off = np.zeros(enc.CONTROL_SIZE, np.float32)
    off[0] = 1.0
    for start in range(0, len(seqs), batch):
        group = seqs[start:start + batch]
        rows = len(group)
        length = max(len(s) for s in group) - 1
        x = np.zeros((rows, length), np.int32)
        y = np.zeros((rows, length), np.int32)
        mask = np.zeros((rows, length), bool)
        for r, s in enumerate(group):
            x[r, :len(s) - 1] = s[:-1]
            y[r, :len(s) - 1] = s[1:]
            mask[r, :len(s) - 1] = True
        states = model.zero_states(rows)
        note_states = [notes_lib.NoteState() for _ in range(rows)]
        for c0 in range(0, length, chunk):
            xs, ys, ms = x[:, c0:c0 + chunk], y[:, c0:c0 + chunk], mask[:, c0:c0 + chunk]
            controls = np.broadcast_to(off, (*xs.shape, enc.CONTROL_SIZE))
            feats = None
            if model.uses_notes:
                pairs = [notes_lib.note_features(row, st) for row, st in zip(xs, note_states,
                                                                             strict=True)]
                feats = np.stack([f for f, _ in pairs])
                note_states = [st for _, st in pairs]
            logits, states = model.run_stateful(xs, np.ascontiguousarray(controls), states,
                                                notes=feats)
            nll, right, n = _score(logits, ys, ms)
            total_nll += nll
            correct += right
            count += n
    return {"nll_sum": total_nll, "correct": correct, "events": count}


def _score(logits: np.ndarray, ys: np.ndarray, ms: np.ndarray) -> tuple[float, int, int]:
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(logp, ys[..., None], axis=-1)[..., 0]
    return (-float(picked[ms].sum()), int((logits.argmax(axis=-1) == ys)[ms].sum()),
            int(ms.sum()))


def _evaluate_windows(model: Any, seqs: list[np.ndarray], batch: int) -> dict[str, float]:
    """As :func:`evaluate_events` for a network with a bounded context (a transformer): each
    sequence in windows of ``max_len`` events that overlap by half, every event scored once,
    with at least half a window of context after the first window."""
    width = int(model.shape.max_len)
    hop = max(1, width // 2)
    off = np.zeros(enc.CONTROL_SIZE, np.float32)
    off[0] = 1.0
    windows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
    for s in seqs:
        x, y = s[:-1], s[1:]
        feats = notes_lib.note_features(x)[0] if model.uses_notes else None
        start = 0
        while True:
            end = min(start + width, len(x))
            scored = np.zeros(end - start, bool)
            scored[0 if start == 0 else width - hop:] = True
            windows.append((x[start:end], y[start:end], scored,
                            None if feats is None else feats[start:end]))
            if end >= len(x):
                break
            start += hop
    totals = [0.0, 0, 0]
    for b0 in range(0, len(windows), batch):
        group = windows[b0:b0 + batch]
        length = max(len(w[0]) for w in group)
        xs = np.zeros((len(group), length), np.int32)
        ys = np.zeros((len(group), length), np.int32)
        ms = np.zeros((len(group), length), bool)
        notes = (np.zeros((len(group), length, notes_lib.NOTE_FEATURE_SIZE), np.float32)
                 if model.uses_notes else None)
        for r, (wx, wy, wm, wf) in enumerate(group):
            xs[r, :len(wx)], ys[r, :len(wx)], ms[r, :len(wx)] = wx, wy, wm
            if notes is not None and wf is not None:
                notes[r, :len(wx)] = wf
        controls = np.ascontiguousarray(np.broadcast_to(off, (*xs.shape, enc.CONTROL_SIZE)))
        for k, v in enumerate(_score(model.logits(xs, controls, notes), ys, ms)):
            totals[k] += v
    return {"nll_sum": float(totals[0]), "correct": int(totals[1]), "events": int(totals[2])}


def evaluate_dir(model: Any, data_dir: str | Path, chunk: int = 1024,
                 batch: int = 32) -> dict[str, Any]:
    """``{"nll_per_event", "accuracy", "events", "files"}`` over every MIDI file in the folder
    (``model``: the registry's PerformanceRNN façade or its network)."""
    model = getattr(model, "network", model)
    files = data_lib.find_midi_files(data_dir)
    if not files:
        raise CadenzaError(f"no MIDI files in {data_dir}")
    encoded = data_lib.load_encoded(files, cache_dir=None)
    if not encoded.events:
        raise CadenzaError(f"no readable MIDI file with notes in {data_dir}")
    sums = evaluate_events(model, encoded.events, chunk=chunk, batch=batch)
    n = max(sums["events"], 1)
    nll = sums["nll_sum"] / n
    return {
        "nll_per_event": round(nll, 4),
        "accuracy": round(sums["correct"] / n, 4),
        "events": sums["events"],
        "files": len(encoded.names),
        "perplexity": round(math.exp(nll), 3),
        "conditioning": "off (Magenta's controls look at upcoming events)",
    }
