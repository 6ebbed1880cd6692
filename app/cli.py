"""The ``cadenza`` command: no arguments opens the app; subcommands run headless.

Each subcommand lives in ``app/commands/<name>.py`` with ``register(subparsers)``; ``train`` and
``evaluate`` take a model family as a sub-subcommand, which a family's command module adds with
``register_train(subparsers)`` / ``register_evaluate(subparsers)``. A handler is stored with
``parser.set_defaults(handler=fn)`` and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from models.errors import CadenzaError

# Command modules in the order their subcommands appear in --help.
COMMAND_MODULES = [
    "app.commands.render",
    "app.commands.performance",
    "app.commands.music_vae",
    "app.commands.nsynth",
    "app.commands.live",
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
            "Run without arguments to open the app."
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
        parser.exit(0, _version() + "\n")


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
    if not args_list or args_list[0].startswith("-psn") or args_list == ["--gui"]:
        from app.main_window import end_process, run_app

        end_process(run_app(args_list))
    parser = build_parser()
    args = parser.parse_args(args_list)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except CadenzaError as exc:
        print(f"cadenza: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cadenza: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
