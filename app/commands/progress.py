"""Progress of a long command on a terminal: a bar (rich) on stderr while the job runs.

Off a terminal (a pipe, a file, a test) nothing is drawn and nothing is imported, so scripted
output stays clean.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

Report = Callable[..., None]


class _Bar:
    """``report(fraction, stage=None)``: the bar's share done (None: unknown) and its label."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task

    def __call__(self, fraction: float | None = None, stage: str | None = None) -> None:
        changes: dict[str, Any] = {}
        if stage is not None:
            changes["description"] = stage
        if fraction is not None:
            changes["completed"] = max(0.0, min(1.0, float(fraction))) * 100
        self._progress.update(self._task, **changes)


def _silent(fraction: float | None = None, stage: str | None = None) -> None:
    return None


@contextlib.contextmanager
def progress_bar(stage: str, stream: Any = None) -> Iterator[Report]:
    """Yield ``report(fraction=None, stage=None)``; a bar on ``stream`` (stderr) when it is a
    terminal, else a function that does nothing."""
    stream = sys.stderr if stream is None else stream
    if not getattr(stream, "isatty", lambda: False)():
        yield _silent
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    console = Console(file=stream)
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(stage, total=100)
        yield _Bar(progress, task)
