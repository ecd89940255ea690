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


def bootstrap_map50s(gts: Sequence[Any], preds: Sequence[Sequence[Any]], class_names: Sequence[str],
                     resamples: int = 200, seed: int = 0, max_dets: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """mAP@0.5 of several models' predictions on the same images: on the full set, and on each image resample.

    Every model is scored on the *same* resampled images (that is what makes a difference paired); each image
    is matched once per model, a resample only re-accumulates.

    Returns:
        ``(full, draws)``: (models,) and (models, resamples) float arrays.

    Example:
        >>> gts = [{"boxes": [[0, 0, 10, 10]], "classes": [0]}] * 4
        >>> hit = [{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "classes": [0]}] * 4
        >>> full, draws = bootstrap_map50s(gts, [hit], ["fish"], resamples=10)
        >>> full.tolist(), draws.shape
        ([1.0], (1, 10))
    """
    names = [str(n) for n in class_names]
    matched = [_matched(gts, p, names, max_dets) for p in preds]
    n, C = len(gts), len(names)
    full = np.array([_map50(m, np.arange(n), C) for m in matched])
    rng = np.random.default_rng(seed)
    draws = np.zeros((len(matched), int(resamples)))
    for j in range(int(resamples)):
        idx = rng.integers(0, n, n)
        draws[:, j] = [_map50(m, idx, C) for m in matched]
    return full, draws


def interval95(values: np.ndarray, fallback: float) -> list[float]:
    """The 2.5 and 97.5 percentiles of ``values`` (``fallback`` twice when there are none), rounded to 6 places."""
    lo, hi = np.percentile(values, [2.5, 97.5]) if len(values) else (fallback, fallback)
    return [round(float(lo), 6), round(float(hi), 6)]


def paired_difference(full: np.ndarray, draws: np.ndarray, images: int) -> dict:
    """Model 1 minus model 0 of :func:`bootstrap_map50s`' output: ``{"delta", "ci95", "resamples", "images"}``.

    Example:
        >>> paired_difference(np.array([0.5, 0.6]), np.array([[0.5, 0.4], [0.6, 0.6]]), 4)["delta"]
        0.1
    """
    delta = float(full[1] - full[0])
    return {"delta": round(delta, 6), "ci95": interval95(draws[1] - draws[0], delta),
            "resamples": int(draws.shape[1]), "images": int(images)}


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
    full, draws = bootstrap_map50s(gts, [preds_ref, preds_new], class_names, resamples, seed, max_dets)
    return paired_difference(full, draws, len(gts))
