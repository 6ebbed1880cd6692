"""Reconstruction accuracy and KL on windows the model never trained on.

Accuracy is per step, of the greedy autoregressive decode from the posterior mean (no teacher
forcing): each step's input is the model's own previous choice, as when the app decodes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import CadenzaError
from models.music_vae import data as data_lib


def reconstruction_metrics(model: Any, windows: np.ndarray, batch_size: int = 256,
                           backend: str = "numpy") -> dict[str, float | int]:
    """``{"reconstruction_accuracy", "kl", "examples"}`` over label ``windows`` [n, steps]."""
    from models.music_vae.model import MusicVAENet

    windows = np.asarray(windows, np.int64)
    if len(windows) == 0:
        raise CadenzaError("no windows to evaluate on")
    correct, kls = 0, []
    for i in range(0, len(windows), batch_size):
        chunk = windows[i:i + batch_size]
        mu, sigma = model.encode(chunk, backend=backend)
        decoded = model.decode_labels(mu, 0.0, backend=backend)
        correct += int(np.sum(decoded == chunk))
        kl = MusicVAENet.kl_divergence(mu, sigma)
        kls.append(np.asarray(kl, np.float64).reshape(-1))
    return {
        "reconstruction_accuracy": float(correct / windows.size),
        "kl": float(np.mean(np.concatenate(kls))),
        "examples": int(len(windows)),
    }


def evaluate_folder(model: Any, folder: str | Path, limit: int | None = None,
                    any_meter: bool = False) -> dict[str, Any]:
    """Metrics over every window of every MIDI file found recursively in ``folder`` (4/4 and
    2/2 only unless ``any_meter``)."""
    from dataclasses import replace
    files = data_lib.find_midi_files(folder)
    if not files:
        raise CadenzaError(f"no MIDI files under {folder}")
    converter = replace(model.converter, any_meter=any_meter)
    parts = []
    for f in files:
        try:
            w = data_lib.midi_file_windows(f, converter)
        except CadenzaError:
            continue
        if len(w):
            parts.append(w)
    if not parts:
        raise CadenzaError(f"no {model.config.slice_bars}-bar {model.kind} windows in {folder}")
    windows = np.concatenate(parts)
    if limit is not None and len(windows) > limit:
        rng = np.random.default_rng(0)
        windows = windows[np.sort(rng.choice(len(windows), limit, replace=False))]
    out: dict[str, Any] = dict(reconstruction_metrics(model, windows))
    out["files"] = len(files)
    return out


def to_json(metrics: dict[str, Any]) -> str:
    return json.dumps(metrics, sort_keys=True)
