"""One module per ``cadenza`` subcommand (see app/cli.py)."""

from __future__ import annotations

import shlex
import sys


def cli_command() -> str | None:
    """The ``cadenza …`` command line this process runs, for a model card's training command
    (None when the process has no arguments, e.g. a test calling a command function)."""
    args = sys.argv[1:]
    return "cadenza " + " ".join(shlex.quote(a) for a in args) if args else None
