"""``quant-report`` and ``--keep-float`` for tflite-int8 (ai-edge-quantizer) and openvino-int8 (NNCF).

Real conversions of the tiny detector on the embedded sample: the report names layers of
the target's own graph with their error and activation ranges, the named layers really stay
float in the exported artifact (float weights in the flatbuffer; a plain Constant instead of
NNCF's int8 weight decompression in the IR), the manifest records them, and a name the
model does not have is one line naming where the names come from.
"""

from __future__ import annotations

import json

import pytest

from edgekit.errors import EdgekitError

TARGETS = ("tflite-int8", "openvino-int8")


@pytest.fixture(scope="module", params=TARGETS)
def report(request, tiny_detector, sample_yaml):
    from edgekit.export.quant_report import quant_report

    return quant_report(tiny_detector, request.param, data=sample_yaml, images=3, calib_images=12)


def test_report_ranks_the_targets_own_layers(report):
    rows = report["layers"]
    assert len(rows) >= 5 and report["images"] == 3
    assert report["images_from"].startswith("the verification split")
    assert [r["lost_db"] for r in rows] == sorted((r["lost_db"] for r in rows), reverse=True)
    for r in rows:
        assert {"name", "op", "nodes", "sqnr_db", "lost_db", "weight_sqnr_db", "range", "abs_p999"} <= set(r)
        assert r["range"][0] <= r["range"][1] and 0 < r["sqnr_db"] < 99
    convs = [r for r in rows if "CONV_2D" in r["op"] or "Convolution" in r["op"]]
    assert convs and all(r["weight_sqnr_db"] and 25 < r["weight_sqnr_db"] < 99 for r in convs)  # int8 weights: ~40 dB
    if report["target"] == "tflite-int8":
        assert rows[0]["name"].startswith("inner.") and rows[0]["nodes"] == [rows[0]["name"]]
        assert "ai-edge-quantizer" in report["quantizer"]
    else:
        assert rows[0]["name"].startswith("/inner/") and rows[0]["op"].startswith(("Convolution", "Add", "Concat"))
        assert "nncf" in report["quantizer"] and report["calib_method"] == "mean-minmax"


def _float_weight_ops_tflite(path) -> set[str]:
    """Layer names (as quant-report writes them) of the conv ops whose weights are float32."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    from edgekit.export.tflite_graph import short_name
    from edgekit.export.tflite_graph import op_names as _op_names

    model = flatbuffer_utils.read_model(str(path))
    sg = model.subgraphs[0]
    out = set()
    for op, kind in zip(sg.operators, _op_names(model)[0]):
        if kind == "CONV_2D" and sg.tensors[op.inputs[1]].type == fb.TensorType.FLOAT32:
            out.add(f"{short_name(sg.tensors[op.outputs[0]].name.decode())}:{kind}")
    return out


def _float_weight_ops_openvino(path) -> set[str]:
    """Convolutions of the IR whose weights are a plain float Constant (no int8 decompression)."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    return {op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"
            and op.input(1).get_source_output().get_node().get_type_name() == "Constant"}


def test_keep_float_names_leave_those_layers_float(report, tiny_detector, sample_yaml, tmp_path):
    from edgekit.export import export
    from edgekit.runtime.runner import read_manifest

    target = report["target"]
    keep = report["layers"][0]["nodes"]
    rep = export(tiny_detector, [target], data=sample_yaml, calib_images=12, out=tmp_path, max_map_drop=1.0,
                 keep_float=",".join(keep), parity_images=2)
    (row,) = rep.results
    assert row.ok, row.reason
    assert row.kept_float["nodes"] == keep
    path = tmp_path / row.file
    assert read_manifest(path)["conversion"]["kept_float"] == keep
    floats = _float_weight_ops_tflite(path) if target == "tflite-int8" else _float_weight_ops_openvino(path)
    assert floats == {keep[0]}, f"only {keep[0]} should keep float weights, got {floats}"


@pytest.mark.parametrize("target, msg", [
    ("tflite-int8", "no layer named nope:CONV_2D in the TFLite model: take the names from `edgekit quant-report"),
    ("openvino-int8", "no node named /nope/Conv in the OpenVINO model: take the names from `edgekit quant-report"),
])
def test_bad_keep_float_name_is_one_line(tiny_detector, sample_yaml, tmp_path, target, msg):
    from edgekit.export import export

    name = "nope:CONV_2D" if target == "tflite-int8" else "/nope/Conv"
    rep = export(tiny_detector, [target], data=sample_yaml, calib_images=8, out=tmp_path, keep_float=name,
                 parity_images=2)
    (row,) = rep.results
    assert row.status == "failed" and msg in row.reason and "\n" not in row.reason
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".tflite", ".xml", ".bin")]


def test_quant_report_cli_for_tflite_prints_one_json_document(tiny_detector, sample_yaml, capsys):
    from edgekit.cli.main import main

    code = main(["quant-report", str(tiny_detector), "--target", "tflite-int8", "--data", str(sample_yaml),
                 "--images", "2", "--calib-images", "8", "--json"])
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out)["target"] == "tflite-int8"


def test_quant_report_of_a_float_target_is_one_line(tiny_detector, sample_yaml, capsys):
    from edgekit.cli.main import main

    assert main(["quant-report", str(tiny_detector), "--target", "tflite", "--data", str(sample_yaml)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "quant-report analyses an INT8 target" in err[0]


def test_sensitivity_refuses_nothing_silently():
    from edgekit.export.tflite_graph import keep_float_recipe

    with pytest.raises(EdgekitError, match="no layer named b:CONV_2D"):
        keep_float_recipe([{"name": "a:CONV_2D", "scope": "a;2"}], ["b:CONV_2D"])
