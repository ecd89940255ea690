"""``--keep-float`` on onnx-int8 leaves a ranked layer's *output* in float, not only its weights.

A QDQ graph quantizes a tensor wherever an INT8 node reads it: excluding only the node that the
ranking charged (the producer) leaves its output rounded as before. Each row's ``keep_float``
therefore adds the layers reading its output; here real onnxruntime quantization of the tiny
detector shows the difference in the file: with the row's nodes alone its output still has a
QuantizeLinear, with ``keep_float`` it has none.
"""

from __future__ import annotations

import pytest

from tests.export.export_helpers import TINY_IMGSZ, TINY_MODEL, realistic_init_

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def ranked(tmp_path_factory, sample_yaml):
    """(fp32 onnx, calibration reader, rows of the plain INT8 model's sensitivity)."""
    from edgekit.export.calibration import CalibrationReader
    from edgekit.export.onnx import onnx2onnx_int8, torch2onnx
    from edgekit.export.sensitivity import onnx_sensitivity
    from edgekit.models import create_model

    tmp = tmp_path_factory.mktemp("keep-readers")
    fp32 = tmp / "fp32.onnx"
    torch2onnx(realistic_init_(create_model(TINY_MODEL, num_classes=2, imgsz=TINY_IMGSZ)), (TINY_IMGSZ, TINY_IMGSZ),
               fp32)
    reader = CalibrationReader.from_source(sample_yaml, TINY_IMGSZ, 8)
    onnx2onnx_int8(fp32, tmp / "plain.onnx", reader)
    feeds = [{"images": reader.tensor(k)} for k in range(2)]
    return fp32, reader, onnx_sensitivity(fp32, tmp / "plain.onnx", feeds), tmp


def _quantized_tensors(path) -> set[str]:
    import onnx

    return {n.input[0] for n in onnx.load(str(path)).graph.node if n.op_type == "QuantizeLinear"}


def test_every_row_keeps_its_nodes_and_its_outputs_readers(ranked):
    import onnx

    fp32, _, rows, _ = ranked
    graph = onnx.load(str(fp32)).graph
    for r in rows:
        assert r["keep_float"][:len(r["nodes"])] == r["nodes"]
        readers = {n.name for n in graph.node if r["output"] in n.input}
        assert readers <= set(r["keep_float"]), (r["name"], readers)


def test_keep_float_leaves_the_output_tensor_unquantized_where_the_nodes_alone_do_not(ranked):
    from edgekit.export.onnx import onnx2onnx_int8
    from edgekit.export.sensitivity import keep_float_nodes

    fp32, reader, rows, tmp = ranked
    row = next(r for r in rows if len(r["keep_float"]) > len(r["nodes"]))  # a layer something INT8 reads
    assert row["output"] in _quantized_tensors(tmp / "plain.onnx")
    onnx2onnx_int8(fp32, tmp / "nodes.onnx", reader, keep_float=row["nodes"])
    assert row["output"] in _quantized_tensors(tmp / "nodes.onnx")  # excluded producer, still rounded
    onnx2onnx_int8(fp32, tmp / "unit.onnx", reader, keep_float=row["keep_float"])
    assert row["output"] not in _quantized_tensors(tmp / "unit.onnx")
    assert keep_float_nodes([row], 1) == row["keep_float"]
