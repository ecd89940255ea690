"""The RKNN board backend on an emulated aarch64 board install: rknn-toolkit-lite2 imports, the NPU runtime is absent.

``pip install "edgekit[rknn]"`` for aarch64 (rknn-toolkit-lite2's wheel, numpy, psutil, ruamel.yaml) runs
under QEMU: ``edgekit.runtime.load`` of a real ``.rknn`` gets as far as rknn-toolkit-lite2's
``init_runtime``, which cannot find ``librknnrt.so`` (no Rockchip image here), and says so in one
line: what a Pi or any aarch64 board without a Rockchip NPU sees. The NPU itself is beyond this machine.
"""

from __future__ import annotations

import json

import pytest

from edgekit.arm.run import run_guest

pytestmark = pytest.mark.arm

PROBE = """
import json, sys
from edgekit.errors import EdgekitError
from edgekit.runtime import load
import rknnlite.api  # the lite runtime's Python side imports on aarch64
try:
    load(sys.argv[1])
    said = None
except EdgekitError as exc:
    said = str(exc)
print(json.dumps({"error": said, "heavy": sorted(m for m in ("torch", "onnx") if m in sys.modules)}))
"""


@pytest.fixture(scope="module")
def rknn_site(arm_cache):
    import sys

    from edgekit.arm.setup import setup
    from edgekit.errors import EdgekitError

    try:
        setup(None, ("rknn",), log=lambda m: print(f"arm setup: {m}", file=sys.stderr))
    except EdgekitError as exc:
        pytest.fail(f"edgekit[rknn] could not be installed for aarch64: {exc}", pytrace=False)
    return arm_cache


@pytest.fixture(scope="module")
def tiny_rknn(rknn_toolkit, tiny_detector, sample_yaml, tmp_path_factory):
    """The tiny detector as rknn-int8 (converted and verified in the toolkit's simulator)."""
    from edgekit.export import export
    from tests.export.export_helpers import TINY_CALIB

    out = tmp_path_factory.mktemp("rknn-arm")
    rep = export(tiny_detector, ["rknn-int8"], calib=sample_yaml.parent / "train" / "images", calib_images=TINY_CALIB,
                 out=out)
    assert rep.ok, rep.results[0].reason
    return out / rep.results[0].file


def test_missing_npu_runtime_is_one_clear_error_on_aarch64(rknn_site, tiny_rknn):
    r = run_guest(rknn_site, "cortex-a76", "rknn", ["-c", PROBE, str(tiny_rknn)])
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["error"] and "\n" not in got["error"], got
    assert "the RKNN NPU runtime did not start" in got["error"] and "missing here: /usr/lib/librknnrt.so" in got["error"], got
    assert got["heavy"] == []
