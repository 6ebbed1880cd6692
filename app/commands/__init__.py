"""One module per ``cadenza`` subcommand (see app/cli.py)."""

from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path


def cli_command() -> str | None:
    """The ``cadenza …`` command line this process runs, for a model card's training command
    (None when the process has no arguments, e.g. a test calling a command function)."""
    args = sys.argv[1:]
    return "cadenza " + " ".join(shlex.quote(a) for a in args) if args else None


def output_file(path: Path, what: str = "file") -> Path:
    """An output path that can be written: its folder exists, is a folder and is writable, and
    the path is not a folder. Checked before any work, so a bad ``-o`` costs no time."""
    from models.errors import CadenzaError

    folder = path.parent
    if not folder.exists():
        raise CadenzaError(f"{path}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise CadenzaError(f"{path}: {folder} is not a folder")
    if what == "file" and path.is_dir():
        raise CadenzaError(f"{path}: is a folder, not a file")
    if what == "folder" and path.exists() and not path.is_dir():
        raise CadenzaError(f"{path}: is a file, not a folder")
    try:  # a real probe: permissions, a read-only file system, /proc, ...
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.probe-")
        probe.close()
    except OSError as exc:
        raise CadenzaError(f"{path}: cannot write in {folder} "
                           f"({exc.strerror or exc})") from None
    return path


def output_folder(path: Path) -> Path:
    """A folder to write into, made with its parents if missing: the nearest folder that exists
    above it must be a writable folder (not a file). Checked before any work."""
    from models.errors import CadenzaError

    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise CadenzaError(f"{path}: is a file, not a folder")
        return output_file(path / "x", "file").parent
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise CadenzaError(f"{path}: {above} is a file, not a folder")
    output_file(above / "x", "file")
    return path
