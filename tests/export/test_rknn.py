"""RKNN targets: rknn-toolkit2 in a venv of its own, converted in a child process, verified in its x86 simulator.

The venv is built once per machine by ``edgekit rknn setup`` (the ``rknn_toolkit`` fixture, cached in
``~/.cache/edgekit/rknn``); a machine where it cannot be built fails these tests with the reason. The
tiny detector (yolo-lite, 64 px, random but realistically scaled weights) goes through the real
``export()``: converted by the toolkit, run in its simulator, judged by the same parity gate as every
target; the report and manifest say "simulated" and record no latency. Running the ``.rknn`` here,
where rknn-toolkit-lite2 and the NPU runtime cannot exist, is one clear error, in Python and on the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.export.targets import TARGETS, resolve_targets
from tests.export.export_helpers import TINY_CALIB


def edgekit(*args, env=None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def test_the_registry_rows():
    for name, precision in (("rknn", "fp16"), ("rknn-int8", "int8")):
        t = TARGETS[name]
        assert (t.family, t.backend, t.suffix, t.precision, t.from_onnx) == ("rknn", "rknn", ".rknn", precision, True)
        assert t.simulator is not None and t.companions == ()
        assert "edgekit rknn setup" in t.install_hint and t.extra == "export"


def test_a_missing_toolkit_names_the_setup_command(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_RKNN_ENV", str(tmp_path / "no-venv"))
    t = TARGETS["rknn-int8"]
    assert not t.available() and any("rknn-toolkit2 venv" in m for m in t.missing())
    with pytest.raises(EdgekitError, match=r"target rknn-int8 needs rknn-toolkit2 venv .*edgekit rknn setup"):
        resolve_targets(["rknn-int8"])
    assert "rknn-int8" not in [x.name for x in resolve_targets(["all"])]  # `all` takes what is installed
    r = edgekit("export", "--list", "--json", env={"EDGEKIT_RKNN_ENV": str(tmp_path / "no-venv")})
    rows = {row["target"]: row for row in json.loads(r.stdout)}
    assert rows["rknn"]["available"] is False and "edgekit rknn setup" in rows["rknn-int8"]["install"]
    text = edgekit("export", "--list", env={"EDGEKIT_RKNN_ENV": str(tmp_path / "no-venv")}).stdout
    assert any(ln.startswith("rknn-int8 ") and "edgekit rknn setup" in ln for ln in text.splitlines()), text


def test_an_unbuildable_venv_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = edgekit("rknn", "setup", "--env", blocker / "rknn")
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: cannot create the rknn-toolkit2 venv"), r.stderr
    assert "EDGEKIT_RKNN_ENV" in lines[0]


def test_setup_never_replaces_a_folder_that_is_not_a_venv(tmp_path):
    from edgekit.export.rknn_env import setup

    keep = tmp_path / "projects" / "notes.txt"
    keep.parent.mkdir()
    keep.write_text("mine")
    with pytest.raises(EdgekitError, match="exists and is not a venv: give --env"):
        setup(tmp_path / "projects")
    assert keep.read_text() == "mine"


def test_setup_is_idempotent(rknn_toolkit):
    from edgekit.export.rknn_env import ready, setup

    t0 = time.perf_counter()
    assert setup() == rknn_toolkit and ready()
    assert time.perf_counter() - t0 < 2.0  # a complete venv is one file read
    assert rknn_toolkit["toolkit"] == "2.5.0" and rknn_toolkit["versions"]["onnx"] == "1.18.0"


@pytest.fixture(scope="module")
def rknn_report(rknn_toolkit, tiny_detector, sample_yaml, tmp_path_factory):
    """The tiny detector exported to rknn and rknn-int8 (calibrated on the sample's train images)."""
    from edgekit.export import export

    out = tmp_path_factory.mktemp("rknn")
    rep = export(tiny_detector, ["rknn", "rknn-int8"], calib=sample_yaml.parent / "train" / "images",
                 calib_images=TINY_CALIB, out=out)
    return rep, out


def test_tiny_detector_exports_and_passes_parity_in_the_simulator(rknn_report):
    from edgekit.export.verify import TOLERANCES
    from edgekit.runtime.runner import read_manifest

    rep, out = rknn_report
    rows = {r.target: r for r in rep.results}
    for name in ("rknn", "rknn-int8"):
        r = rows[name]
        assert r.ok, r.reason
        tol = TOLERANCES[TARGETS[name].precision]
        assert r.parity["passed"] and r.parity["cosine"] >= tol["min_cosine"] and r.parity["images"] > 0
        # labelled simulated, and no latency: a simulator's run time is not the NPU's speed
        assert r.latency_ms is None and "simulator" in r.simulated["by"] and "not" in r.simulated["latency_ms"]
        row = r.to_dict()
        assert row["simulated"] == r.simulated and row["latency_ms"] is None
        man = read_manifest(out / r.file)
        assert man["backend"] == "rknn" and man["verification"]["simulated"] == r.simulated
        assert man["verification"]["host_latency_ms"] is None
        inp = man["input"]
        assert (inp["layout"], inp["dtype"], inp["shape"]) == ("NHWC", "uint8", [1, 64, 64, 3])
        assert inp["quant"] == pytest.approx([1 / 255, 0])  # the pixels as they are: the model divides by 255
        assert man["conversion"]["platform"] == "rk3588" and man["files"] == [r.file]
    int8 = read_manifest(out / rows["rknn-int8"].file)["conversion"]
    assert int8["quantization"]["images"] == TINY_CALIB and int8["output_clip"] == pytest.approx(9.2)
    assert rows["rknn-int8"].parity["output_clip"] == pytest.approx(9.2)
    md = (out / "export_report.md").read_text()
    assert "| rknn-int8 |" in md and "ok (simulated)" in md


def test_the_simulator_cannot_reopen_a_file(rknn_report):
    from edgekit.export.rknn import open_simulator

    rep, out = rknn_report
    with pytest.raises(EdgekitError, match="runs only a model it has just built"):
        open_simulator(out / rep.results[0].file)


def test_running_an_rknn_here_is_one_clear_error(rknn_report, sample_yaml):
    from edgekit.runtime import load

    rep, out = rknn_report
    art = out / next(r.file for r in rep.results if r.target == "rknn-int8")
    with pytest.raises(EdgekitError) as err:
        load(art)
    msg = str(err.value)
    assert "\n" not in msg and "rknn-toolkit-lite2" in msg and "librknnrt.so" in msg
    image = sorted((sample_yaml.parent / "test" / "images").glob("*.jpg"))[0]
    for args in (("predict", art, image), ("bench", art, "--frames", 2, "--warmup", 0)):
        r = edgekit(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert "rknn-toolkit-lite2" in lines[0] and "not a speed" in lines[0]


def test_a_failed_conversion_shows_the_toolkit_log_and_writes_nothing(rknn_toolkit, tmp_path):
    from edgekit.export.rknn import onnx2rknn

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an ONNX model")
    out = tmp_path / "m.rknn"
    with pytest.raises(EdgekitError, match=r"rknn-toolkit2 conversion failed .*\[toolkit log: ") as err:
        onnx2rknn(bad, out, "fp16", imgsz=(64, 64))
    assert "\n" not in str(err.value) and not out.exists()


def test_int8_without_images_and_bad_options_are_refused(tmp_path):
    from edgekit.export.rknn import onnx2rknn

    onnx = tmp_path / "m.onnx"
    for call, message in ((lambda: onnx2rknn(onnx, tmp_path / "m.rknn", "int8"), "needs calibration images"),
                          (lambda: onnx2rknn(onnx, tmp_path / "m.rknn", "int4"), "precision must be one of"),
                          (lambda: onnx2rknn(onnx, tmp_path / "m.rknn", platform="rk9999"), "unknown RKNN platform"),
                          (lambda: onnx2rknn(onnx, tmp_path / "m.onnx"), "written as a .rknn file")):
        with pytest.raises(EdgekitError, match=message):
            call()


def test_output_clip_is_a_clip_node_on_each_output(tmp_path):
    import onnx
    import onnxruntime as ort

    from edgekit.export.onnx import torch2onnx
    from edgekit.export.rknn import clip_outputs
    from edgekit.models import create_model
    from tests.export.export_helpers import realistic_init_

    src, dst = tmp_path / "m.onnx", tmp_path / "clipped.onnx"
    torch2onnx(realistic_init_(create_model("yolo-lite", num_classes=2, imgsz=64)), (64, 64), src)
    assert clip_outputs(src, dst, 0.2) == len(onnx.load(str(src)).graph.output)
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    raw = ort.InferenceSession(str(src)).run(None, {"images": x})
    got = ort.InferenceSession(str(dst)).run(None, {"images": x})
    assert max(float(np.abs(r).max()) for r in raw) > 0.2  # the clip does something on this model
    for r, g in zip(raw, got):
        np.testing.assert_allclose(g, np.clip(r, -0.2, 0.2), atol=1e-6)


def test_the_toolkit_log_is_captured_and_shown_with_verbose(rknn_toolkit, tiny_detector, sample_yaml, tmp_path):
    calib = sample_yaml.parent / "train" / "images"
    args = ("export", tiny_detector, "--target", "rknn-int8", "--calib", calib, "--calib-images", 4, "--json")
    quiet = edgekit(*args, "--out", tmp_path / "quiet")
    loud = edgekit("--verbose", *args, "--out", tmp_path / "loud")
    for r in (quiet, loud):  # stdout is the report alone, either way
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["targets"][0]["status"] == "ok"
    assert "rknn-toolkit2 version" not in quiet.stderr and "I rknn building done" not in quiet.stderr
    assert "--- rknn-int8 conversion output ---" in loud.stderr and "I rknn-toolkit2 version: 2.5.0" in loud.stderr


def test_another_platform_and_an_unknown_one(rknn_toolkit, tiny_detector, tmp_path):
    from edgekit.export import export
    from edgekit.runtime.runner import read_manifest

    rep = export(tiny_detector, ["rknn"], out=tmp_path / "rk3566", rknn_platform="rk3566")
    assert rep.ok, rep.results[0].reason
    man = read_manifest(tmp_path / "rk3566" / rep.results[0].file)
    assert man["conversion"]["platform"] == "rk3566" and "(rk3566)" in man["verification"]["simulated"]["by"]
    r = edgekit("export", tiny_detector, "--target", "rknn", "--rknn-platform", "rk9999", "--out", tmp_path / "bad")
    assert r.returncode == 1 and "unknown RKNN platform 'rk9999': choose one of rk3588" in r.stderr, r.stderr
    assert not list((tmp_path / "bad").glob("*.rknn"))
