"""Long commands draw a progress bar on a terminal, and nothing off one."""

from __future__ import annotations

import io

from app.commands.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_on_a_terminal_and_nothing_in_a_pipe() -> None:
    tty = Terminal()
    with progress_bar("loading the model", stream=tty) as report:
        report(0.0, "decoding")
        for i in range(1, 11):
            report(i / 10)
    drawn = tty.getvalue()
    assert "decoding" in drawn and "100%" in drawn
    pipe = io.StringIO()
    with progress_bar("loading the model", stream=pipe) as report:
        report(0.5, "decoding")
    assert pipe.getvalue() == ""
