"""Validation of a torch detector through the *same* numpy post-processing and mAP code that
the runtime and the export verifier use: letterbox -> forward -> ``runtime.decode`` -> NMS ->
inverse letterbox -> :func:`edgekit.metrics.evaluate_detections`. The resize is the model's own
(``model.resize``): a stretch model (a Darknet cfg without ``letterbox=1``) is stretched, and its
boxes mapped back with separate x and y factors.
"""

from __future__ import annotations

import os
import time

import numpy as np

from edgekit.data.dataset import ImageRecord


def predict_records(model, records: list[ImageRecord], imgsz: int, conf: float = 0.001, iou: float = 0.6,
                    max_det: int = 300, batch: int = 8, device: str = "cpu", progress: bool = False,
                    resize: str | None = None):
    """Detections of a torch model on records: list of dicts (boxes xyxy original pixels, scores, classes).

    ``resize``: ``letterbox`` or ``stretch``; None takes the model's own (``model.resize``).
    Returns (predictions, seconds spent per image in forward + post-processing).
    """
    import torch
    from tqdm import tqdm

    from edgekit.runtime.model import read_image
    from edgekit.runtime.postprocess import postprocess_detections
    from edgekit.runtime.preprocess import preprocess

    resize = resize or getattr(model, "resize", "letterbox")
    model = model.to(device).eval()
    preds, spent = [], 0.0
    for start in tqdm(range(0, len(records), batch), desc="val", disable=not progress, leave=False):
        chunk = records[start:start + batch]
        tensors, boxes_lb = [], []
        for rec in chunk:
            img = read_image(rec.path)  # the pixel limit and one-line errors of every image edgekit reads
            x, lb = preprocess(img, imgsz, resize=resize)
            tensors.append(x)
            boxes_lb.append(lb)
        t0 = time.perf_counter()
        with torch.no_grad():
            outs = [o.float().cpu().numpy() for o in model(torch.from_numpy(np.concatenate(tensors)).to(device))]
        for k, lb in enumerate(boxes_lb):
            preds.append(postprocess_detections([o[k:k + 1] for o in outs], model.head_spec, lb, conf, iou, max_det))
        spent += time.perf_counter() - t0
    return preds, spent / max(len(records), 1)


def validate(model, records: list[ImageRecord], names: list[str], imgsz: int, conf: float = 0.001, iou: float = 0.6,
             max_det: int = 300, batch: int = 8, device: str = "cpu", progress: bool = False, class_map=None,
             data_names: list[str] | None = None, resize: str | None = None) -> dict:
    """mAP of a torch detector on labelled records.

    Returns a dict with ``map50``, ``map50_95``, ``per_class`` (name -> AP50:95), ``images``,
    ``ms_per_image`` (forward + post-processing, this host). With ``class_map``
    (:class:`edgekit.metrics.class_map.ClassMap`) the model's ``names`` and the data's
    ``data_names`` are both mapped before scoring (``--single-cls``, ``--map-classes``). ``resize``:
    None for the model's own (see :func:`predict_records`).

    Example:
        >>> from edgekit.models.checkpoint import load_checkpoint  # doctest: +SKIP
        >>> model, ckpt = load_checkpoint("best.pt")  # doctest: +SKIP
        >>> validate(model, load_dataset("data.yaml").split("test"), ckpt["names"], ckpt["imgsz"])["map50"]  # doctest: +SKIP
        0.83
    """
    from edgekit.metrics import evaluate_detections

    preds, per_image = predict_records(model, records, imgsz, conf, iou, max_det, batch, device, progress, resize)
    gts = [r.truth() for r in records]
    evaluated = names
    if class_map is not None:
        from edgekit.metrics.class_map import remap_boxes

        data_names = data_names or names
        evaluated = class_map.targets(names, data_names)
        preds = remap_boxes(preds, names, class_map, evaluated, renms=class_map.merges(names))
        gts = remap_boxes(gts, data_names, class_map, evaluated)
    result = evaluate_detections(gts, preds, evaluated).to_dict()
    result.update({"images": len(records), "ms_per_image": round(per_image * 1000, 3)})
    if class_map is not None:
        result["classes_evaluated"] = evaluated
        result["class_map"] = "single-cls" if class_map.single else class_map.table
    return result


def validate_checkpoint(weights: str | os.PathLike, data: str | os.PathLike, split: str = "val",
                        imgsz: int | None = None, batch: int = 8, device: str = "cpu", progress: bool = False,
                        class_map=None) -> dict:
    """``edgekit val``: load a checkpoint and a dataset split, return :func:`validate`'s dict."""
    from edgekit.data import load_dataset
    from edgekit.errors import EdgekitError
    from edgekit.models.checkpoint import load_checkpoint

    model, ckpt = load_checkpoint(weights)
    ds = load_dataset(data)
    if class_map is None and ds.names != list(ckpt["names"]):
        raise EdgekitError(f"{data} has classes {ds.names} but the model was trained on {ckpt['names']}: validate on "
                           "the same classes, or map them (--single-cls, --map-classes FILE)")
    result = validate(model, ds.split(split), list(ckpt["names"]), imgsz or ckpt["imgsz"], batch=batch, device=device,
                      progress=progress, class_map=class_map, data_names=ds.names)
    result.update({"model": ckpt["model"], "weights": str(weights), "data": str(data), "split": split,
                   "imgsz": imgsz or ckpt["imgsz"], "resize": model.resize})
    return result
