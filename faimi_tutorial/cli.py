"""The ``faimi`` command.

``faimi --version`` and ``faimi --help``; each chapter's capability adds a
subcommand through a ``register(subparsers)`` function in :data:`SUBCOMMANDS`.
Subcommand modules are imported only when their command runs (or its ``--help`` is
asked for), so ``faimi --version`` and ``faimi --help`` answer without importing
torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
from collections.abc import Sequence

from ._version import __version__

#: Modules that provide a subcommand: each has ``register(subparsers)`` which adds
#: its parser and sets ``func`` (called with the parsed namespace, returns an exit
#code).
SUBCOMMANDS: tuple[str, ...] = ("data.datasets", "training.loop", "report")

#: Command name -> (module of :data:`SUBCOMMANDS`, one-line help shown by ``faimi
#--help``
#: without importing the module).
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": (
        "data.datasets",
        "generate a synthetic cohort with known biases and write it as a BIDS dataset",
    ),
    "train": (
        "training.loop",
        "train a classifier on a dataset folder (with a bias mitigation if asked)",
    ),
    "report": (
        "report",
        "subgroup fairness report of any predictions table (CSV/TSV/Parquet)",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser of the ``faimi`` command.

    Parameters
    ----------
    command : str, optional
        Import and register only this subcommand's module; the others get a parser
        with their one-line help only. Default: every subcommand in full.

    Returns
    -------
    argparse.ArgumentParser
        The parser, with one subparser per entry of :data:`COMMANDS` and ``about``.
    """
    parser = argparse.ArgumentParser(
        prog="faimi",
        description="Companion command of the faimi-tutorial book on fairness and bias "
        "in medical-imaging AI.",
    )
    parser.add_argument(
        "--version", action="version", version=f"faimi-tutorial {__version__}"
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    about = sub.add_parser("about", help="print versions, device and preset")
    about.set_defaults(func=_about)
    for name, (module, text) in COMMANDS.items():
        if command is None or command == name:
            importlib.import_module(f"faimi_tutorial.{module}").register(sub)
        else:
            sub.add_parser(name, help=text)
    # argparse's own errors (unknown option, missing value) on one line, status 2
    for prog, subparser in [("faimi", parser), *sub.choices.items()]:
        name = prog if prog == "faimi" else f"faimi {prog}"
        subparser.error = types.MethodType(_one_line_error(name), subparser)
    return parser


def _one_line_error(name: str):
    def error(self: argparse.ArgumentParser, message: str) -> None:
        self.exit(
            2, f"{name}: error: {message.splitlines()[0] if message else message}\n"
        )

    return error


def _about(_args: argparse.Namespace) -> int:
    from .runtime import about

    about()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``faimi`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first if first in COMMANDS else "")
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    command = next(
        (
            n
            for n, p in _subparsers(parser).items()
            if p.get_default("func") is args.func
        ),
        "",
    )
    try:
        return int(args.func(args))
    except ValueError as err:  # a bad setting found late (e.g. $FAIMI_PRESET): one line
        text = " ".join(str(err).split())
        print(
            f"faimi{' ' + command if command else ''}: error: {text}", file=sys.stderr
        )
        return 2


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
