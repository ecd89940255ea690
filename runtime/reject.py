"""Per-class reject ("unsure") thresholds that bound a classifier's error rate, in numpy.

A classifier on a board may refuse to answer: a prediction whose top probability is
below its class's threshold becomes "unsure" (label -1). :func:`calibrate_reject` picks
one threshold per predicted class on a labelled calibration split (the validation set)
so that the misclassification rate among the accepted predictions is at most
``max_error``, while accepting as many predictions as possible.

The method is selective classification with a confidence-rate function (Geifman and
El-Yaniv, 2017), made class-conditional:

``"empirical"`` (``delta=None``)
    For each predicted class c, sort the calibration predictions of c by top probability,
    highest first; accepting the top k costs ``wrong_k / k``. The threshold is the top
    probability of the largest k (the lowest threshold) whose error is at most
    ``max_error``; ties are accepted or rejected together. Every class's accepted error is
    then at most ``max_error``, so the overall accepted error is too (it is their weighted
    mean). A class predicted fewer than ``min_support`` times is not trusted with its own
    threshold: such classes are pooled and share one threshold fitted on the pool, which
    bounds the pool's error (not each member's) and keeps the overall bound. A class never
    predicted on the calibration split has no evidence and is never accepted. Guarantee:
    exactly on the calibration split, nothing more. On new images the accepted error
    scatters around ``max_error`` and can exceed it, most for classes with few accepted
    samples (the threshold was chosen *because* it looked good on these images).

``"binomial"`` (``delta`` given, e.g. 0.1)
    A finite-sample guarantee. Each class is tested on its own on a fixed grid of
    thresholds: a threshold is allowed when an exact one-sided binomial test rejects
    "the error among accepted predictions of c exceeds max_error" at level
    ``delta / (C * G)`` (Bonferroni over every class and the G distinct grid points), and the
    lowest allowed threshold is taken. If calibration and future images are independent
    draws from one distribution, then with probability at least ``1 - delta`` over the
    calibration draw, *every* class's true error among its accepted predictions is at most
    ``max_error`` (and so is the overall one). A class with too few samples to pass the
    test rejects everything it would predict rather than claim a bound it cannot show.
    It does not cover distribution shift: another camera, water turbidity, or a changed
    species mix (the error of "predicted c" depends on how common the other species are).
    Frames cut from the same videos are correlated, which weakens independence.

Thresholds above 1 (:data:`REJECT_ALL`) mean the class is never accepted. Thresholds
apply as ``top probability >= threshold``, the rule of
:func:`edgekit.runtime.classify.postprocess_classification`. They are the calibration
probabilities themselves, unrounded (a rounded threshold would move samples across it);
calibrate on the float32 probabilities the runtime computes so the comparison is the same.
"""

from __future__ import annotations

import math

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.classify import UNSURE

REJECT_ALL = 1.01  # above any probability: the class is never accepted
DEFAULT_MIN_SUPPORT = 30
# data-independent candidate thresholds of the binomial method: 0.00, 0.01 ... 0.99, then denser towards 1
GRID = np.unique(np.concatenate([np.round(np.linspace(0.0, 0.99, 100), 2), 1.0 - np.logspace(-2.5, -6, 8)]))


def _check(probs, labels, max_error: float) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or probs.shape[1] < 1:
        raise EdgekitError(f"probabilities must be (N, C), got shape {probs.shape}: "
                           "pass softmax outputs, one row per image")
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(probs):
        raise EdgekitError(f"{len(probs)} probability rows but {len(labels)} labels: give one label per image")
    if len(labels) == 0:
        raise EdgekitError("no calibration images: calibrate on a non-empty labelled split")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise EdgekitError(f"labels must lie in 0..{probs.shape[1] - 1}: the data's classes do not match the model's")
    if not 0.0 < float(max_error) < 1.0:
        raise EdgekitError(f"max_error must lie strictly between 0 and 1, got {max_error}: e.g. 0.05 for 5 %")
    return probs, labels.astype(np.int64)


