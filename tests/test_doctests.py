"""Every docstring example of the device side, the metrics and the host packages runs: one test per module.

The modules are imported by their package names (``edgekit.runtime.decode``), walked with
:func:`pkgutil.walk_packages`, never by file path: ``pytest --doctest-modules runtime/`` would
import ``runtime/x.py`` a second time as ``x`` and register its backends twice. An example that
needs what cannot exist here (a trained model, a board) says ``# doctest: +SKIP``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("edgekit.runtime", "edgekit.boards", "edgekit.metrics", "edgekit.export", "edgekit.estimate", "edgekit.remote",
            "edgekit.arm", "edgekit.prune")


def _modules() -> list[str]:
    names = []
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        names.append(pkg_name)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg_name}.")]
    return sorted(names)


MODULES = _modules()


def test_every_package_has_modules():
    for pkg in PACKAGES:  # the walk found the files (a broken walk would make every test below vanish)
        assert sum(m.startswith(pkg + ".") for m in MODULES) >= 2, pkg


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures = []
    for test in finder.find(module, name):
        if not test.examples:
            continue
        out = []
        result = runner.run(test, out=out.append, clear_globs=True)
        if result.failed:
            failures.append("".join(out))
    assert not failures, "\n".join(failures)
