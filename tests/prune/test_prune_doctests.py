"""The docstring examples of edgekit.prune and edgekit.models.channels run (tests/test_doctests.py covers other packages)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import edgekit.prune

MODULES = ["edgekit.models.channels"] + [m.name for m in pkgutil.walk_packages(edgekit.prune.__path__, "edgekit.prune.")]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
