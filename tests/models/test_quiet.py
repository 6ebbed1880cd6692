"""Native notes on stderr are held back, and shown after all when the block fails."""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from models.quiet import held_stderr, is_backend_note, quiet_backend_imports


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


ABSL_NOTES = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"I0000 00:00:1796247965.913819    3066 port.cc:153] oneDNN custom operations are on.\n"
    b"W0000 00:00:1796247965.916982    3066 cudart_stub.cc:31] Could not find cuda drivers\n"
)


def test_a_filtered_hold_drops_only_the_backend_notes(capfd) -> None:
    with held_stderr(drop=is_backend_note):
        os.write(2, ABSL_NOTES)
        os.write(2, b"QPainter::begin: Paint device returned engine == 0\n")
        os.write(2, b"E0000 00:00:1796247965.9 3066 cuda_dnn.cc:8310] Unable to register\n")
    assert capfd.readouterr().err == (
        "QPainter::begin: Paint device returned engine == 0\n"
        "E0000 00:00:1796247965.9 3066 cuda_dnn.cc:8310] Unable to register\n")


def test_a_second_thread_never_waits_for_a_hold(capfd) -> None:
    """The worker importing TensorFlow holds stderr for seconds; the GUI thread entering a hold
    meanwhile goes straight on, and its lines come out when the worker's hold ends."""
    entered, release = threading.Event(), threading.Event()

    def worker() -> None:
        with held_stderr(drop=is_backend_note):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    assert entered.wait(10)
    t0 = time.monotonic()
    with held_stderr():
        os.write(2, b"from the GUI thread\n")
    waited = time.monotonic() - t0
    release.set()
    thread.join(10)
    assert waited < 1.0
    assert capfd.readouterr().err == "from the GUI thread\n"
