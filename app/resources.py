"""Where the app's own files are: the example clips and the icon.

A checkout (and an editable install) reads them from ``assets/``. A wheel carries them as data
files, installed under ``<prefix>/share/cadenza`` (see ``[tool.setuptools.data-files]`` in
``pyproject.toml``), so an installed Cadenza finds them there.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT_ASSETS = Path(__file__).resolve().parents[1] / "assets"


def data_dirs(prefixes: tuple[str, ...] | None = None) -> list[Path]:
    """Folders that may hold Cadenza's data, the checkout first."""
    prefixes = prefixes if prefixes is not None else (sys.prefix, sys.base_prefix)
    out = [CHECKOUT_ASSETS]
    for prefix in dict.fromkeys(prefixes):
        out.append(Path(prefix) / "share" / "cadenza")
    return out


def _first(relative: str, prefixes: tuple[str, ...] | None) -> Path:
    candidates = [d / relative for d in data_dirs(prefixes)]
    return next((c for c in candidates if c.exists()), candidates[0])


def examples_dir(prefixes: tuple[str, ...] | None = None) -> Path:
    """The example clips' folder (the checkout's path when none exists)."""
    return _first("examples", prefixes)


def icon_path(prefixes: tuple[str, ...] | None = None) -> Path:
    """The app icon (SVG)."""
    return _first("cadenza.svg", prefixes)
