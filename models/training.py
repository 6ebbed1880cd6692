"""What every model family's training shares: multi-device set-up and resumable optimizer state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.errors import CadenzaError


def setup_distribution() -> str | None:
    """Data parallelism over every device when the backend is JAX and there are several.

    Uses Keras' own distribution API (``keras.distribution.DataParallel``); returns a line that
    says so, or None with one device or another backend.
    """
    import keras

    if keras.backend.backend() != "jax":
        return None
    devices = keras.distribution.list_devices()
    if len(devices) < 2:
        return None
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return f"DataParallel over {len(devices)} devices"


def save_optimizer_state(optimizer: Any, path: Path) -> None:
    """Write the optimizer's variables (its step among them) to ``path`` (.npz), atomically."""
    from keras import ops

    values = {f"v{i:04d}": np.asarray(ops.convert_to_numpy(v))
              for i, v in enumerate(optimizer.variables)}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **values)
    tmp.replace(path)


def load_optimizer_state(optimizer: Any, path: Path) -> None:
    """Restore what :func:`save_optimizer_state` wrote into an optimizer built for the model."""
    variables = optimizer.variables
    with np.load(path) as saved:
        keys = sorted(saved.files)
        if len(keys) != len(variables):
            raise CadenzaError(f"{path} does not fit this model's optimizer")
        for key, var in zip(keys, variables, strict=True):
            var.assign(saved[key])
