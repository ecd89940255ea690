"""Entry point of the ``edgekit`` command.

Each command lives in its own module exposing ``add_parser(subparsers)``, which registers
the sub-command and sets ``func`` to a function taking the parsed args and returning an
exit code. Adding a command is one module plus one line in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import traceback

from edgekit import __version__
from edgekit.cli.ranges import OneLineParser, UsageError
from edgekit.errors import EdgekitError

# accepted before the command and after it; stdout carries only results, so both speak on stderr
GLOBAL_FLAGS = [
    (("--debug",), {"help": "show tracebacks on errors"}),
    (("--verbose",), {"help": "also show what converters and runtimes print (captured and hidden otherwise), on stderr"}),
]

# module names under edgekit.cli; order is the order in --help
COMMANDS = [
    "info_cmd",
    "data_cmd",
    "eval_cmd",
    "models_cmd",
    "train_cmd",
    "prune_cmd",
    "val_cmd",
    "export_cmd",
    "verify_cmd",
    "quant_report_cmd",
    "arm_cmd",
    "rknn_cmd",
    "calibrate_reject_cmd",
    "predict_cmd",
    "detect_cmd",
    "bench_cmd",
    "boards_cmd",
    "estimate_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser (every registered command)."""
    # its errors (an unknown flag, a value out of range) are one line and exit 1, as every edgekit error;
    # the commands' parsers inherit the class
    parser = OneLineParser(
        prog="edgekit",
        description="Train, export, verify and run lightweight vision models on edge boards.",
    )
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    for flags, kw in GLOBAL_FLAGS:
        parser.add_argument(*flags, action="store_true", **kw)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"edgekit.cli.{name}").add_parser(sub)
    for p in _command_parsers(sub):  # `edgekit export ... --verbose` works as well as `edgekit --verbose export ...`
        for flags, kw in GLOBAL_FLAGS:
            if not any(f in p._option_string_actions for f in flags):  # a command may define its own
                p.add_argument(*flags, action="store_true", default=argparse.SUPPRESS, **kw)
    return parser


def _command_parsers(sub) -> list[argparse.ArgumentParser]:
    """Every command's parser and its actions' parsers (``data``, ``data check``)."""
    out = []
    for p in dict.fromkeys(sub.choices.values()):
        out.append(p)
        for nested in (a for a in p._actions if isinstance(a, argparse._SubParsersAction)):
            out += _command_parsers(nested)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code.

    Example:
        >>> main(["--version"])  # doctest: +SKIP
        edgekit 0.1.0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:  # an unknown flag, a value out of range: before any work, one line
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return 1
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    previous = _terminate_like_interrupt()
    try:
        return int(args.func(args) or 0)
    except EdgekitError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return 1
    except Terminated:
        print("edgekit: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edgekit ... --json | head`: the reader left; no traceback at exit either
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a full disk, a read-only folder... met outside edgekit's writers: still one line
        from edgekit.io import WRITE_ERRNOS, write_error_line

        if exc.errno not in WRITE_ERRNOS or args.debug:
            raise
        print(f"edgekit: error: {write_error_line(exc)}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every cleanup that handles an interrupt (staging, temp files) runs."""


def _terminate_like_interrupt():
    """Make SIGTERM raise :class:`Terminated` in the main thread; returns the previous handler (None elsewhere)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
