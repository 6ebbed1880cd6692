"""The ``cadenza`` command: no arguments opens the app; ``cadenza FILE...`` opens it with those
MIDI and audio files in the clip library (what the desktop entry's ``Exec=cadenza %F`` runs);
subcommands run headless.

Each subcommand lives in ``app/commands/<name>.py`` with ``register(subparsers)``; ``train`` and
``evaluate`` take a model family as a sub-subcommand, which a family's command module adds with
``register_train(subparsers)`` / ``register_evaluate(subparsers)``. A handler is stored with
``parser.set_defaults(handler=fn)`` and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from app.commands.output import claim_stdout, is_stdout
from models.errors import CadenzaError

# Command modules in the order their subcommands appear in --help.
COMMAND_MODULES = [
    "app.commands.render",
    "app.commands.performance",
    "app.commands.music_vae",
    "app.commands.nsynth",
    "app.commands.ddsp",
    "app.commands.live",
    "app.commands.play",
    "app.commands.dataset",
    "app.commands.info",
]


class Parser(argparse.ArgumentParser):
    """argparse's parser, its usage errors in one line like every other error."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("cadenza").strip()
        self.exit(2, f"cadenza: error: {where + ': ' if where else ''}{message} "
                     f"(see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="cadenza",
        description=(
            "Cadenza: continue, interpolate and morph music with generative models. "
            "Run without arguments to open the app, or as 'cadenza FILE...' to open it with "
            "those MIDI and audio files in the clip library."
        ),
    )
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = []
    for name in COMMAND_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    for module in modules:
        if hasattr(module, "register"):
            module.register(sub)
    train = sub.add_parser("train", help="train a model on a folder of files")
    train_sub = train.add_subparsers(dest="family", metavar="FAMILY", required=True)
    evaluate = sub.add_parser("evaluate", help="measure a model on files it never trained on")
    eval_sub = evaluate.add_subparsers(dest="family", metavar="MODEL", required=True)
    for module in modules:
        if hasattr(module, "register_train"):
            module.register_train(train_sub)
        if hasattr(module, "register_evaluate"):
            module.register_evaluate(eval_sub)
    return parser


class _Version(argparse.Action):
    """``--version``, looked up only when asked for (importlib.metadata costs 40 ms at every
    start otherwise)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(_version())  # on stdout, as argparse's own version action
        parser.exit(0)


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"cadenza {version('cadenza')}"
    except Exception:  # noqa: BLE001 - running from a source tree
        return "cadenza (source tree)"


def main(argv: Sequence[str] | None = None) -> int:
    from models.compute import prepare_environment

    prepare_environment()
    from models.quiet import quiet_backend_imports

    # Whenever the app's worker or a command gets to TensorFlow, its start-up notes stay out.
    quiet_backend_imports()
    args_list = list(sys.argv[1:] if argv is None else argv)
    files: list[str] | None = None
    if not args_list or args_list[0].startswith("-psn") or args_list == ["--gui"]:
        files = []
    else:
        files = file_arguments(args_list)
    if files is not None:
        problem = display_problem()
        if problem:
            print(f"cadenza: error: {problem}", file=sys.stderr)
            return 2
        from app.main_window import end_process, run_app

        qt_args = [] if files else args_list
        end_process(run_app(qt_args, files=[Path(f) for f in files]))
    parser = build_parser()
    args = parser.parse_args(args_list)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    if isinstance(getattr(args, "output", None), str) and is_stdout(args.output):
        # The result's bytes alone on stdout, whatever a library prints on the way.
        args.output = claim_stdout()
    try:
        return int(handler(args) or 0)
    except CadenzaError as exc:
        print(f"cadenza: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cadenza: interrupted", file=sys.stderr)
        return 130


OPENABLE_SUFFIXES = (".mid", ".midi", ".musicxml", ".xml", ".mxl", ".wav", ".flac", ".ogg", ".mp3",
                     ".aiff", ".aif")
"""Files ``cadenza FILE...`` recognizes by name even when missing (``app.clips`` reads them)."""


def file_arguments(args: Sequence[str]) -> list[str] | None:
    """The arguments as files to open (``cadenza FILE...``), or None when they are a command
    line for a subcommand. They are files when none is an option, the first is not a command's
    name, and at least one exists or has a MIDI or audio file's extension (so a mistyped
    command still gets argparse's "invalid choice")."""
    if not args or any(a.startswith("-") for a in args):
        return None
    parser = build_parser()
    commands: set[str] = set()
    for action in parser._actions:  # the subcommands' names
        if isinstance(action, argparse._SubParsersAction):
            commands.update(action.choices)
    if args[0] in commands:
        return None
    if not any(Path(a).exists() or Path(a).suffix.lower() in OPENABLE_SUFFIXES for a in args):
        return None
    return list(args)


def display_problem(environ: dict[str, str] | None = None,
                    platform: str | None = None) -> str | None:
    """Why the window cannot open here (no display on Linux and no headless Qt platform), or
    None. Qt itself would abort the process (exit 134) instead of saying so."""
    env = os.environ if environ is None else environ
    if not (platform or sys.platform).startswith("linux"):
        return None
    qpa = env.get("QT_QPA_PLATFORM", "").strip()
    plugins = [p.split(":", 1)[0].strip() for p in qpa.split(";") if p.strip()]
    needs_display = not plugins or all(p in ("xcb", "wayland", "wayland-egl") for p in plugins)
    if not needs_display or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return ("cannot open the window: no display (neither DISPLAY nor WAYLAND_DISPLAY is set); "
            "run it in a desktop session, set QT_QPA_PLATFORM=offscreen, or use a command "
            "(cadenza --help)")


if __name__ == "__main__":
    sys.exit(main())
