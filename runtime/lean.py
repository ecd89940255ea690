"""Prove the device side stays lean: make host-only packages unimportable in this process.

edgekit's promise is that running a .tflite or .onnx needs numpy and one interpreter, never
torch, TensorFlow, onnx or NNCF. :func:`block_imports` puts a finder first on
``sys.meta_path`` that raises ImportError for those packages, so an accidental import fails
loudly where it happens instead of passing unseen on a workstation that has them all;
:func:`loaded` lists the ones that got in anyway (e.g. imported before the block). The lean
runtime tests, ``benchmarks/runtime_coldstart.py`` and anyone checking a board image use it.

Example:
    >>> from edgekit.runtime.lean import block_imports, loaded
    >>> blocker = block_imports()
    >>> det = load("m-tflite-int8.tflite").predict("fish.jpg")  # doctest: +SKIP
    >>> loaded()  # doctest: +SKIP
    []
    >>> blocker.remove()
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

# converters and training frameworks: a board never needs any of them
HOST_PACKAGES = ("torch", "tensorflow", "onnx", "nncf", "litert_torch", "ai_edge_quantizer", "torchvision", "jax",
                 "onnxslim", "pnnx")


class ImportBlocker:
    """A ``sys.meta_path`` finder that refuses top-level packages in ``names``."""

    def __init__(self, names: Iterable[str]):
        self.names = frozenset(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError(f"lean runtime must not import {name}")
        return None  # not ours: let the next finder look

    def remove(self) -> None:
        """Take the blocker off ``sys.meta_path`` again."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def block_imports(names: Iterable[str] = HOST_PACKAGES) -> ImportBlocker:
    """Install an :class:`ImportBlocker` for ``names`` first on ``sys.meta_path``; returns it."""
    blocker = ImportBlocker(names)
    sys.meta_path.insert(0, blocker)
    return blocker


def loaded(names: Iterable[str] = HOST_PACKAGES) -> list[str]:
    """The packages of ``names`` that are imported (top-level names, sorted); [] in a lean process."""
    names = frozenset(names)
    return sorted({m.split(".")[0] for m in list(sys.modules)} & names)
