"""Entry point of the ``edgekit`` command.

Each command lives in its own module exposing ``add_parser(subparsers)``, which registers
the sub-command and sets ``func`` to a function taking the parsed args and returning an
exit code. Adding a command is one module plus one line in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from edgekit import __version__
from edgekit.errors import EdgekitError

# module names under edgekit.cli; order is the order in --help
COMMANDS = [
    "info_cmd",
    "data_cmd",
    "eval_cmd",
    "models_cmd",
    "train_cmd",
    "val_cmd",
    "export_cmd",
    "verify_cmd",
    "calibrate_reject_cmd",
    "predict_cmd",
    "bench_cmd",
    "boards_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser (every registered command)."""
    parser = argparse.ArgumentParser(
        prog="edgekit",
        description="Train, export, verify and run lightweight vision models on edge boards.",
    )
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"edgekit.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code.

    Example:
        >>> main(["--version"])  # doctest: +SKIP
        edgekit 0.1.0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except EdgekitError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
