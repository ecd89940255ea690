"""TFLite export (litert-torch + ai-edge-quantizer) and the LiteRT backend: parity, INT8, metadata, delegates.

Models get well-conditioned random weights (``export_helpers.realistic_init_``): with the default init the
activations of these nets shrink to ~1e-8 by the head, the outputs are the head biases,
and parity numbers say nothing (INT8 then saturates the int32 biases).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")

from edgekit.errors import EdgekitError  # noqa: E402
from tests.export.export_helpers import realistic_init_  # noqa: E402
from edgekit.export.tflite import embed_metadata, torch2tflite  # noqa: E402
from edgekit.models import list_models  # noqa: E402
from edgekit.runtime.backends import available_backends, open_backend  # noqa: E402
from edgekit.runtime.litert_backend import LiteRTBackend  # noqa: E402

SZ = 64
FAST = ["yolo-lite", "mobilenetv2_035-yolo"]
FASTEST = (Path(__file__).parents[2] / ".." / "shared" / "models" / "yolo-fastest-1.1").resolve()


def make(name: str):
    from edgekit.models import create_model

    return realistic_init_(create_model(name, num_classes=2))


@pytest.fixture(scope="module")
def calib(sample_yaml):
    from edgekit.export.calibration import CalibrationReader

    return CalibrationReader.from_source(sample_yaml, imgsz=SZ, images=16)


@pytest.fixture(scope="module")
def images(sample_yaml):
    from edgekit.export.calibration import CalibrationReader

    return list(CalibrationReader.from_source(sample_yaml, imgsz=SZ, images=4, split="val"))


@pytest.fixture(scope="module")
def yolo_lite_fp32(tmp_path_factory):
    out = tmp_path_factory.mktemp("tfl") / "yolo-lite.tflite"
    torch2tflite(make("yolo-lite"), (SZ, SZ), out)
    return out


def run_float(backend: LiteRTBackend, x_nchw: np.ndarray) -> list[np.ndarray]:
    """Run one NCHW [0, 1] image: transpose, quantize the input, dequantize the outputs."""
    x, info = x_nchw.transpose(0, 2, 3, 1), backend.inputs[0]
    if info.quant:
        lim = np.iinfo(info.dtype)
        x = np.clip(np.round(x / info.quant[0] + info.quant[1]), lim.min, lim.max).astype(info.dtype)
    outs = backend.run([np.ascontiguousarray(x)])
    return [(y.astype(np.float32) - o.quant[1]) * o.quant[0] if o.quant else y for y, o in zip(outs, backend.outputs)]


def compare(model, path: Path, images) -> tuple[float, float, float]:
    """(max abs error, cosine over all outputs of all images, largest |torch output|)."""
    b = LiteRTBackend(path, threads=1)
    err, ys, rs = 0.0, [], []
    for x in images:
        with torch.no_grad():
            ref = model(torch.from_numpy(x))
        ref = [t.numpy() for t in (ref if isinstance(ref, (list, tuple)) else [ref])]  # classifiers return a tensor
        got = run_float(b, x)
        assert [g.shape for g in got] == [r.shape for r in ref]  # same order, NCHW
        err = max(err, *(float(np.abs(g - r).max()) for g, r in zip(got, ref)))
        ys += [g.ravel() for g in got]
        rs += [r.ravel() for r in ref]
    y, r = np.concatenate(ys), np.concatenate(rs)
    return err, float(y @ r / np.linalg.norm(y) / np.linalg.norm(r)), float(np.abs(r).max())


@pytest.mark.parametrize("name", FAST)
def test_fp32_parity(name, tmp_path, images):
    model, out = make(name), tmp_path / "m.tflite"
    info = torch2tflite(model, (SZ, SZ), out)
    assert (info["input_layout"], info["output_layout"]) == ("NHWC", "NCHW")
    assert info["converter"].startswith("litert-torch ") and sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]
    b = LiteRTBackend(out)
    assert b.inputs[0].shape == (1, SZ, SZ, 3) and b.inputs[0].dtype == "float32"
    err, cos, scale = compare(model, out, images)
    # fp32 rounding grows with the output scale (torch fp32 itself is ~1e-4 off fp64 on MobileNet's 11-wide outputs)
    assert err < 1e-4 * max(1.0, scale) and cos > 0.999999


@pytest.mark.parametrize("name", FAST)
def test_fp16_weights(name, tmp_path, images):
    model, out = make(name), tmp_path / "m.tflite"
    info = torch2tflite(model, (SZ, SZ), out, "fp16")
    assert "ai-edge-quantizer" in info["converter"] and info["io"] == "float"
    b = LiteRTBackend(out)
    assert b.inputs[0].dtype == "float32" and all(o.dtype == "float32" for o in b.outputs)
    err, cos, scale = compare(model, out, images)
    assert err < 0.05 * max(1.0, scale) and cos > 0.999


@pytest.mark.parametrize("name", FAST)
def test_int8_full_integer(name, tmp_path, calib, images):
    model, out = make(name), tmp_path / "m.tflite"
    info = torch2tflite(model, (SZ, SZ), out, "int8", calib=calib, io="int8")
    assert not any("not full-integer" in n or "WARNING" in n for n in info["notes"]), info["notes"]
    b = LiteRTBackend(out)
    assert b.inputs[0].dtype == "int8" and all(o.dtype == "int8" for o in b.outputs)
    assert b.inputs[0].quant[1] == -128 and b.inputs[0].quant[0] == pytest.approx(1 / 255)
    ops = {op["op_name"] for op in b.interpreter._get_ops_details()}
    assert "DEQUANTIZE" not in ops  # no float island left (yolo-lite's leaky ReLUs are folded)
    err, cos, _ = compare(model, out, images)
    assert cos > 0.9, (err, cos)


@pytest.mark.parametrize("io, dtype", [("uint8", "uint8"), ("float", "float32")])
def test_int8_io_types(io, dtype, tmp_path, calib, images):
    model, out = make("yolo-lite"), tmp_path / "m.tflite"
    torch2tflite(model, (SZ, SZ), out, "int8", calib=calib, io=io)
    b = LiteRTBackend(out)
    assert b.inputs[0].dtype == dtype and b.outputs[0].dtype == dtype
    assert compare(model, out, images)[1] > 0.99


def test_int8_needs_calibration(tmp_path):
    with pytest.raises(EdgekitError, match="INT8 needs calibration images: give --data DATA.yaml or --calib DIR"):
        torch2tflite(torch.nn.Identity(), (SZ, SZ), tmp_path / "m.tflite", "int8")
    with pytest.raises(EdgekitError, match="unknown TFLite precision"):
        torch2tflite(torch.nn.Identity(), (SZ, SZ), tmp_path / "m.tflite", "int4")
    assert not list(tmp_path.iterdir())


def test_missing_converter_names_the_extra(tmp_path, monkeypatch):
    from edgekit.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "litert_torch", None)  # import now raises ImportError
    with pytest.raises(MissingExtraError, match=r'litert-torch is not installed \(needed for TFLite export\)'):
        torch2tflite(torch.nn.Identity(), (SZ, SZ), tmp_path / "m.tflite")


def test_metadata_round_trip(yolo_lite_fp32, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(yolo_lite_fp32.read_bytes())
    read_metadata = LiteRTBackend.read_manifest
    assert read_metadata(path) is None
    embed_metadata(path, {"task": "detect", "names": ["fish", "crab"], "imgsz": [SZ, SZ]})
    embed_metadata(path, {"task": "detect", "names": ["fish", "shark"], "imgsz": [SZ, SZ]})  # replaces, not appends
    assert read_metadata(path) == {"task": "detect", "names": ["fish", "shark"], "imgsz": [SZ, SZ]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]
    a, b = LiteRTBackend(yolo_lite_fp32), LiteRTBackend(path)  # the interpreter still loads it, same numbers
    x = np.random.default_rng(0).random((1, SZ, SZ, 3), np.float32)
    assert all(np.array_equal(p, q) for p, q in zip(a.run([x]), b.run([x])))
    (tmp_path / "bad.tflite").write_bytes(b"not a model at all")
    with pytest.raises(EdgekitError, match="not a TFLite flatbuffer"):
        read_metadata(tmp_path / "bad.tflite")


def test_read_metadata_needs_no_tflite_packages(yolo_lite_fp32, tmp_path):
    """A board may have tflite_runtime only: the reader must work with numpy and the stdlib."""
    path = tmp_path / "m.tflite"
    path.write_bytes(yolo_lite_fp32.read_bytes())
    embed_metadata(path, {"task": "detect"})
    code = ("import sys\n"
            "for m in ('torch', 'flatbuffers', 'ai_edge_litert', 'tensorflow', 'tflite_runtime', 'litert_torch'):\n"
            "    sys.modules[m] = None\n"
            "from edgekit.runtime.litert_backend import LiteRTBackend\n"
            f"print(LiteRTBackend.read_manifest({str(path)!r})['task'])\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "detect", res.stderr


def test_backend_protocol(yolo_lite_fp32):
    assert available_backends()["litert"]
    b = open_backend(yolo_lite_fp32, threads=1)
    assert isinstance(b, LiteRTBackend)
    d = b.describe()
    assert d["backend"] == "litert" and d["interpreter"] == "ai_edge_litert.interpreter" and d["threads"] == 1
    assert d["inputs"][0]["shape"] == [1, SZ, SZ, 3] and d["warnings"] == []
    x = np.zeros((1, SZ, SZ, 3), np.float32)
    first = b.run([x])[0]
    second = b.run([x + 0.5])[0]
    assert not np.array_equal(first, second)  # a view of the interpreter's buffer would now equal `second`
    with pytest.raises(EdgekitError, match="wants float32"):
        b.run([x.astype(np.float64)])


def test_missing_delegate(yolo_lite_fp32):
    with pytest.raises(EdgekitError, match="libedgetpu.so.1.*check that the path exists"):
        LiteRTBackend(yolo_lite_fp32, delegate="/nonexistent/libedgetpu.so.1")
    with pytest.raises(EdgekitError, match="delegate 'edgetpu'.*Edge TPU runtime"):
        LiteRTBackend(yolo_lite_fp32, delegate="edgetpu")
    with pytest.warns(RuntimeWarning, match="running on the CPU"):
        b = LiteRTBackend(yolo_lite_fp32, delegate="/nonexistent/libedgetpu.so.1", fallback=True)
    assert b.delegate is None and len(b.warnings) == 1 and b.describe()["warnings"] == b.warnings
    assert b.run([np.zeros((1, SZ, SZ, 3), np.float32)])[0].shape == (1, 35, 2, 2)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_model_converts(name, tmp_path, images):
    model = make(name)
    torch2tflite(model, (SZ, SZ), tmp_path / "m.tflite")
    err, cos, scale = compare(model, tmp_path / "m.tflite", images)
    assert err < 1e-4 * max(1.0, scale) and cos > 0.999999


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.skipif(not (FASTEST / "yolo-fastest-1.1.weights").is_file(), reason=f"{FASTEST} absent")
def test_darknet_yolo_fastest(tmp_path, images, calib):
    from edgekit.models.darknet import load_darknet

    model = load_darknet(FASTEST / "yolo-fastest-1.1.cfg", FASTEST / "yolo-fastest-1.1.weights")
    torch2tflite(model, (SZ, SZ), tmp_path / "fp32.tflite")
    err, cos, scale = compare(model, tmp_path / "fp32.tflite", images)
    assert err < 1e-4 * max(1.0, scale) and cos > 0.999999
    info = torch2tflite(model, (SZ, SZ), tmp_path / "int8.tflite", "int8", calib=calib)
    assert any("LEAKY_RELU" in n for n in info["notes"]) and not any("not full-integer" in n for n in info["notes"])
    assert compare(model, tmp_path / "int8.tflite", images)[1] > 0.95


def _far_below(model):
    """yolo-lite with its objectness logits pushed to about -30: far past any decision, as background cells."""
    with torch.no_grad():
        model.head.convs[0].bias.view(5, -1)[:, 4] -= 30.0
    return model


def test_int8_output_ranges_clipped_for_logits(tmp_path, calib):
    """A detector's logits beyond +-clip decode alike: the INT8 output range stops there, not at -30."""
    model = _far_below(make("yolo-lite"))
    plain, clipped = tmp_path / "plain.tflite", tmp_path / "clip.tflite"
    torch2tflite(model, (SZ, SZ), plain, "int8", calib=calib)
    info = torch2tflite(model, (SZ, SZ), clipped, "int8", calib=calib, output_clip=9.2)

    def lowest(path):
        scale, zero = LiteRTBackend(path).outputs[0].quant
        return scale * (-128 - zero)
    assert lowest(plain) < -25 and -9.3 < lowest(clipped) < -9.0
    assert info["output_clip"] == 9.2 and any("clipped to +-9.2" in n for n in info["notes"])
