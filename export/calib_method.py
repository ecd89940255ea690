"""``--calib-method``: how INT8 activation ranges are chosen, per backend, or ``auto`` by the held-out metric.

What each quantizer supports (the first is its default when the option is not given):

- ``onnx-int8`` (onnxruntime ``CalibrationMethod``): ``minmax``, ``percentile`` (99.999th of
  |x|), ``entropy`` (KL-divergence thresholds);
- ``openvino-int8`` (NNCF range estimators): ``mean-minmax`` (NNCF's default: the mean over images
  of each image's min/max), ``minmax`` (global), ``percentile`` (mean of per-image 0.01%/99.99%
  quantiles), ``histogram`` (NNCF's histogram-optimal range);
- ``tflite-int8`` (ai-edge-quantizer): ``minmax`` only (global min/max over all images;
  the library has no percentile or entropy calibration for activations).

``auto`` converts and verifies with every method the target supports, on the same held-out
images as the gate, and keeps the best by the gate's metric (mAP@0.5, top-1, or parity cosine
without labelled data), passing artifacts first. Every try is a full conversion + verification;
the row records each method's score and the manifest the method used (``conversion.calib_method``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from edgekit.errors import EdgekitError

METHODS = {"onnx-int8": ("minmax", "percentile", "entropy"), "tflite-int8": ("minmax",),
           "openvino-int8": ("mean-minmax", "minmax", "percentile", "histogram")}
CHOICES = ("minmax", "mean-minmax", "percentile", "entropy", "histogram", "auto")


def check_calib_method(method: str | None, chosen) -> None:
    """Refuse a method a chosen INT8 target cannot honour (it would silently calibrate another way).

    Example:
        >>> from edgekit.export.targets import TARGETS
        >>> check_calib_method("entropy", [TARGETS["onnx-int8"]])
        >>> check_calib_method("entropy", [TARGETS["tflite-int8"]])
        Traceback (most recent call last):
        edgekit.errors.EdgekitError: --calib-method entropy: tflite-int8 takes minmax (or auto); export it in a separate run
    """
    if method is None:
        return
    if method not in CHOICES:
        raise EdgekitError(f"--calib-method {method}: choose one of {', '.join(CHOICES)}")
    quantized = [t for t in chosen if t.quantized]
    other = [t.name for t in quantized if t.name not in METHODS]
    if other or not quantized:
        raise EdgekitError(f"--calib-method is built for {', '.join(METHODS)} (not {', '.join(other) or 'float targets'}): "
                           "export the other targets in a separate run without it")
    for t in quantized:
        if method != "auto" and method not in METHODS[t.name]:
            raise EdgekitError(f"--calib-method {method}: {t.name} takes {', '.join(METHODS[t.name])} (or auto); "
                               "export it in a separate run")


def score(result) -> float | None:
    """The held-out metric of a verified try: mAP@0.5, else top-1, else parity cosine (higher is better).

    Example:
        >>> class R: map, top1, parity = {"map50": 0.41}, None, {"cosine": 0.99}
        >>> score(R())
        0.41
    """
    if result.map:
        return result.map.get("map50")
    if result.top1:
        return result.top1.get("top1")
    return (result.parity or {}).get("cosine")


def run_with_method(method: str | None, target, job, run_one: Callable, log, final: bool = True):
    """``(result, job)``: ``run_one`` under ``method``; for ``auto``, the best of the target's methods.

    The returned job carries the chosen method, so later tries (``--keep-float``) keep it.
    ``final``: the chosen try's files must be the ones left in place (False when the caller
    converts again anyway, as ``--keep-float N`` does).
    """
    if method is None or not target.quantized or target.name not in METHODS:
        return run_one(job), job
    if method != "auto":
        job = _with(job, method)
        return _tagged(run_one(job), method, None), job
    tries, best = [], None
    for m in METHODS[target.name]:
        log(f"{target.name}: --calib-method auto: trying {m} ...")
        result = run_one(_with(job, m))
        tries.append({"method": m, "status": result.status, "score": score(result), "latency_ms": result.latency_ms})
        if best is None or _better(result, best[1]):
            best = (m, result)
    chosen, result = best
    if final and chosen != tries[-1]["method"]:  # the final files are the last try's: make the chosen one again
        log(f"{target.name}: --calib-method auto: {chosen} scored best, converting it again ...")
        result = run_one(_with(job, chosen))
    return _tagged(result, chosen, tries), _with(job, chosen)


def _better(a, b) -> bool:
    """Passing beats rejected; then the higher score; ties keep the earlier (the default method first)."""
    if a.ok != b.ok:
        return a.ok
    sa, sb = score(a), score(b)
    return sa is not None and (sb is None or sa > sb + 1e-12)


def _with(job, method: str):
    return dataclasses.replace(job, options={**job.options, "calib_method": method})


def _tagged(result, method: str, tries: list | None):
    result.calib_method = {"method": method, "auto": tries is not None, **({"tries": tries} if tries else {})}
    return result
