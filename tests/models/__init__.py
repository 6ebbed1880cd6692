"""Tests of the core package; helpers shared by its test modules."""

from __future__ import annotations

from pathlib import Path


def card_text(folder: Path) -> str:
    """A model folder's card with its line breaks as single spaces (cards are wrapped at 100)."""
    return " ".join((folder / "MODEL_CARD.md").read_text().split())
