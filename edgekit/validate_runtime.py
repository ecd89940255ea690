"""mAP of any runtime model (``edgekit.runtime.load``) on a labelled split.

The same metric code as ``edgekit val`` and the export mAP gate, fed by ``predict`` of the
public API, so "the artifact matches its source" is measured on exactly what a board runs.
``edgekit bench --data`` and the runtime acceptance tests use it.
"""

from __future__ import annotations

import os

from edgekit.errors import EdgekitError

# the low threshold / NMS IoU every mAP in edgekit is measured with (as ultralytics/COCO practice)
MAP_CONF, MAP_IOU = 0.001, 0.6


def labelled_split(data: str | os.PathLike, split: str | None = None):
    """(records, split name, class names) of a dataset; the test split by default, else val.

    Example:
        >>> recs, split, names = labelled_split("edgekit/assets/fish_sample/data.yaml")  # doctest: +SKIP
    """
    from edgekit.data import load_dataset

    ds = load_dataset(data)
    split = split or next((s for s in ("test", "val") if s in ds.splits), None)
    if split is None or split not in ds.splits:
        raise EdgekitError(f"{data} has no '{split or 'test/val'}' split: add one or pass --split")
    return ds.split(split), split, list(ds.names)


def runtime_map(model, records, names: list[str], limit: int | None = None) -> dict:
    """mAP@0.5 and mAP@0.5:0.95 of a runtime ``Detector`` (or any model returning Detections).

    Example:
        >>> det = load("mobilenetv2_050-yolo-tflite-int8.tflite")  # doctest: +SKIP
        >>> runtime_map(det, *labelled_split("data.yaml")[::2])["map50"]  # doctest: +SKIP
    """
    from edgekit.metrics import evaluate_detections
    from edgekit.runtime.model import read_image

    if model.task != "detect":
        raise EdgekitError(f"mAP needs a detector, and this model's task is '{model.task}'")
    if list(model.names) != list(names):
        raise EdgekitError(f"the model's classes {list(model.names)} are not the dataset's {list(names)}: "
                           "evaluate it on the data it was trained for")
    records = records[:limit] if limit else records
    preds = [model.predict(read_image(r.path), conf=MAP_CONF, iou=MAP_IOU) for r in records]
    gts = [r.truth() for r in records]
    res = evaluate_detections(gts, preds, names)
    return {"map50": float(res.map50), "map50_95": float(res.map50_95), "images": len(records)}


def score_map(model, records, names) -> dict:
    """``{"map50", "map50_95", "map_images"}`` of a loaded model on a labelled split, or the reason it has none.

    The scorer ``edgekit bench --data`` hands to :func:`edgekit.runtime.bench.bench_artifact`.

    Example:
        >>> records, _, names = labelled_split(sample_data_yaml())  # doctest: +SKIP
        >>> score_map(load("fish-onnx.onnx"), records, names)["map50"]  # doctest: +SKIP
    """
    if getattr(model, "task", None) != "detect":
        return {"map50": None, "map50_95": None, "map_note": f"mAP needs a detector; this model's task is "
                                                             f"'{getattr(model, 'task', None)}'"}
    res = runtime_map(model, records, names)
    return {"map50": round(res["map50"], 5), "map50_95": round(res["map50_95"], 5), "map_images": res["images"]}
