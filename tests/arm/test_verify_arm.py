"""``verify --arm`` on the tiny 64 px artifact: the aarch64 board install gives the x86 outputs on A72 and A76."""

from __future__ import annotations

import json
import shutil

import pytest

from edgekit.arm.verify import verify_arm
from edgekit.cli.main import main
from edgekit.runtime.backends import get_backend

pytestmark = pytest.mark.arm

SCHEMA = {"core", "runtime", "runtime_version", "precision", "match", "max_abs_err", "cosine", "tolerance"}


@pytest.mark.parametrize("core", ["cortex-a72", "cortex-a76"])
def test_onnx_fp32_matches_x86(arm_cache, fast_exports, core):
    r = verify_arm(fast_exports["onnx"], core, images=2, record=False)
    assert SCHEMA <= set(r)
    assert r["match"], r
    assert r["core"] == core and r["runtime"] == "onnxruntime" and r["precision"] == "fp32"
    assert r["runtime_version"] == get_backend("onnxruntime").version()  # one release on both sides
    assert r["max_abs_err"] <= 1e-3 and r["cosine"] > 0.9999
    assert "host_only_importable" not in r  # the board install has no torch, onnx, ...


def test_int8_on_a76_counts_dot_products_and_records(arm_cache, fast_exports, tmp_path, capsys):
    """The CLI's JSON has the schema keys, the A76 int8 run executes SDOT/UDOT, the manifest gets an ``arm`` section."""
    src = fast_exports["tflite-int8"]
    art = tmp_path / src.name
    shutil.copy(src, art)
    shutil.copy(str(src) + ".json", str(art) + ".json")
    assert main(["verify", str(art), "--arm", "cortex-a76", "--count", "--images", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert SCHEMA | {"instructions"} <= set(r)
    assert r["precision"] == "int8" and r["runtime"] == "litert" and r["match"]
    n = r["instructions"]
    assert set(n) == {"total", "simd", "loads_stores", "dot", "fma"}
    assert n["dot"] > 0, "an int8 model on a core with the dot product should run SDOT/UDOT kernels"
    assert 0 < n["simd"] < n["total"] and 0 < n["loads_stores"] < n["total"]
    recorded = json.loads((tmp_path / (art.name + ".json")).read_text())["arm"]["cortex-a76"]
    assert recorded["match"] and recorded["instructions"] == n
    assert src.stat().st_size == art.stat().st_size  # the artifact itself is never rewritten


def test_unknown_core_and_missing_setup_are_one_line(fast_exports, tmp_path, capsys):
    assert main(["verify", str(fast_exports["onnx"]), "--arm", "cortex-a9"]) == 1
    assert "cortex-a72" in capsys.readouterr().err
    assert main(["verify", str(fast_exports["onnx"]), "--arm", "cortex-a72", "--cache", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "edgekit arm setup" in err
    assert main(["verify", str(fast_exports["onnx"])]) == 1
    assert "--arm" in capsys.readouterr().err
