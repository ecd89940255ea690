"""OpenVINO IR (fp32/fp16/INT8) and ncnn (fp32/fp16) exports: parity with torch, manifest, errors.

Models get a deterministic LeCun-normal init with random BN statistics: torch's default
init shrinks activations layer after layer (MobileNet outputs come out ~1e-13, the head
bias alone), which would make every parity check pass vacuously. Parity is measured on
real letterboxed images from the embedded sample, at imgsz 64 to keep each test a few seconds.
"""

from __future__ import annotations

import glob
import hashlib
import sys

import numpy as np
import pytest

from edgekit.errors import EdgekitError, MissingExtraError
from edgekit.export.ncnn import torch2ncnn  # these modules import their converters lazily
from edgekit.export.openvino import embed_manifest, onnx2openvino
from edgekit.models import list_models
from edgekit.runtime.backends import backend_for, open_backend
from edgekit.runtime.ncnn_backend import NcnnBackend, graph_io, input_shape, read_param
from edgekit.runtime.openvino_backend import OpenVinoBackend
from tests.export.export_helpers import realistic_init_

torch = pytest.importorskip("torch")
IMGSZ = 64
FAST_MODELS = ["yolo-lite", "mobilenetv2_035-yolo"]
ALL_MODELS = list_models()  # the registry: a new model is converted here without editing this file


def needs(*modules: str) -> None:
    for m in modules:
        pytest.importorskip(m)


def build(name: str):
    from edgekit.models import create_model

    return realistic_init_(create_model(name, num_classes=2))


def to_onnx(model, path):
    x = torch.zeros(1, 3, IMGSZ, IMGSZ)
    torch.onnx.export(model, x, str(path), dynamo=False, opset_version=17, input_names=["images"])
    return path


