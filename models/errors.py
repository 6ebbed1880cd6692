"""The one error type that Cadenza raises for bad input and missing resources."""

from __future__ import annotations


class CadenzaError(Exception):
    """A problem the user can act on, described in one line.

    Everything in ``models`` that rejects input (a corrupt MIDI file, an empty WAV, a missing
    soundfont, a model that is not there) raises this, so that the CLI can print the message and
    exit non-zero and the app can show it, without a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self)


class Cancelled(CadenzaError):
    """Work (generation, synthesis) stopped because its caller's ``cancel()`` said so."""
