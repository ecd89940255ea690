"""How large an mAP difference can this test set resolve? A paired bootstrap over images.

An export's mAP delta (artifact minus source) is measured on a few hundred images; on
Fish4Knowledge's 188 test images a delta of 0.01 mAP@0.5 is well inside the noise.
:func:`paired_bootstrap_map50` resamples the *images* (with replacement, the same images for
both models: the pairing cancels what the image draw does to both) and recomputes mAP@0.5 of
each; the 2.5/97.5 percentiles of the difference are its 95% interval. Each image is matched
once (the COCO matching of :mod:`edgekit.metrics.coco_map`); a resample only re-accumulates.

Example:
    >>> gts = [{"boxes": [[0, 0, 10, 10]], "classes": [0]}] * 4
    >>> a = [{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "classes": [0]}] * 4
    >>> b = [{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "classes": [0]}] * 2 + [{"boxes": [], "scores": [], "classes": []}] * 2
    >>> r = paired_bootstrap_map50(gts, a, b, ["fish"], resamples=100)
    >>> round(r["delta"], 2), r["ci95"][0] <= r["delta"] <= r["ci95"][1]
    (-0.5, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgekit.metrics.coco_map import AREA_RANGES, accumulate, canonical_images, image_parts


def _matched(gts, preds, names, max_dets):
    ranges = np.array([AREA_RANGES["all"]], dtype=np.float64)
    return [image_parts(img, ranges, max_dets) for img in canonical_images(gts, preds, names)]


def _map50(per_image: list[dict], idx: np.ndarray, num_classes: int) -> float:
    """mAP@0.5 over the images ``idx`` (repeats count again), classes with ground truth or detections."""
    parts: list[list] = [[] for _ in range(num_classes)]
    for i in idx:
        for c, part in per_image[i].items():
            parts[c].append(part)
    aps = []
    for c in range(num_classes):
        precision, _ = accumulate(parts[c], 1)
        p50 = precision[0, :, 0]
        if (p50 > -1).all():
            aps.append(float(p50.mean()))
    return float(np.mean(aps)) if aps else 0.0


def paired_bootstrap_map50(gts: Sequence[Any], preds_ref: Sequence[Any], preds_new: Sequence[Any],
                           class_names: Sequence[str], resamples: int = 200, seed: int = 0,
                           max_dets: int = 100) -> dict:
    """mAP@0.5(new) - mAP@0.5(ref) on these images, with its paired-bootstrap 95% interval.

    Args:
        gts: ground truth per image (as :func:`edgekit.metrics.evaluate_detections` takes).
        preds_ref: the reference model's predictions per image (e.g. the torch source).
        preds_new: the other model's (e.g. the INT8 artifact), same images, same order.
        class_names: class names, index = class id.
        resamples: bootstrap resamples.
        seed: the resampling seed (the interval is reproducible).

    Returns:
        ``{"delta", "ci95": [lo, hi], "resamples", "images"}``; ``delta`` is the full-set
        difference, negative when ``new`` lost mAP.
    """
    names = [str(n) for n in class_names]
    ref, new = _matched(gts, preds_ref, names, max_dets), _matched(gts, preds_new, names, max_dets)
    n, C = len(ref), len(names)
    everything = np.arange(n)
    delta = _map50(new, everything, C) - _map50(ref, everything, C)
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(int(resamples)):
        idx = rng.integers(0, n, n)
        deltas.append(_map50(new, idx, C) - _map50(ref, idx, C))
    lo, hi = np.percentile(deltas, [2.5, 97.5]) if deltas else (delta, delta)
    return {"delta": round(float(delta), 6), "ci95": [round(float(lo), 6), round(float(hi), 6)],
            "resamples": int(resamples), "images": n}
