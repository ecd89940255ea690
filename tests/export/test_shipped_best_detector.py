"""The best shipped fish detector exports to tflite-int8 through its shipped recipe and passes the gate.

Yolo-Fastest's COCO depthwise filters amplify INT8 input rounding; the best detector's recipe (the stride-8 model
at 480) keeps cfg layers 0-40 in float (``--keep-float @FILE``). This runs the real conversion and gate on the embedded sample, as
``make demo`` step 7 does (uint8 input in BGR order: the channel swap folded into the first, float, convolution).
"""

from __future__ import annotations

import json

from edgekit.demo import BEST, BEST_KEEP_FLOAT


def test_recipe_names_every_op_of_the_first_41_layers_and_the_export_passes(sample_yaml, tmp_path):
    from edgekit.export import export
    from edgekit.export.keep_float import parse_keep_float

    names = parse_keep_float(f"@{BEST_KEEP_FLOAT}")
    assert len(names) == 60 and all(int(n.split(".")[1].split(":")[0]) <= 40 for n in names)
    rep = export(str(BEST), ["tflite-int8"], data=str(sample_yaml), out=tmp_path, keep_float=f"@{BEST_KEEP_FLOAT}",
                 parity_images=4, io="uint8", input_color="BGR")  # as make demo step 7
    (row,) = rep.results
    assert row.ok, row.reason
    man = json.loads((tmp_path / (row.file + ".json")).read_text())
    assert man["preprocess"]["color"] == "BGR" and man["input"]["dtype"] == "uint8"
    assert row.kept_float["nodes"] == names
    assert row.map["passed"] and row.map["source_map50"] - row.map["map50"] <= 0.02
