"""``edgekit quant-report`` ranks layers by the INT8 error they introduce; ``--keep-float`` leaves them in float.

Real onnxruntime quantization of a tiny detector on the embedded sample: the report's names
are nodes of the graph, ``--keep-float`` really removes their quantization (no
DequantizeLinear feeds them), ``auto`` stops at the first passing try and says so when none
passes, and what it is not built for is refused rather than ignored.
"""

from __future__ import annotations

import json

import pytest

from tests.export.export_helpers import small_test_split

from edgekit.errors import EdgekitError


@pytest.fixture(scope="module")
def report(tiny_detector, sample_yaml):
    from edgekit.export.quant_report import quant_report

    return quant_report(tiny_detector, "onnx-int8", data=sample_yaml, images=4, calib_images=16)


def _graph(path):
    import onnx

    return onnx.load(str(path)).graph


def test_report_ranks_real_nodes_by_the_error_they_introduce(report):
    rows = report["layers"]
    assert len(rows) >= 5 and report["images"] == 4
    assert report["images_from"].startswith("the verification split")
    assert [r["lost_db"] for r in rows] == sorted((r["lost_db"] for r in rows), reverse=True)
    for r in rows:
        assert {"name", "op", "nodes", "sqnr_db", "lost_db", "weight_sqnr_db", "range", "abs_p999"} <= set(r)
        assert r["range"][0] <= r["range"][1]
    assert report["worst"][0] == rows[0]["name"]
    # each row keeps its place in the graph (ONNX nodes are stored in topological order): what prefixes use
    assert sorted(r["position"] for r in rows) == list(range(len(rows)))


def test_quant_report_cli_prints_one_json_document(tiny_detector, sample_yaml, capsys):
    from edgekit.cli.main import main

    code = main(["quant-report", str(tiny_detector), "--data", str(sample_yaml), "--images", "2", "--calib-images", "8",
                 "--json"])
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out)["target"] == "onnx-int8"


def test_other_int8_targets_are_refused_not_faked(tiny_detector, sample_yaml):
    from edgekit.export.quant_report import quant_report

    with pytest.raises(EdgekitError, match="quant-report for ncnn-int8 is not built"):
        quant_report(tiny_detector, "ncnn-int8", data=sample_yaml)


def test_keep_float_names_leave_those_nodes_unquantized(tiny_detector, sample_yaml, report, tmp_path):
    from edgekit.export import export
    from edgekit.runtime.runner import read_manifest

    keep = report["layers"][0]["nodes"]
    names = tmp_path / "keep-float.txt"  # the @FILE form: a recipe shipped beside the weights
    names.write_text("# from edgekit quant-report\n" + "\n".join(keep) + "\n")
    rep = export(tiny_detector, ["onnx-int8"], data=sample_yaml, calib_images=16, out=tmp_path, max_map_drop=1.0,
                 keep_float=f"@{names}")
    (row,) = rep.results
    assert row.ok and row.kept_float["nodes"] == keep
    path = tmp_path / row.file
    assert read_manifest(path)["conversion"]["kept_float"] == keep
    graph = _graph(path)
    dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for node in (n for n in graph.node if n.name in keep and n.op_type == "Conv"):
        assert not (set(node.input[1:]) & dq_outputs), f"{node.name}'s weights should stay float"


@pytest.fixture()
def few_test_images(sample_yaml, tmp_path):
    """The sample with a 4-image test split: auto's tries each run the gate, keep them cheap."""
    return small_test_split(sample_yaml, tmp_path, 4)


def test_keep_float_auto_tries_more_layers_then_says_it_failed(tiny_detector, few_test_images, tmp_path):
    from edgekit.export import export

    # an impossible gate: every try is rejected, so auto must walk its steps and say so
    rep = export(tiny_detector, ["onnx-int8"], data=few_test_images, calib_images=8, out=tmp_path / "out",
                 max_map_drop=-1.0, keep_float="auto", parity_images=2)
    (row,) = rep.results
    assert row.status == "rejected" and "--keep-float auto: still rejected" in row.reason
    assert "and with every float prefix up to them" in row.reason
    assert row.kept_float["tries"] >= 3 and row.kept_float["plain_int8"]["status"] == "rejected"
    # after the worst layers alone, prefixes: every node up to the deepest of the k worst (the last try's)
    assert row.kept_float.get("prefix_of_worst") in (1, 2, 4, 8, 16)
    assert not list((tmp_path / "out").glob("*.onnx"))


@pytest.mark.parametrize("spec, msg", [("/no/such/Conv", "no node named /no/such/Conv"),
                                       ("0", "N must be 1 or more")])
def test_bad_keep_float_is_one_line(tiny_detector, sample_yaml, tmp_path, spec, msg):
    from edgekit.export import export

    with pytest.raises(EdgekitError, match=msg):
        rep = export(tiny_detector, ["onnx-int8"], data=sample_yaml, calib_images=8, out=tmp_path, keep_float=spec)
        raise EdgekitError(rep.results[0].reason)  # a converter error lands in the row, not as an exception


def test_keep_float_names_file_is_read_and_checked(tmp_path):
    from edgekit.export.keep_float import parse_keep_float

    f = tmp_path / "keep.txt"
    f.write_text("# chosen by hand\n/a/Conv, /b/Conv\n\n/c/Conv  # the stem\n")
    assert parse_keep_float(f"@{f}") == ["/a/Conv", "/b/Conv", "/c/Conv"]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    for spec, msg in ((f"@{tmp_path / 'missing.txt'}", "no such file"), (f"@{empty}", "names no layers"),
                      (f"@{binary}", "not a UTF-8 text file")):
        with pytest.raises(EdgekitError, match=msg):
            parse_keep_float(spec)


def test_keep_float_for_an_unsupported_target_is_refused(tiny_detector, sample_yaml, tmp_path):
    from edgekit.export import export

    with pytest.raises(EdgekitError, match="--keep-float is built for onnx-int8, tflite-int8, openvino-int8 "
                                           r"\(not ncnn-int8\)"):
        export(tiny_detector, ["ncnn-int8"], data=sample_yaml, out=tmp_path, keep_float="auto")


def test_keep_float_budget_stops_auto_at_the_first_try_over_it(tiny_detector, few_test_images, tmp_path):
    from edgekit.export import export

    # every try fails the gate, and a budget far below any real latency: auto must stop after its first try
    rep = export(tiny_detector, ["onnx-int8"], data=few_test_images, calib_images=8, out=tmp_path / "out",
                 max_map_drop=-1.0, keep_float="auto", keep_float_budget=1e-6, parity_images=2)
    (row,) = rep.results
    assert row.status == "rejected" and row.kept_float["tries"] == 2
    assert "over the latency budget" in row.reason and "over the --keep-float-budget limit" in row.reason
    assert row.kept_float["latency_budget_ms"] < row.latency_ms
    assert not list((tmp_path / "out").glob("*.onnx"))


def test_keep_float_budget_needs_auto(tiny_detector, sample_yaml, tmp_path):
    from edgekit.export import export

    with pytest.raises(EdgekitError, match="give --keep-float auto with it"):
        export(tiny_detector, ["onnx-int8"], data=sample_yaml, out=tmp_path, keep_float="2", keep_float_budget=1.5)
