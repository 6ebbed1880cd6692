"""PerformanceRNN ("Continue"): Magenta's expressive piano model in Keras 3.

Public API::

    from models.performance_rnn import load_from_dir, Continuer
    model = load_from_dir("models/shipped/performance-small")     # or ModelRegistry().load(...)
    session = Continuer(model)            # numpy fast path; Continuer(model, "keras") for keras.ops
    session.prime(primer)                 # NoteSequence; warms the LSTM state in one pass
    takes = session.generate(10.0, temperature=1.0, variations=2, seed=7,
                             density=8.0, pitch_histogram="C major")   # list[NoteSequence]

Submodules: ``encoding`` (Magenta's 388-event vocabulary and control signals), ``data``
(files -> cached events -> windows), ``model`` (config dataclass + Keras network), ``train``,
``generate``, ``evaluate``. Importing this package does not import Keras.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.performance_rnn.generate import Continuer
    from models.performance_rnn.model import PerformanceModel

__all__ = ["Continuer", "PerformanceModel", "load_from_dir"]


def load_from_dir(directory: str | Path) -> PerformanceModel:
    """The model stored in a model folder (config.json + model.weights.h5), for the registry."""
    from models.performance_rnn.model import load_model

    return load_model(directory)


def __getattr__(name: str) -> Any:
    if name == "Continuer":
        from models.performance_rnn.generate import Continuer

        return Continuer
    if name == "PerformanceModel":
        from models.performance_rnn.model import PerformanceModel

        return PerformanceModel
    raise AttributeError(name)
