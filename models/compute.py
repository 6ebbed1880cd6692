"""The Keras backend and the compute devices it sees.

Importing this module imports Keras (and so the backend, TensorFlow by default): call it from the
worker thread or the CLI, never from the GUI thread.
"""

from __future__ import annotations

import os


def backend_name() -> str:
    import keras

    return str(keras.backend.backend())


def compute_devices() -> list[str]:
    """Devices the backend can run on, GPUs first, e.g. ``["GPU: NVIDIA H100", "CPU"]``."""
    backend = backend_name()
    gpus: list[str] = []
    if backend == "tensorflow":
        import tensorflow as tf

        for dev in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(dev)
            gpus.append("GPU: " + str(details.get("device_name", dev.name)))
    elif backend == "jax":
        import jax

        gpus = [f"GPU: {d.device_kind}" for d in jax.devices() if d.platform == "gpu"]
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            gpus = [f"GPU: {torch.cuda.get_device_name(i)}" for i in range(count)]
    return gpus + ["CPU"]


def preferred_device() -> str:
    """What work runs on: the first GPU when there is one (unless CADENZA_DEVICE=cpu)."""
    if os.environ.get("CADENZA_DEVICE", "auto").lower() == "cpu":
        return "CPU"
    return compute_devices()[0]


def force_cpu() -> None:
    """Hide GPUs from the backend; call before the backend is imported."""
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
