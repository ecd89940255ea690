"""ARM efficiency regression: the tiny artifact must not execute markedly more instructions on cortex-a72.

The reference is committed in benchmarks/results/arm-counts-yolo-lite-64.json by
``python benchmarks/arm_counts.py --tiny`` (the same 64 px yolo-lite as the ``fast_exports``
fixture). Counts are deterministic for a runtime release and ``-cpu``; a change that makes the
artifact or the runtime path do 10% more work fails here. Rerun the script after an intended change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.arm.verify import verify_arm
from edgekit.runtime.backends import get_backend

pytestmark = pytest.mark.arm

REFERENCE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "arm-counts-yolo-lite-64.json"
MAX_GROWTH = 1.10


def test_tiny_onnx_instructions_on_a72_do_not_grow(arm_cache, fast_exports):
    ref = json.loads(REFERENCE.read_text())["counts"]["onnx"]["cortex-a72"]
    got = verify_arm(fast_exports["onnx"], "cortex-a72", images=1, count=True, record=False)
    n = got["instructions"]
    assert got["match"]
    assert n["dot"] == 0, "cortex-a72 has no dot product: an SDOT/UDOT count means the plugin or -cpu is wrong"
    assert n["fma"] > 0 and n["simd"] > 0  # an fp32 conv net runs NEON FMLA
    if got["runtime_version"] != ref["runtime_version"]:
        pytest.fail(f"onnxruntime {get_backend('onnxruntime').version()} vs the reference's {ref['runtime_version']}: "
                    "rerun `python benchmarks/arm_counts.py --tiny` and commit the new counts", pytrace=False)
    assert n["total"] <= ref["total"] * MAX_GROWTH, (
        f"{n['total']:,} instructions per inference vs {ref['total']:,} committed (+{n['total'] / ref['total'] - 1:.1%})")
