"""Every numeric option has a range, checked by argparse before any work starts.

One place for the rules (``--imgsz 33``, ``--epochs 0``, ``--conf nan`` are refused here, with
the allowed range in the message), and one parser class whose errors are one line and exit 1
like every other edgekit error, instead of argparse's usage block and exit 2.

Example:
    >>> whole(1)("4")
    4
    >>> fraction()("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: 'nan' is not a number from 0 to 1
"""

from __future__ import annotations

import argparse
import math

from edgekit.errors import EdgekitError

MAX_STRIDE = 32  # the largest stride of every registered detector: input sizes are multiples of it


def whole(minimum: int = 1, maximum: int | None = None):
    """An argparse type: a whole number in [minimum, maximum]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            top = f" and at most {maximum}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of {minimum} or more{top}")
        return value
    parse.__name__ = "whole number"
    return parse


def number(minimum: float = 0.0, maximum: float | None = None, above: bool = False):
    """An argparse type: a finite number >= minimum (> minimum when ``above``), <= maximum."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        low_ok = value > minimum if above else value >= minimum
        if not math.isfinite(value) or not low_ok or (maximum is not None and value > maximum):
            low = f"above {minimum:g}" if above else f"{minimum:g} or more"
            top = f" and at most {maximum:g}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"'{text}' is not a number {low}{top}")
        return value
    parse.__name__ = "number"
    return parse


def fraction(above_zero: bool = False):
    """An argparse type: a probability-like number in [0, 1] ((0, 1] when ``above_zero``)."""
    inner = number(0.0, 1.0, above=above_zero)

    def parse(text: str) -> float:
        try:
            return inner(text)
        except argparse.ArgumentTypeError:
            span = "above 0 and at most 1" if above_zero else "from 0 to 1"
            raise argparse.ArgumentTypeError(f"'{text}' is not a number {span}") from None
    parse.__name__ = "fraction"
    return parse


def image_size(text: str) -> int:
    """An argparse type: an input size in pixels, a multiple of the detectors' largest stride.

    Example:
        >>> image_size("33")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: '33' is not an input size: use a multiple of 32 from 32 to 4096, e.g. 320
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < MAX_STRIDE or value > 4096 or value % MAX_STRIDE:
        raise argparse.ArgumentTypeError(f"'{text}' is not an input size: use a multiple of {MAX_STRIDE} from "
                                         f"{MAX_STRIDE} to 4096, e.g. 320")
    return value


def image_shape(text: str) -> int | tuple[int, int]:
    """An argparse type: a square input size (``320``) or ``WIDTHxHEIGHT`` (``384x224``, for wide frames),
    each side a multiple of the detectors' largest stride; a rectangle comes back as (height, width).

    Example:
        >>> image_shape("320"), image_shape("384x224")
        (320, (224, 384))
        >>> image_shape("384x200")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: '384x200' is not an input size: give 320 or WIDTHxHEIGHT with each side a multiple of 32 from 32 to 4096, e.g. 384x224
    """
    parts = text.lower().split("x")
    try:
        if len(parts) == 1:
            return image_size(text)
        if len(parts) == 2:
            w, h = image_size(parts[0]), image_size(parts[1])
            return w if w == h else (h, w)
    except argparse.ArgumentTypeError:
        pass
    raise argparse.ArgumentTypeError(f"'{text}' is not an input size: give 320 or WIDTHxHEIGHT with each side a "
                                     f"multiple of {MAX_STRIDE} from {MAX_STRIDE} to 4096, e.g. 384x224")


class UsageError(EdgekitError):
    """A command line argparse refused: :func:`edgekit.cli.main.main` prints it as one line and returns 1."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with edgekit's error contract: one line naming the cause and the fix, exit 1 (not usage + exit 2)."""

    def error(self, message: str):
        where = self.prog.removeprefix("edgekit").strip()
        raise UsageError(f"{where + ': ' if where else ''}{message} (see `{self.prog} --help`)")
