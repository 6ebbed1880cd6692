"""Writing files and folders so that a failure never destroys what was there.

Every file Cadenza writes for a user (MIDI, audio, instruments, sessions, model folders) goes
through here: the new content is written beside the target under a hidden temporary name,
flushed to disk, and renamed over the target in one step. A crash, a kill, a full disk or an
exception in the middle leaves the old file exactly as it was (and no temporary file behind when
Python is still alive to clean up). Two writers to one path each replace the whole file: the last
rename wins, never a mix.

A folder (an instrument, a model) is replaced as a whole: the new folder is built beside the
target, then the old one is renamed aside, the new one renamed in, and the old one removed. Only
between those two renames does the target name not exist; the old folder survives under its
aside name if the process dies there, and :func:`replace_folder` puts it back on the next call.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from models.errors import CadenzaError


def _beside(target: Path, tag: str) -> Path:
    return target.with_name(f".{target.name}.{tag}-{uuid.uuid4().hex[:8]}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_parent(target: Path) -> None:
    parent = target.parent
    if not parent.exists():
        raise CadenzaError(f"{target}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise CadenzaError(f"{target}: {parent} is not a folder")
    if target.is_dir():
        raise CadenzaError(f"{target}: is a folder, not a file")


@contextlib.contextmanager
def replacing(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` atomically.

    Write the whole new file to the yielded path. If the block raises, the temporary file is
    removed and ``target`` is untouched. ``OSError`` (full disk, no permission) becomes a one-line
    :class:`CadenzaError` that says the old file was kept.
    """
    target = Path(target)
    _check_parent(target)
    temporary = _beside(target, "part")
    try:
        yield temporary
        if not temporary.exists():
            raise CadenzaError(f"{target}: nothing was written")
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        if target.exists():
            with contextlib.suppress(OSError):
                shutil.copymode(target, temporary)
        os.replace(temporary, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        kept = " (the old file was kept)" if target.exists() else ""
        reason = exc.strerror or str(exc)
        raise CadenzaError(f"{target}: cannot write the file: {reason}{kept}") from exc
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


def write_bytes(target: str | Path, data: bytes) -> None:
    """Write ``data`` as the whole of ``target``, atomically (see :func:`replacing`)."""
    with replacing(target) as temporary:
        temporary.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) as the whole of ``target``, atomically."""
    write_bytes(target, text.encode("utf-8"))


def _restore_aside(target: Path) -> None:
    """Put back a folder left aside by a process that died between the two renames."""
    if target.exists():
        return
    aside = sorted(target.parent.glob(f".{target.name}.old-*"))
    if aside:
        os.replace(aside[-1], target)


@contextlib.contextmanager
def replacing_folder(target: str | Path) -> Iterator[Path]:
    """Yield a new empty folder beside ``target``; on success it replaces ``target`` as a whole.

    If the block raises, the new folder is removed and ``target`` (if any) is untouched.
    """
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        raise CadenzaError(f"{target}: the folder {parent} does not exist")
    if target.exists() and not target.is_dir():
        raise CadenzaError(f"{target}: is a file, not a folder")
    _restore_aside(target)
    building = _beside(target, "new")
    try:
        building.mkdir()
        yield building
        aside = _beside(target, "old") if target.exists() else None
        if aside is not None:
            os.replace(target, aside)
        os.replace(building, target)
        _fsync_dir(parent)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    except OSError as exc:
        _restore_aside(target)
        kept = " (the old folder was kept)" if target.exists() else ""
        reason = exc.strerror or str(exc)
        raise CadenzaError(f"{target}: cannot write the folder: {reason}{kept}") from exc
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
