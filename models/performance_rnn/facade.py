"""The loaded PerformanceRNN: what :meth:`models.registry.ModelRegistry.load` returns for the
"performance" family, with the same shape as the other families' façades (``name``, ``family``,
``path``, ``config``, ``close()``).

>>> model = ModelRegistry().load("performance-small", "performance")
>>> takes = model.generate(primer, 20.0, variations=3, seed=1,
...                        progress=print, cancel=lambda: False)     # list[Continuation]
>>> takes[0].joined                                                 # primer + continuation
>>> stream = model.stream()          # live use: feed the player's notes, sample the answer

Importing this module does not import Keras (the network passed in already did).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.sequence import NoteSequence

if TYPE_CHECKING:
    from models.performance_rnn.follow import Following
    from models.performance_rnn.generate import Cancel, Continuation, Continuer, Progress
    from models.performance_rnn.live import StreamingContinuer
    from models.performance_rnn.model import PerformanceConfig, PerformanceModel


class PerformanceRNN:
    """A trained PerformanceRNN (Continue and the live duet)."""

    family = "performance"

    def __init__(self, network: PerformanceModel, name: str = "",
                 path: str | Path | None = None, following: Following | None = None) -> None:
        from models.performance_rnn.follow import Following

        self.network = network
        # how this model follows a primer or a player (its folder's "follow", measured)
        self.following: Following = following or Following()
        self.config: PerformanceConfig = network.config
        self.path = None if path is None else Path(path)
        self.name = name or (self.path.name if self.path is not None else self.config.name)

    def __repr__(self) -> str:
        return f"PerformanceRNN({self.name!r}, layers={list(self.config.layers)})"

    # ------------------------------------------------------------------ Continue
    def session(self, engine: str = "numpy") -> Continuer:
        """A :class:`~models.performance_rnn.generate.Continuer`: prime once, generate often."""
        from models.performance_rnn.generate import Continuer

        return Continuer(self.network, engine, following=self.following)

    def generate(
        self,
        primer: NoteSequence | None,
        seconds: float = 10.0,
        temperature: float = 1.0,
        variations: int = 1,
        seed: int | None = None,
        top_p: float | None = None,
        density: float | str | None = None,
        pitch_histogram: Sequence[float] | str | None = None,
        beam_size: int = 1,
        branch_factor: int = 1,
        steps_per_iteration: int = 1,
        engine: str = "numpy",
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> list[Continuation]:
        """``variations`` continuations of ``primer``, each ``seconds`` long: the one way both
        the Continue workspace and ``cadenza continue`` generate (same arguments, same notes).

        ``progress(fraction)`` is called as generation advances; ``cancel()`` is asked every
        few dozen events and, when true, stops it with :class:`models.errors.Cancelled`.
        ``density`` and ``pitch_histogram`` may be ``"primer"``: taken from the primer itself,
        its last bars weighing most (:mod:`models.performance_rnn.follow`).
        """
        from models.performance_rnn.follow import resolve_controls

        density, pitch_histogram = resolve_controls(primer, density, pitch_histogram,
                                                    self.following)
        session = self.session(engine)
        session.prime(primer, density, pitch_histogram)
        return session.generate_detailed(
            seconds, temperature=temperature, variations=variations, seed=seed, top_p=top_p,
            density=density, pitch_histogram=pitch_histogram, beam_size=beam_size,
            branch_factor=branch_factor, steps_per_iteration=steps_per_iteration,
            progress=progress, cancel=cancel)

    # ------------------------------------------------------------------ live
    def stream(self, engine: str = "numpy") -> StreamingContinuer:
        """The streaming form for live playing (:mod:`models.performance_rnn.live`)."""
        from models.performance_rnn.live import StreamingContinuer

        return StreamingContinuer(self.network, engine, following=self.following)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, data_dir: str | Path) -> dict[str, Any]:
        """Teacher-forced NLL per event over the MIDI files under ``data_dir``."""
        from models.performance_rnn.evaluate import evaluate_dir

        return evaluate_dir(self.network, data_dir)

    def close(self) -> None:
        """Nothing to release (the weights go with the object)."""
