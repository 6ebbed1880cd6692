"""Native notes on stderr are held back, and shown after all when the block fails."""

from __future__ import annotations

import os

import pytest

from models.quiet import held_stderr


def test_native_writes_are_dropped(capfd) -> None:
    with held_stderr():
        os.write(2, b"Cannot connect to server socket\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_what_was_held_is_shown_when_the_block_raises(capfd) -> None:
    with pytest.raises(RuntimeError), held_stderr():
        os.write(2, b"libfoo: missing symbol\n")
        raise RuntimeError("import failed")
    assert "libfoo: missing symbol" in capfd.readouterr().err
