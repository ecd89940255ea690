"""Classification post-processing written once, in numpy: softmax, top-k, and the "unsure" reject.

The torch validator and every runtime backend turn classifier logits into labels through
these functions, so a model and its exported artifacts are scored by one code path.
A prediction whose top probability is below the ``unsure`` threshold is reported as
"unsure" (label -1) instead of a guess: on a fish counter, an uncounted fish is cheaper
than a wrong species. The threshold may be one per class, calibrated to bound the error
rate by :func:`edgekit.runtime.reject.calibrate_reject`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.errors import EdgekitError

UNSURE = -1


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, stable for large logits.

    Example:
        >>> softmax(np.array([0.0, 0.0])).tolist()
        [0.5, 0.5]
    """
    x = np.asarray(logits, np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def topk(logits: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` classes and probabilities per row of ``(N, C)`` logits, best first.

    ``k`` is capped at C. Ties keep the lower class index first.

    Example:
        >>> ids, probs = topk(np.array([[1.0, 3.0, 2.0]]), k=2)
        >>> ids.tolist(), [round(float(p), 3) for p in probs[0]]
        ([[1, 2]], [0.665, 0.245])
    """
    probs = softmax(np.atleast_2d(logits))
    k = max(1, min(int(k), probs.shape[1]))
    ids = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return ids.astype(np.int64), np.take_along_axis(probs, ids, axis=1)


def postprocess_classification(logits: np.ndarray, k: int = 5, unsure: float | Sequence[float] | None = None,
                               names: list[str] | None = None) -> dict:
    """Logits of one image -> top-k classes and scores, and a label (-1 when unsure).

    Args:
        logits: ``(C,)`` or ``(1, C)`` raw outputs of the classifier.
        k: how many classes to return.
        unsure: reject threshold on the top probability; None never rejects. Either one float
            for every class, or one per class (the top class's threshold applies; a value
            above 1 never accepts that class), as ``edgekit calibrate-reject`` writes them
            to the manifest's ``reject.thresholds``.
        names: class names; when given the result has ``name`` (``"unsure"`` when rejected).

    Example:
        >>> r = postprocess_classification(np.array([0.1, 0.2, 0.0]), k=2, unsure=0.5, names=["a", "b", "c"])
        >>> r["classes"].tolist(), r["label"], r["name"]
        ([1, 0], -1, 'unsure')
        >>> postprocess_classification(np.array([3.0, 0.0, 0.0]), unsure=[0.95, 0.5, 0.5])["label"]  # top 0.91 < 0.95
        -1
        >>> postprocess_classification(np.array([0.0, 3.0, 0.0]), unsure=[0.95, 0.5, 0.5])["label"]
        1
    """
    ids, probs = topk(np.asarray(logits).reshape(1, -1), k)
    top = int(ids[0, 0])
    if unsure is not None and np.ndim(unsure) > 0:
        per_class = np.asarray(unsure, np.float64).reshape(-1)
        if per_class.size != np.asarray(logits).size:
            raise EdgekitError(f"{per_class.size} unsure thresholds for {np.asarray(logits).size} classes: "
                               "give one per class (run `edgekit calibrate-reject` again on this model)")
        unsure = float(per_class[top])
    label = top if unsure is None or probs[0, 0] >= unsure else UNSURE
    out = {"classes": ids[0], "scores": probs[0], "label": label}
    if names is not None:
        out["name"] = "unsure" if label == UNSURE else names[label]
    return out
