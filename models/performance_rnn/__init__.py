"""PerformanceRNN ("Continue"): Magenta's expressive piano model in Keras 3.

Public API::

    from models.registry import ModelRegistry
    model = ModelRegistry().load("performance-small", "performance")    # a PerformanceRNN
    takes = model.generate(primer, 10.0, temperature=1.0, variations=2, seed=7,
                           density=8.0, pitch_histogram="C major",
                           progress=report, cancel=should_stop)     # list[Continuation]
    takes[0].continuation, takes[0].joined, takes[0].events, takes[0].log_likelihood
    session = model.session()             # a Continuer: prime once, generate often
    stream = model.stream()               # live: feed the player's notes, stream the answer

Submodules: ``encoding`` (Magenta's 388-event vocabulary and control signals), ``notes`` (the
note state), ``data`` (files -> cached events -> windows), ``model`` (config dataclass + Keras
network), ``train``, ``generate`` (engines, sampling, beam search, :class:`Continuer`,
:class:`Continuation`), ``live`` (the streaming form: :class:`LiveEncoder`,
:class:`StreamingContinuer`, :class:`StreamDecoder`), ``facade`` (:class:`PerformanceRNN`),
``evaluate``. Importing this package does not import Keras.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.performance_rnn.facade import PerformanceRNN
    from models.performance_rnn.generate import Continuation, Continuer
    from models.performance_rnn.model import PerformanceModel

__all__ = ["Continuation", "Continuer", "PerformanceModel", "PerformanceRNN", "load_from_dir"]


def load_from_dir(directory: str | Path, name: str | None = None) -> PerformanceRNN:
    """The :class:`PerformanceRNN` of a model folder (config.json + model.weights.h5); the
    registry calls this after its checks (use :meth:`ModelRegistry.load`)."""
    from models.checkpoint import read_model_dir
    from models.performance_rnn.facade import PerformanceRNN
    from models.performance_rnn.follow import Following
    from models.performance_rnn.model import load_model

    following = Following.from_json(read_model_dir(directory).get("follow"))
    return PerformanceRNN(load_model(directory), name or Path(directory).name, directory,
                          following)


def __getattr__(name: str) -> Any:
    if name in ("Continuer", "Continuation"):
        from models.performance_rnn import generate

        return getattr(generate, name)
    if name == "PerformanceModel":
        from models.performance_rnn.model import PerformanceModel

        return PerformanceModel
    if name == "PerformanceRNN":
        from models.performance_rnn.facade import PerformanceRNN

        return PerformanceRNN
    raise AttributeError(name)
