"""The emulated aarch64 userland for tests marked ``arm``: set up once per machine (cached), never skipped.

``edgekit arm setup`` runs here for the runtimes these tests use; on a machine where QEMU or the
arm64 packages cannot be installed the tests FAIL with the reason: an ARM check that silently
skips proves nothing.
"""

from __future__ import annotations

import pytest

ARM_TEST_RUNTIMES = ("onnx", "tflite")


@pytest.fixture(scope="session")
def arm_cache():
    """The ARM cache (``$EDGEKIT_ARM_CACHE`` or ``~/.cache/edgekit/arm``) with onnx and tflite installed."""
    import sys

    from edgekit.arm.setup import cache_dir, setup
    from edgekit.errors import EdgekitError

    try:
        setup(None, ARM_TEST_RUNTIMES, log=lambda m: print(f"arm setup: {m}", file=sys.stderr))
    except EdgekitError as exc:
        pytest.fail(f"the emulated aarch64 userland could not be set up: {exc}", pytrace=False)
    return cache_dir()
