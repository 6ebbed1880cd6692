"""``CADENZA_SCREENSHOT=PATH.png cadenza``: the window saves a picture of itself once it has
settled, then the app quits (exit 0, or 1 when the picture could not be written).

How a packaged build is checked without a display (``QT_QPA_PLATFORM=offscreen``, see
``tests/test_packaged_build.py``), and a way to remake the README's screenshot.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

SCREENSHOT_ENV = "CADENZA_SCREENSHOT"
SETTLE_MS = 2500  # the first paint, the status bar's device check, the model list


def screenshot_on_shown(
    environ: Mapping[str, str] = os.environ,
) -> Callable[[Any], None] | None:
    """What ``run_app`` calls with the shown window when ``CADENZA_SCREENSHOT`` names a file."""
    target = environ.get(SCREENSHOT_ENV, "")
    if not target:
        return None

    def shoot(window: Any) -> None:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication

        def grab() -> None:
            from models.errors import CadenzaError
            from models.files import replacing

            code = 0
            try:
                with replacing(Path(target).expanduser()) as part:
                    if not window.grab().save(str(part), "PNG"):
                        raise CadenzaError(f"cannot write the screenshot {target}")
            except CadenzaError as exc:
                print(f"cadenza: error: {exc}", file=sys.stderr)
                code = 1
            QApplication.instance().exit(code)

        QTimer.singleShot(SETTLE_MS, grab)

    return shoot