def torch_outputs(model, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    return [t.numpy() for t in ([out] if isinstance(out, torch.Tensor) else out)]


def compare(backend, model, images) -> tuple[float, float]:
    """(max abs difference, min cosine) of backend vs torch over ``images``, checking shapes."""
    worst, cos = 0.0, 1.0
    for x in images:
        outs, refs = backend.run([x]), torch_outputs(model, x)
        assert [o.shape for o in outs] == [r.shape for r in refs]
        for o, r in zip(outs, refs):
            worst = max(worst, float(np.abs(o - r).max()))
            a, b = o.ravel().astype(np.float64), r.ravel().astype(np.float64)
            cos = min(cos, float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    return worst, cos


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def calib(sample_yaml):
    from edgekit.export.calibration import CalibrationReader

    return CalibrationReader.from_source(sample_yaml, imgsz=IMGSZ, images=16)


@pytest.fixture(scope="module")
def images(sample_yaml):
    """4 real images from the val split: INT8 is judged on images it was not calibrated on."""
    from edgekit.export.calibration import CalibrationReader

    return list(CalibrationReader.from_source(sample_yaml, imgsz=IMGSZ, images=4, split="val"))


@pytest.fixture(scope="module", params=FAST_MODELS)
def exported(request, tmp_path_factory):
    """(name, model, onnx path) for each fast model."""
    model = build(request.param)
    return request.param, model, to_onnx(model, tmp_path_factory.mktemp("onnx") / "m.onnx")


# ---------------------------------------------------------------- OpenVINO


@pytest.fixture(scope="module")
def ov_fp16(tmp_path_factory):
    needs("openvino")
    model = build("yolo-lite")
    d = tmp_path_factory.mktemp("ovfp16")
    onnx2openvino(to_onnx(model, d / "m.onnx"), d / "ir" / "m.xml", "fp16")
    return model, d / "ir" / "m.xml"


def test_openvino_fp32_parity(exported, images, tmp_path):
    needs("openvino")
    name, model, onnx_path = exported
    info = onnx2openvino(onnx_path, tmp_path / "ir" / "m.xml", "fp32")
    assert sorted(p.name for p in (tmp_path / "ir").iterdir()) == ["m.bin", "m.xml"]
    assert info["converter"].startswith("openvino ") and info["input_name"] == "images"
    assert info["input_layout"] == info["output_layout"] == "NCHW"
    b = OpenVinoBackend(tmp_path / "ir" / "m.xml", threads=1)
    d = b.describe()
    assert d["precision"] == "f32" and d["device"] == "CPU" and d["warnings"] == []
    assert [o.name for o in b.outputs] == info["output_names"]
    max_abs, _ = compare(b, model, images)
    assert max_abs < 1e-4, f"{name}: OpenVINO fp32 differs from torch by {max_abs}"


def test_openvino_fp16(ov_fp16, images):

    model, xml = ov_fp16
    max_abs, cos = compare(OpenVinoBackend(xml, threads=1), model, images)
    assert max_abs < 1e-2 and cos > 0.9999


@pytest.mark.parametrize("name", FAST_MODELS)
def test_openvino_int8_real_images(name, calib, images, tmp_path):
    needs("openvino", "nncf")
    model = build(name)
    onnx_path = to_onnx(model, tmp_path / "m.onnx")
    info = onnx2openvino(onnx_path, tmp_path / "int8" / "m.xml", "int8", calib=calib)
    assert "nncf" in info["converter"] and info["quantization"]["subset_size"] == len(calib)
    assert sorted(p.name for p in (tmp_path / "int8").iterdir()) == ["m.bin", "m.xml"]
    onnx2openvino(onnx_path, tmp_path / "fp32" / "m.xml", "fp32")
    assert (tmp_path / "int8" / "m.bin").stat().st_size < 0.5 * (tmp_path / "fp32" / "m.bin").stat().st_size
    _, cos = compare(OpenVinoBackend(tmp_path / "int8" / "m.xml", threads=1), model, images)
    assert cos > 0.9, f"{name}: INT8 outputs do not follow fp32 (cosine {cos})"


@pytest.mark.parametrize("calib_arg", [None, []])
def test_openvino_int8_needs_calibration(calib_arg, tmp_path):
    needs("openvino")
    onnx_path = to_onnx(build("yolo-lite"), tmp_path / "m.onnx")
    with pytest.raises(EdgekitError, match="INT8 needs calibration images: give --data DATA.yaml or --calib DIR"):
        onnx2openvino(onnx_path, tmp_path / "ir" / "m.xml", "int8", calib=calib_arg)
    assert not (tmp_path / "ir" / "m.xml").exists()


def test_manifest_round_trip(ov_fp16, images, tmp_path):
    import shutil


    model, src = ov_fp16
    xml = tmp_path / "m.xml"
    shutil.copy(src, xml)
    shutil.copy(src.with_suffix(".bin"), xml.with_suffix(".bin"))
    read_manifest = OpenVinoBackend.read_manifest
    assert read_manifest(xml) is None
    before = OpenVinoBackend(xml, threads=1).run([images[0]])
    bin_hash = sha(xml.with_suffix(".bin"))
    manifest = {"task": "detect", "head_spec": {"strides": [32]}, "odd": "<tag> & \"quotes\" 'é' ✓"}
    embed_manifest(xml, manifest)
    embed_manifest(xml, {**manifest, "version": 2})  # re-embedding replaces, not appends
    assert read_manifest(xml) == {**manifest, "version": 2}
    assert sha(xml.with_suffix(".bin")) == bin_hash, "embedding changed the weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml"], "temporary files left behind"
    after = OpenVinoBackend(xml, threads=1).run([images[0]])
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_openvino_absent_device(ov_fp16, images):
    import openvino as ov


    if any(d.startswith("NPU") for d in ov.Core().available_devices):
        pytest.skip("this machine has an NPU")
    _, xml = ov_fp16
    with pytest.raises(EdgekitError, match=r"'NPU' is not present here \(available: .*CPU"):
        OpenVinoBackend(xml, device="NPU")
    b = OpenVinoBackend(xml, device="NPU", fallback=True, threads=1)
    assert b.device == "CPU" and len(b.warnings) == 1 and "fell back to CPU" in b.warnings[0]
    assert b.describe()["warnings"] == b.warnings
    assert b.run([images[0]])[0].shape == tuple(b.outputs[0].shape)


# ---------------------------------------------------------------- ncnn


def test_ncnn_fp32_parity(exported, images, tmp_path):
    needs("pnnx", "ncnn")
    name, model, _ = exported
    info = torch2ncnn(model, (IMGSZ, IMGSZ), tmp_path / "nc" / "m.param")
    assert sorted(p.name for p in (tmp_path / "nc").iterdir()) == ["m.bin", "m.param"]
    n_out = len(torch_outputs(model, images[0]))
    assert info["input_name"] == "in0" and info["output_names"] == [f"out{k}" for k in range(n_out)]
    b = NcnnBackend(tmp_path / "nc" / "m.param", threads=1)
    assert b.inputs[0].shape == (1, 3, IMGSZ, IMGSZ)
    assert [o.shape for o in b.outputs] == [r.shape for r in torch_outputs(model, images[0])]
    d = b.describe()
    assert d["precision"] == "fp32" and not any(d["options"].values())
    max_abs, _ = compare(b, model, images)
    assert max_abs < 1e-4, f"{name}: ncnn fp32 differs from torch by {max_abs}"


def test_ncnn_fp16(images, tmp_path):
    needs("pnnx", "ncnn")
    model = build("yolo-lite")
    torch2ncnn(model, IMGSZ, tmp_path / "w32" / "m.param")
    info = torch2ncnn(model, IMGSZ, tmp_path / "w16" / "m.param", fp16=True)
    assert info["precision"] == "fp16"
    size = lambda d: (tmp_path / d / "m.bin").stat().st_size  # noqa: E731
    assert size("w16") < 0.6 * size("w32")
    b = NcnnBackend(tmp_path / "w16" / "m.param", threads=1, precision="fp16")
    assert all(b.describe()["options"][f] for f in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic"))
    max_abs, cos = compare(b, model, images)
    assert max_abs < 1e-2 and cos > 0.9999


def test_ncnn_refuses_unlowered_op(tmp_path):
    needs("pnnx")
    class Erfinv(torch.nn.Module):  # no ncnn layer: pnnx leaves "aten::erfinv" in the .param
        def forward(self, x):
            return torch.special.erfinv(x * 0.5)

    with pytest.raises(EdgekitError, match=r"pnnx could not lower 1 op\(s\) to ncnn layers: aten::erfinv"):
        torch2ncnn(Erfinv().eval(), 16, tmp_path / "m.param")
    assert list(tmp_path.iterdir()) == []


def test_ncnn_refuses_wrong_numbers(tmp_path, monkeypatch):
    """A conversion whose numbers are wrong fails (pnnx 20261020 does this to flip/roll/cumsum axes)."""
    needs("pnnx", "ncnn")
    run = NcnnBackend.run
    monkeypatch.setattr(NcnnBackend, "run", lambda self, xs: [o + 0.5 for o in run(self, xs)])
    with pytest.raises(EdgekitError, match="out0 differs from torch by 0.5"):
        torch2ncnn(build("yolo-lite"), IMGSZ, tmp_path / "m.param")
    assert list(tmp_path.iterdir()) == []


def test_ncnn_param_parsing():

    text = ("7767517\n4 5\nInput in0 0 1 in0 0=64 1=48 2=3\nSplit s 1 2 in0 a b\n"
            "Convolution c1 1 1 a out1 0=8\nConvolution c0 1 1 b out0 0=8\n")
    layers = read_param(text)
    assert graph_io(layers) == (["in0"], ["out0", "out1"])
    assert input_shape(layers, "in0") == (1, 3, 48, 64)
    with pytest.raises(EdgekitError, match="not a text ncnn .param"):
        read_param("hello\n")


def test_registry_finds_both(ov_fp16, tmp_path):
    needs("ncnn", "pnnx")
    model, xml = ov_fp16
    torch2ncnn(model, IMGSZ, tmp_path / "m.param")
    assert backend_for(xml).name == "openvino" and backend_for(tmp_path / "m.param").name == "ncnn"
    assert open_backend(xml, threads=1).name == "openvino"
    assert open_backend(tmp_path / "m.param", threads=1).name == "ncnn"


def call_exporter(module: str, tmp_path):
    """Call the exporter that needs ``module`` (its import fails first, before any file is read)."""
    if module == "pnnx":
    
        return torch2ncnn(torch.nn.Identity(), 8, tmp_path / "m.param")

    return onnx2openvino(tmp_path / "m.onnx", tmp_path / "m.xml", "int8" if module == "nncf" else "fp32", calib=[0])


@pytest.mark.parametrize("module", ["openvino", "nncf", "pnnx"])
def test_missing_packages(module, tmp_path, monkeypatch):
    (tmp_path / "m.onnx").write_bytes(b"")
    if module == "nncf":  # openvino must be there to get as far as the nncf import
        needs("openvino")
        to_onnx(build("yolo-lite"), tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(MissingExtraError, match=f"{module} is not installed"):
        call_exporter(module, tmp_path)


# ---------------------------------------------------------------- every model (slow)


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_MODELS + [pytest.param("yolo-fastest-1.1", marks=pytest.mark.shared)])
def test_every_model_converts_with_fp32_parity(name, images, tmp_path, request):
    needs("openvino", "pnnx", "ncnn")
    if name == "yolo-fastest-1.1":  # real Darknet weights (depthwise convs, routes, upsample)
        from edgekit.models import load_darknet

        cfgs = glob.glob(str(request.getfixturevalue("shared_dir") / "models" / "yolo-fastest-1.1" / "*.cfg"))
        if not cfgs:
            pytest.skip("yolo-fastest-1.1 is not in ../shared/models")
        model = load_darknet(cfgs[0], cfgs[0][:-4] + ".weights").eval()
    else:
        model = build(name)
    to_onnx(model, tmp_path / "m.onnx")
    onnx2openvino(tmp_path / "m.onnx", tmp_path / "ov" / "m.xml", "fp32")
    torch2ncnn(model, IMGSZ, tmp_path / "nc" / "m.param")
    # fp32 sums in another order: allow 1e-5 relative on large outputs (yolo-fastest's reach ~15)
    scale = max(1.0, max(float(np.abs(r).max()) for r in torch_outputs(model, images[0])))
    for b in (OpenVinoBackend(tmp_path / "ov" / "m.xml", threads=1), NcnnBackend(tmp_path / "nc" / "m.param", threads=1)):
        max_abs, _ = compare(b, model, images)
        assert max_abs < 1e-4 * scale, f"{name} on {b.name}: max abs {max_abs}"
