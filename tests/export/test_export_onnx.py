"""ONNX export: every registered model round-trips, the Pad_Fusion trap is caught, bad input fails cleanly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.cli.main import main
from edgekit.models import list_models


@pytest.mark.parametrize("model", list_models())
def test_onnx_roundtrip_every_model(model, tiny_checkpoint, tmp_path):
    from edgekit.export import export
    from edgekit.runtime.runner import read_manifest

    ckpt = tiny_checkpoint(model, 64)
    rep = export(ckpt, ["onnx"], out=tmp_path / "out")
    r = rep.results[0]
    assert r.ok, r.reason
    assert r.parity["max_abs"] < 1e-4
    art = tmp_path / "out" / r.file
    man = read_manifest(art)
    assert man["target"] == "onnx" and man["task"] in ("detect", "classify")
    assert man["verification"]["parity"]["passed"]
    # the manifest is embedded too: the sidecar is a convenience, not the only copy
    (tmp_path / "out" / (r.file + ".json")).unlink()
    assert read_manifest(art)["model"] == model


def tiny_yolo_zero_pad_net():
    """A Tiny-YOLO-style net whose stride-1 max pool is ZeroPad2d + MaxPool2d(2, 1), as Darknet
    ports (and TOOLCHAIN.md's probe) write it: the pattern onnxruntime's Pad_Fusion gets wrong."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.LeakyReLU(0.1), nn.MaxPool2d(2, 2),
        nn.Conv2d(16, 32, 3, padding=1), nn.LeakyReLU(0.1),
        nn.ZeroPad2d((0, 1, 0, 1)), nn.MaxPool2d(2, 1),
        nn.Conv2d(32, 18, 1),
    ).eval()


def test_pad_fusion_trap_is_avoided(tmp_path):
    import onnxruntime as ort
    import torch

    from edgekit.export.onnx import torch2onnx
    from edgekit.runtime.onnxruntime_backend import OnnxRuntimeBackend

    net = tiny_yolo_zero_pad_net()
    path = tmp_path / "ty.onnx"
    torch2onnx(net, (64, 64), path)
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    # the trap: onnxruntime's default optimizations change the output (it pads with -inf)
    default = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    bad = default.run(None, {"images": x})[0]
    assert np.abs(bad - ref).max() > 1e-3, "onnxruntime's Pad_Fusion no longer miscomputes: drop the workaround?"
    # edgekit's sessions disable Pad_Fusion and match torch
    good = OnnxRuntimeBackend(path).run([x])[0]
    assert np.abs(good - ref).max() < 1e-5


def test_parity_check_catches_the_trap(tmp_path, monkeypatch):
    """With the workaround removed, the export's own parity check fails the artifact."""
    import edgekit.runtime.onnxruntime_backend as orb
    from edgekit.export.exporter import export

    net = tiny_yolo_zero_pad_net()
    spec = {"type": "yolo", "num_classes": 1, "imgsz": [64, 64], "strides": [32], "anchors": [[[16.0, 16.0]] * 3],
            "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
    src = _source_of(net, spec)
    monkeypatch.setattr("edgekit.export.source.load_source", lambda *a, **k: src)
    monkeypatch.setattr(orb, "DISABLED_OPTIMIZERS", [])  # what a plain onnxruntime session does
    rep = export("unused.pt", ["onnx"], out=tmp_path)
    assert not rep.ok and "parity" in rep.results[0].reason
    assert not (tmp_path / "net-onnx.onnx").exists()


def _source_of(net, spec):
    from pathlib import Path

    from edgekit.export.source import Source

    return Source("checkpoint", Path("net.pt"), "net", "detect", ["fish"], (64, 64), spec, "0" * 16, module=net)


def test_int8_needs_calibration(tiny_checkpoint, tmp_path, capsys):
    ckpt = tiny_checkpoint("yolo-lite", 64)
    assert main(["export", str(ckpt), "--target", "onnx-int8", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "calibration" in err[0] and "--data" in err[0]
    assert not list((tmp_path / "o").glob("*.onnx")) if (tmp_path / "o").exists() else True


def test_empty_calibration_folder(tiny_checkpoint, tmp_path, capsys):
    ckpt = tiny_checkpoint("yolo-lite", 64)
    (tmp_path / "empty").mkdir()
    assert main(["export", str(ckpt), "--target", "onnx-int8", "--calib", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "o")]) == 1
    assert "no images" in capsys.readouterr().err


def test_unwritable_out(tiny_checkpoint, tmp_path, capsys):
    ckpt = tiny_checkpoint("yolo-lite", 64)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["export", str(ckpt), "--target", "onnx", "--out", str(blocker / "sub")]) == 1
    assert "cannot write to" in capsys.readouterr().err


def test_unknown_and_unavailable_targets(tiny_checkpoint, tmp_path, capsys):
    from edgekit.export.targets import TARGETS, Target, register_target

    ckpt = tiny_checkpoint("yolo-lite", 64)
    assert main(["export", str(ckpt), "--target", "coreml"]) == 1
    assert "unknown target 'coreml'" in capsys.readouterr().err
    # a target whose converter is not installed: the error names the extra
    register_target(Target("fake-npu", "onnx", "int8", ("edgekit_no_such_converter",), False, lambda job: {},
                           extra="npu"))
    try:
        assert main(["export", str(ckpt), "--target", "fake-npu", "--out", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert "edgekit_no_such_converter" in err and 'pip install "edgekit[npu]"' in err
        listing = json.loads(_run_json(["export", "--list", "--json"], capsys))
        assert {"target": "fake-npu", "available": False}.items() <= next(r for r in listing if r["target"] == "fake-npu").items()
    finally:
        TARGETS.pop("fake-npu")


def _run_json(argv, capsys) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_missing_model(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.pt"), "--target", "onnx"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_int8_output_ranges_clipped_for_logits(tmp_path, sample_yaml):
    """onnx-int8 clips a detector's output ranges too (TensorQuantOverrides from the calibrated MinMax)."""
    import onnx
    import torch
    from tests.export.export_helpers import realistic_init_
    from onnx import numpy_helper

    from edgekit.export.calibration import CalibrationReader
    from edgekit.export.onnx import onnx2onnx_int8, torch2onnx
    from edgekit.models import create_model

    model = realistic_init_(create_model("yolo-lite", num_classes=2))
    with torch.no_grad():
        model.head.convs[0].bias.view(5, -1)[:, 4] -= 30.0  # objectness far below any threshold
    fp32 = tmp_path / "m.onnx"
    torch2onnx(model, (64, 64), fp32)
    calib = CalibrationReader.from_source(sample_yaml, imgsz=64, images=8)

    def lowest(clip):
        out = tmp_path / f"q{clip}.onnx"
        info = onnx2onnx_int8(fp32, out, calib, output_clip=clip)
        g = onnx.load(str(out)).graph
        init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        dq = next(n for n in g.node if n.output[0] == g.output[0].name)  # the DequantizeLinear giving the output
        assert dq.op_type == "DequantizeLinear"
        scale, zero = float(init[dq.input[1]]), int(init[dq.input[2]])
        return scale * (0 - zero), info
    plain, _ = lowest(None)
    clipped, info = lowest(9.2)
    assert plain < -25 and -9.3 < clipped < -9.0
    assert info["output_clip"] == 9.2
