"""Native notes on stderr are held back, and shown after all when the block fails."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

from models.quiet import held_stderr, quiet_backend_imports


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


def test_the_first_import_of_a_noisy_module_is_quiet(tmp_path: Path, capfd,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cadenza_noisy_native.py").write_text(
        "import os\nos.write(2, b'I0000 oneDNN custom operations are on\\n')\nVALUE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = list(sys.meta_path)
    quiet_backend_imports(("cadenza_noisy_native",))
    try:
        module = importlib.import_module("cadenza_noisy_native")
        assert module.VALUE == 3
        assert capfd.readouterr().err == ""
        assert sys.meta_path == before  # the hook is gone once its module is in
    finally:
        sys.modules.pop("cadenza_noisy_native", None)