def apply_reject(probs, thresholds) -> np.ndarray:
    """Top-1 labels of ``(N, C)`` probabilities, -1 where the top probability is below its class's threshold.

    Example:
        >>> apply_reject(np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]), [0.8, 0.5]).tolist()
        [0, 1, -1]
    """
    probs = np.atleast_2d(np.asarray(probs, np.float64))
    thresholds = np.asarray(thresholds, np.float64).reshape(-1)
    if thresholds.size != probs.shape[1]:
        raise EdgekitError(f"{thresholds.size} thresholds for {probs.shape[1]} classes: give one per class")
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(len(probs)), pred]
    return np.where(conf >= thresholds[pred], pred, UNSURE).astype(np.int64)


def _empirical_threshold(conf: np.ndarray, wrong: np.ndarray, max_error: float) -> float:
    """Lowest threshold on ``conf`` whose accepted error is <= max_error (REJECT_ALL when none)."""
    if conf.size == 0:
        return REJECT_ALL
    order = np.argsort(-conf, kind="stable")
    c, w = conf[order], wrong[order]
    k = np.arange(1, c.size + 1)
    err = np.cumsum(w) / k
    # a cut after position k-1 is only possible where the next confidence is strictly lower (ties go together)
    cut = np.append(c[:-1] > c[1:], True)
    ok = np.flatnonzero(cut & (err <= max_error + 1e-12))
    return float(c[ok[-1]]) if ok.size else REJECT_ALL


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k), exact (log-space sum): the p-value of "error rate > p" after k errors in n.

    Example:
        >>> round(binomial_tail(0, 45, 0.05), 4)
        0.0994
    """
    if k >= n:
        return 1.0
    i = np.arange(k + 1)
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    terms = log_fact[n] - log_fact[i] - log_fact[n - i] + i * math.log(p) + (n - i) * math.log1p(-p)
    top = terms.max()
    return float(min(1.0, math.exp(top) * np.exp(terms - top).sum()))


def _binomial_threshold(conf: np.ndarray, wrong: np.ndarray, max_error: float, level: float,
                        grid: np.ndarray) -> float:
    """Lowest grid threshold whose accepted error passes the binomial test at ``level`` (REJECT_ALL when none)."""
    for t in grid:  # ascending: the first that passes accepts the most
        acc = conf >= t
        n = int(acc.sum())
        if n and binomial_tail(int(wrong[acc].sum()), n, max_error) <= level:
            return float(t)
    return REJECT_ALL


def _stats(conf, wrong, threshold: float) -> dict:
    acc = conf >= threshold
    n_acc, n_wrong = int(acc.sum()), int(wrong[acc].sum())
    return {"threshold": float(threshold), "support": int(conf.size), "correct": int((~wrong).sum()),
            "accepted": n_acc, "errors": n_wrong,
            "error": round(n_wrong / n_acc, 5) if n_acc else None,
            "coverage": round(n_acc / conf.size, 5) if conf.size else None}


def calibrate_reject(probs, labels, max_error: float, min_support: int = DEFAULT_MIN_SUPPORT,
                     delta: float | None = None) -> dict:
    """Per-class thresholds on the top probability that keep the accepted error <= ``max_error``.

    Args:
        probs: ``(N, C)`` softmax probabilities of the calibration images.
        labels: ``(N,)`` true class indices.
        max_error: the largest misclassification rate allowed among accepted predictions, in (0, 1).
        min_support: empirical method only: classes predicted fewer times than this share
            one threshold fitted on all of them pooled.
        delta: None for the empirical method (bound on the calibration set); a probability
            in (0, 1) for the binomial method (bound on new data with probability >= 1 - delta).
            See the module docstring for what each does and does not guarantee.

    Returns:
        ``thresholds`` (C floats; above 1 = never accept that class), ``method``,
        ``max_error``, ``delta``, ``min_support``, ``n``, ``top1`` (accuracy without
        rejection), ``accepted``, ``coverage`` (accepted fraction) and ``accepted_error``
        on the calibration set, and ``per_class``: one dict per class, by *predicted*
        class (threshold, support = times predicted, correct, accepted, errors, error,
        coverage, source = "class", "pooled" or "none").

    Example:
        >>> p = np.array([[.9, .1], [.8, .2], [.6, .4], [.3, .7], [.45, .55]])
        >>> r = calibrate_reject(p, [0, 0, 1, 1, 1], max_error=0.1, min_support=1)
        >>> r["thresholds"], r["coverage"], r["accepted_error"]
        ([0.8, 0.55], 0.8, 0.0)
    """
    probs, labels = _check(probs, labels, max_error)
    if delta is not None and not 0.0 < float(delta) < 1.0:
        raise EdgekitError(f"delta must lie strictly between 0 and 1, got {delta}: e.g. 0.1 for 90 % confidence")
    n, c = probs.shape
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(n), pred]
    wrong = pred != labels
    support = np.bincount(pred, minlength=c)
    thresholds = [REJECT_ALL] * c
    source = ["class"] * c
    if delta is None:
        method = "empirical"
        small = [j for j in range(c) if 0 < support[j] < min_support]
        for j in range(c):
            if support[j] >= min_support:
                m = pred == j
                thresholds[j] = _empirical_threshold(conf[m], wrong[m], max_error)
        if small:
            pool = np.isin(pred, small)
            shared = _empirical_threshold(conf[pool], wrong[pool], max_error)
            for j in small:
                thresholds[j], source[j] = shared, "pooled"
    else:
        method = "binomial"
        # the top probability is >= 1/C, so grid points up to 1/C all accept everything: one hypothesis
        grid = np.concatenate([[0.0], GRID[GRID > 1.0 / c]])
        level = float(delta) / (c * len(grid))
        for j in range(c):
            m = pred == j
            thresholds[j] = _binomial_threshold(conf[m], wrong[m], max_error, level, grid)
    for j in range(c):
        if not support[j]:  # never predicted here: no evidence, never accepted
            thresholds[j], source[j] = REJECT_ALL, "none"
    per_class = [{**_stats(conf[pred == j], wrong[pred == j], thresholds[j]), "source": source[j]} for j in range(c)]
    acc = conf >= np.asarray(thresholds)[pred]
    n_acc = int(acc.sum())
    return {
        "thresholds": [float(t) for t in thresholds], "method": method, "max_error": float(max_error),
        "delta": None if delta is None else float(delta), "min_support": int(min_support), "n": int(n),
        "top1": round(float((~wrong).mean()), 5), "accepted": n_acc, "coverage": round(n_acc / n, 5),
        "accepted_error": round(float(wrong[acc].mean()), 5) if n_acc else None, "per_class": per_class,
    }


def reject_report(probs, labels, thresholds) -> dict:
    """Coverage and accepted error of given thresholds on labelled probabilities (a held-out check).

    Example:
        >>> reject_report(np.array([[.9, .1], [.6, .4], [.2, .8]]), [0, 1, 1], [0.7, 0.7])
        {'n': 3, 'accepted': 2, 'coverage': 0.66667, 'accepted_error': 0.0, 'top1': 0.66667}
    """
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64).reshape(-1)
    out = apply_reject(probs, thresholds)
    acc = out != UNSURE
    n_acc = int(acc.sum())
    return {"n": int(len(labels)), "accepted": n_acc, "coverage": round(n_acc / max(len(labels), 1), 5),
            "accepted_error": round(float((out[acc] != labels[acc]).mean()), 5) if n_acc else None,
            "top1": round(float((probs.argmax(axis=1) == labels).mean()), 5) if len(labels) else None}
