"""The Keras backend and the compute devices it sees.

The functions here import Keras (and so the backend, TensorFlow by default): call them from the
worker thread or the CLI, never from the GUI thread. :func:`prepare_environment` is the
exception: it only sets what the backend reads when it is first imported.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import Any

XLA_CACHE_FLAG = "--tf_xla_persistent_cache_directory"


def prepare_environment() -> None:
    """Call before Keras is imported: TensorFlow's native logging is kept to fatal errors (no
    CUDA probing noise on machines without a GPU), and XLA keeps its compiled programs in
    ``~/.cache/cadenza/xla``, so the compiled sampling loops are built once per machine rather
    than once per run (a cold ``cadenza morph`` starts generating about a second sooner).
    With the ``gpu`` extra installed (JAX's CUDA plugin) and no ``KERAS_BACKEND`` set, Keras
    runs on JAX, the backend that extra brings the GPU to."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "KERAS_BACKEND" not in os.environ and _has_jax_cuda():
        os.environ["KERAS_BACKEND"] = "jax"
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if XLA_CACHE_FLAG in flags:
        return
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cadenza" / "xla"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # no writable cache: XLA compiles each run, as it would anyway
    os.environ["TF_XLA_FLAGS"] = f"{flags} {XLA_CACHE_FLAG}={cache}".strip()


def _has_jax_cuda() -> bool:
    """Whether JAX's CUDA plugin (``pip install 'cadenza[gpu]'``) is installed."""
    return any(importlib.util.find_spec(name) is not None
               for name in ("jax_cuda12_plugin", "jax_cuda13_plugin"))


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


def single_blas_thread(controller: Any = None) -> contextlib.AbstractContextManager:
    """Small matrix products are fastest on one BLAS thread (and leave the other cores to the
    audio engine and the GUI). ``controller``: a :func:`blas_controller` kept by a caller that
    asks often (a live render thread, every block): reusing it costs microseconds, where each
    plain call looks at the loaded libraries again."""
    if controller is not None:
        return controller.limit(limits=1, user_api="blas")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is in the lock file
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def blas_controller() -> Any:
    """A ``threadpoolctl.ThreadpoolController`` for :func:`single_blas_thread` (None without
    threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is in the lock file
        return None
    return ThreadpoolController()
