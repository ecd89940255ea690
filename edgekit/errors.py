"""Errors a user can cause, and how the CLI reports them.

Anything raised as :class:`EdgekitError` is shown by the CLI as one line naming the
cause and the fix, with exit code 1 and no traceback (``--debug`` shows it).
"""

from __future__ import annotations


class EdgekitError(Exception):
    """A problem with the user's input or environment, with a message that says the fix.

    Example:
        >>> raise EdgekitError("data.yaml has no 'names': add the class names as a list")
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: data.yaml has no 'names': add the class names as a list
    """


class DatasetError(EdgekitError):
    """The dataset cannot be read or used."""


class ImageTooLargeError(EdgekitError):
    """An image over the pixel limit (``EDGEKIT_MAX_PIXELS``): refused from its header, before decoding."""


class MissingExtraError(EdgekitError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str = ""):
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"{package} is not installed{what}: pip install \"edgekit[{extra}]\"")
