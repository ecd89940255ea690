"""The host side of edgekit.arm without QEMU: core descriptions, precision rules, comparisons, docstring examples."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from edgekit.arm.cores import CORES, get_core
from edgekit.arm.verify import compare, compute_precision, passes, tolerance
from edgekit.boards.cpu import core_layout, parse_cpuinfo
from edgekit.errors import EdgekitError

MODULES = ["edgekit.arm.cores", "edgekit.arm.setup", "edgekit.arm.wheels", "edgekit.arm.count", "edgekit.arm.verify",
           "edgekit.arm.sysroot", "edgekit.arm.run"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module):
        runner.run(test)
    assert runner.failures == 0


@pytest.mark.parametrize("name,features,absent", [
    ("cortex-a53", {"neon"}, {"dotprod", "fp16"}),
    ("cortex-a72", {"neon"}, {"dotprod", "fp16"}),
    ("cortex-a76", {"neon", "dotprod", "fp16"}, set()),
])
def test_fake_cpuinfo_reads_as_that_core(name, features, absent):
    """edgekit's own board detection reads the emulated /proc/cpuinfo as the real core's."""
    text = CORES[name].cpuinfo(4)
    info = parse_cpuinfo(text, "aarch64")
    assert features <= set(info["features"]) and not absent & set(info["features"])
    assert info["cores"] == 4 and core_layout(text) == {f"0x{CORES[name].part:03x}": 4}
    assert f"{CORES[name].midr:08x}".startswith("41")  # Arm Ltd


def test_unknown_core_is_one_line():
    with pytest.raises(EdgekitError, match="cortex-a53, cortex-a72, cortex-a76"):
        get_core("cortex-a9")


def test_precision_and_tolerance_rules():
    assert compute_precision("fp16", None) == "fp32"        # fp16 weights, fp32 compute (LiteRT, OpenVINO f32)
    assert compute_precision("fp32", "f16") == "fp16"       # OpenVINO / ncnn switched to fp16 arithmetic
    assert compute_precision("int8", "fp32") == "int8"
    assert compute_precision("int8", "f16") == "int8+fp16"
    # OpenVINO on ARM at f32: no int8 kernels, the FakeQuantize ops computed in fp32
    assert compute_precision("int8", "f32", int8_kernels=False) == "fakequant-fp32"
    assert compute_precision("int8", "f16", int8_kernels=True) == "int8+fp16"
    assert tolerance("fp32") == {"max_abs": 1e-3} and tolerance("int8+fp16") == {"min_cosine": 0.98}
    assert tolerance("fakequant-fp32") == tolerance("int8")
    a = [[np.linspace(-4, 4, 64, dtype=np.float32).reshape(1, 4, 4, 4)]]
    near = [[a[0][0] + 5e-4]]
    far = [[a[0][0] * -1]]
    assert passes(compare(a, near), tolerance("fp32"))
    assert not passes(compare(a, far), tolerance("int8"))  # opposite sign: cosine -1
    clipped = compare([[np.array([10.0, 1.0])]], [[np.array([20.0, 1.0])]], clip=8.0)
    assert clipped["max_abs_err"] == 0.0  # beyond the int8 detector's output clip both decode the same
    with pytest.raises(EdgekitError, match="shape"):
        compare(a, [[np.zeros((1, 2), np.float32)]])


def test_recorded_result_shows_in_the_bench_report(fast_exports, tmp_path):
    """verify --arm's manifest record reaches the bench report as outputs, never as a speed."""
    import json
    import shutil

    from edgekit.arm.verify import record_in_manifest
    from edgekit.bench_report import arm_lines, to_markdown
    from edgekit.runtime.runner import read_manifest

    art = tmp_path / fast_exports["onnx"].name
    shutil.copy(fast_exports["onnx"], art)
    shutil.copy(str(fast_exports["onnx"]) + ".json", str(art) + ".json")
    result = {"core": "cortex-a72", "runtime": "onnxruntime", "runtime_version": "1.31.1", "precision": "fp32",
              "match": True, "max_abs_err": 2.2e-07, "cosine": 1.0, "tolerance": {"max_abs": 1e-3}, "images": 2}
    record_in_manifest(art, read_manifest(art), result)
    assert json.loads((tmp_path / (art.name + ".json")).read_text())["arm"]["cortex-a72"]["match"] is True
    lines = arm_lines({"results": [{"target": "onnx", "path": str(art)}]})
    assert lines == ["onnx: emulated on cortex-a72: outputs match the x86 run (max abs 2.2e-07, cosine 1.000000; "
                     "fp32, onnxruntime 1.31.1)"]
    assert "Emulated aarch64" in to_markdown({"results": [{"target": "onnx", "path": str(art)}]})
    assert " ms" not in lines[0]


def test_openvino_load_error_keeps_the_reason(tmp_path):
    """OpenVINO wraps every C++ error in ``Exception from src/...cpp:N:`` lines; the one-line error
    must carry the reason under them, not the first location line (what ARM runs used to report)."""
    from edgekit.runtime.openvino_backend import OpenVinoBackend, openvino_reason

    xml = tmp_path / "m.xml"
    port = '<port id="{}" precision="FP32"><dim>1</dim><dim>3</dim></port>'
    xml.write_text(
        '<?xml version="1.0"?>\n<net name="m" version="11"><layers>'
        '<layer id="0" name="x" type="Parameter" version="opset1"><data shape="1,3" element_type="f32"/>'
        f'<output>{port.format(0)}</output></layer>'
        f'<layer id="1" name="y" type="NoSuchOp" version="opset1"><input>{port.format(0)}</input>'
        f'<output>{port.format(1)}</output></layer>'
        f'<layer id="2" name="r" type="Result" version="opset1"><input>{port.format(0)}</input></layer></layers>'
        '<edges><edge from-layer="0" from-port="0" to-layer="1" to-port="0"/>'
        '<edge from-layer="1" from-port="1" to-layer="2" to-port="0"/></edges></net>\n')
    xml.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(EdgekitError) as info:
        OpenVinoBackend(xml, threads=1)
    msg = str(info.value)
    assert "\n" not in msg and "OpenVINO cannot load it" in msg
    assert not msg.rstrip(")").endswith(":"), msg  # not cut after a location line
    assert "doesn't contain the operation with type: NoSuchOp" in msg, msg
    assert openvino_reason(RuntimeError("Exception from a.cpp:1:\nException from b.cpp:2:\nobject is not initialized\n")) \
        == "object is not initialized"
    assert openvino_reason(RuntimeError("x" * 500)).endswith("...") and len(openvino_reason(RuntimeError("x" * 500))) == 300
