"""Cadenza (``run_app``, the real app) in a process of its own, for the session tests.

    python tests/app/session_app.py SETTINGS_DIR SCREENSHOT [FILE ...]

``XDG_STATE_HOME`` (set by the test) says where the session is autosaved. With files, the app
opens them, shows two Continue variations made of the first one (as a generated result would be)
and sets the Continue length to 7 s; once the autosave holding all that is written it saves a
screenshot and prints ``SAVED {...}``, then waits (the test kills it with SIGKILL). Without
files, it prints ``RESTORED {...}`` (what the window shows after its start) with a screenshot,
and quits.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def say(tag: str, **data: Any) -> None:
    print(tag, json.dumps(data), flush=True)


def shown(window: Any) -> dict[str, Any]:
    ws = window.workspaces["Continue"]
    return {"clips": [c.name for c in window.library.clips()],
            "kinds": [c.kind for c in window.library.clips()],
            "variations": [len(card.sequence.notes) for card in ws.cards],
            "length": ws.length.value(),
            "current": window.library.current_clip().name
            if window.library.current_clip() else None}


def main() -> int:
    settings_dir, screenshot = sys.argv[1:3]
    files = [Path(p) for p in sys.argv[3:]]
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, settings_dir)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)

    from app.main_window import run_app

    def on_shown(window: Any) -> None:
        def grab() -> None:
            QApplication.processEvents()
            window.grab().save(screenshot)

        if not files:
            def report() -> None:
                grab()
                say("RESTORED", **shown(window))
                window.close()

            QTimer.singleShot(300, report)
            return

        added = window.open_files(files)
        midi = next(c for c in added if c.is_midi)
        seq = midi.sequence
        ws = window.workspaces["Continue"]
        ws.length.setValue(7.0)
        ws.show_variations([seq, seq.trim(0.0, seq.total_time / 2)],
                           boundary=seq.total_time / 2)
        window.library.select(midi)
        expected = shown(window)
        started = time.monotonic()

        def saved(_path: str) -> None:
            if window.autosave_path.is_file() and time.monotonic() - started > 0.0:
                try:
                    window.session_saved.disconnect(saved)
                except (RuntimeError, TypeError):
                    pass
                grab()
                say("SAVED", **expected)

        window.session_saved.connect(saved)

    return run_app([], on_shown=on_shown)


if __name__ == "__main__":
    sys.exit(main())
