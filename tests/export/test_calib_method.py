"""``--calib-method``: the quantizer really calibrates another way, ``auto`` keeps the best held-out score.

Real onnxruntime and NNCF quantization of the tiny detector on the embedded sample: percentile
ranges differ from min-max ranges in the file itself, the manifest records the method, ``auto``
tries every method of the target and keeps the one with the best mAP, and a method a target
cannot honour is one line before anything is converted.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.export.export_helpers import small_test_split


@pytest.fixture(scope="module")
def few_test_images(sample_yaml, tmp_path_factory):
    """The sample with a 4-image test split: auto's tries each run the gate, keep them cheap."""
    return small_test_split(sample_yaml, tmp_path_factory.mktemp("few-test"), 4)


def _activation_scales(path) -> dict[str, float]:
    """Scale of every activation QuantizeLinear of a QDQ model, by the tensor it quantizes."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in g.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits and inits[n.input[1]].size == 1}


def test_percentile_changes_the_onnx_ranges_and_is_recorded(tiny_detector, few_test_images, tmp_path):
    from edgekit.export import export
    from edgekit.runtime.runner import read_manifest

    scales = {}
    for method in ("minmax", "percentile"):
        rep = export(tiny_detector, ["onnx-int8"], data=few_test_images, calib_images=12, out=tmp_path / method,
                     max_map_drop=1.0, calib_method=method, parity_images=2)
        (row,) = rep.results
        assert row.ok, row.reason
        assert row.calib_method == {"method": method, "auto": False}
        conv = read_manifest(tmp_path / method / row.file)["conversion"]
        assert conv["calib_method"] == method and method.title().replace("Minmax", "MinMax") in conv["converter"]
        scales[method] = _activation_scales(tmp_path / method / row.file)
    common = sorted(set(scales["minmax"]) & set(scales["percentile"]) - {"images"})
    assert common
    assert any(not np.isclose(scales["minmax"][t], scales["percentile"][t], rtol=1e-3) for t in common)


def test_openvino_range_estimator_is_recorded(tiny_detector, few_test_images, tmp_path):
    from edgekit.export import export
    from edgekit.runtime.runner import read_manifest

    rep = export(tiny_detector, ["openvino-int8"], data=few_test_images, calib_images=12, out=tmp_path,
                 max_map_drop=1.0, calib_method="minmax", parity_images=2)
    (row,) = rep.results
    assert row.ok, row.reason
    conv = read_manifest(tmp_path / row.file)["conversion"]
    assert conv["calib_method"] == "minmax" and conv["quantization"]["range_estimator"] == "MINMAX"


def test_auto_tries_every_method_and_keeps_the_best_score(tiny_detector, few_test_images, tmp_path):
    from edgekit.export import export
    from edgekit.export.calib_method import METHODS
    from edgekit.runtime.runner import read_manifest

    rep = export(tiny_detector, ["onnx-int8"], data=few_test_images, calib_images=12, out=tmp_path,
                 max_map_drop=1.0, calib_method="auto", parity_images=2)
    (row,) = rep.results
    assert row.ok, row.reason
    tries = row.calib_method["tries"]
    assert [t["method"] for t in tries] == list(METHODS["onnx-int8"]) and row.calib_method["auto"]
    best = max(s for s in (t["score"] for t in tries if t["status"] == "ok"))
    chosen = row.calib_method["method"]
    assert next(t["score"] for t in tries if t["method"] == chosen) == best
    assert read_manifest(tmp_path / row.file)["conversion"]["calib_method"] == chosen  # the files are the chosen try's
    assert row.map["map50"] == pytest.approx(best)


@pytest.mark.parametrize("args, msg", [
    (["--target", "onnx-int8", "--calib-method", "kl"], "--calib-method kl: choose one of minmax"),
    (["--target", "tflite-int8", "--calib-method", "entropy"], "--calib-method entropy: tflite-int8 takes minmax"),
    (["--target", "onnx", "--calib-method", "minmax"], "--calib-method is built for onnx-int8"),
])
def test_bad_calib_method_is_one_line(tiny_detector, sample_yaml, tmp_path, capsys, args, msg):
    from edgekit.cli.main import main

    out = tmp_path / "o"
    assert main(["export", str(tiny_detector), "--data", str(sample_yaml), "--out", str(out), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0]
    assert not out.exists() or not [p for p in out.iterdir() if p.suffix in (".onnx", ".tflite")]
