"""Verification of an artifact against its source: raw-output parity and the mAP gate.

The artifact runs in its own runtime through :class:`edgekit.runtime.runner.ArtifactRunner`
(the code the board runs); the source runs in torch (or onnxruntime for an ONNX source).
Both go through the same letterbox, the same numpy decoder and the same mAP code.

Parity tolerances per precision (raw head maps, before any sigmoid):

- fp32: max abs error <= 1e-3 (converters measured 4e-6..4e-5 here; onnxruntime's
  ``Pad_Fusion`` bug gives 0.056 on Tiny-YOLO and must fail);
- fp16: cosine >= 0.999;
- int8: cosine >= 0.98; the error is also reported in quantization steps of the output
  (``max_steps``) where outputs are integer. INT8 is judged by mAP above all. A detector's
  INT8 outputs hold its logits clipped to +-``output_clip`` (see
  :data:`edgekit.export.calibration.DETECTION_LOGIT_CLIP`); both sides are compared within it.

With labelled data, ``--max-map-drop`` (0.02 mAP@0.5 for INT8, 0.005 for float targets by
default) turns a larger drop into a failed export. Each gate also states the paired-bootstrap
95% interval of its drop (``delta_map50_ci95``): on 188 test images an INT8 drop of 0.012 has
an interval about 0.05 wide, so a 0.01 difference is below what such a split can resolve.
"""

from __future__ import annotations

import json
import time

import numpy as np

TOLERANCES = {"fp32": {"max_abs": 1e-3}, "fp16": {"min_cosine": 0.999}, "int8": {"min_cosine": 0.98}}
DEFAULT_MAX_MAP_DROP = {"int8": 0.02, "fp16": 0.005, "fp32": 0.005}
# resamples of the paired bootstrap of each gate's delta
BOOTSTRAP_RESAMPLES = 200


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else float(np.allclose(a, b))


def parity(runner, source, images: list[np.ndarray], precision: str) -> dict:
    """Compare raw outputs of artifact and source on real images fitted as the manifest says (letterbox or stretch).

    Example:
        >>> parity(ArtifactRunner("m.onnx"), load_source("best.pt"), imgs, "fp32")["passed"]  # doctest: +SKIP
        True
    """
    from edgekit.runtime.preprocess import to_tensor

    max_abs, mean_abs, cos, steps = 0.0, [], 1.0, None
    out_scales = [o.quant[0] if o.quant else None for o in runner.backend.outputs]
    order = runner.order
    # INT8 detectors store their logits clipped (DETECTION_LOGIT_CLIP): compare what decodes
    clip = (runner.manifest.get("conversion") or {}).get("output_clip")
    for img in images:
        lb_img, _ = runner.fit(img)
        ref = source.forward(to_tensor(lb_img))
        got = runner.run_tensor(runner.tensor(lb_img))
        for k, (r, g) in enumerate(zip(ref, got)):
            if r.shape != g.shape:
                return {"passed": False, "error": f"output {k}: shape {list(g.shape)} vs source {list(r.shape)}"}
            if clip:
                r, g = np.clip(r, -clip, clip), np.clip(g, -clip, clip)
            err = np.abs(r - g)
            max_abs = max(max_abs, float(err.max()))
            mean_abs.append(float(err.mean()))
            cos = min(cos, _cosine(r, g))
            src_k = order.index(k)  # artifact output that feeds decoder input k
            if out_scales[src_k]:
                steps = max(steps or 0.0, float(err.max() / out_scales[src_k]))
    tol = TOLERANCES[precision]
    passed = max_abs <= tol.get("max_abs", np.inf) and cos >= tol.get("min_cosine", -1.0)
    result = {"images": len(images), "max_abs": max_abs, "mean_abs": float(np.mean(mean_abs)), "cosine": cos,
              "tolerance": tol, "passed": bool(passed)}
    if steps is not None:
        result["max_steps"] = steps
    if clip:
        result["output_clip"] = clip
    return result


def labelled_records(data, split: str | None):
    """(records, split, names) of a data.yaml (test split, else val), or (None, None, None) for a folder / no data."""
    from pathlib import Path

    if data is None or Path(data).is_dir():
        return None, None, None
    from edgekit.validate_runtime import labelled_split

    return labelled_split(data, split)


def parity_images(verification: list | None, calib, n: int) -> tuple[list[np.ndarray], str]:
    """(images, where from) for the parity check: never a calibration image.

    The verification split's image paths when there is one (the calibration pool excluded
    them), else the
    images the calibration source held out, else the embedded sample's test split.
    """
    from edgekit.runtime.model import read_image

    if verification:
        paths, where = list(verification[:n]), "the verification split (not calibrated on)"
    elif calib is not None and calib.held_out:
        paths, where = calib.held_out[:n], f"{calib.source}, held out from calibration"
    else:
        from edgekit.data import load_dataset
        from edgekit.data.sample import sample_data_yaml

        paths, where = [r.path for r in load_dataset(sample_data_yaml()).split("test")[:n]], "edgekit's sample test split"
    return [read_image(p) for p in paths], where


def predict_detections(infer, records, head_spec: dict, conf: float = 0.001, iou: float = 0.6) -> list[dict]:
    """Detections of any model on records; ``infer(bgr image) -> (float maps, letterbox)``."""
    from edgekit.runtime.model import read_image
    from edgekit.runtime.postprocess import postprocess_detections

    preds = []
    for rec in records:
        maps, lb = infer(read_image(rec.path))
        preds.append(postprocess_detections(maps, head_spec, lb, conf, iou))
    return preds


def source_infer(source, imgsz: tuple[int, int]):
    """``infer`` for the source model, with the inference resize (the source's letterbox or stretch)."""
    from edgekit.runtime.preprocess import preprocess

    resize = getattr(source, "resize", "letterbox")

    def infer(img):
        x, lb = preprocess(img, imgsz, resize=resize)
        return source.forward(x), lb
    return infer


def detection_map(infer, records, names, head_spec, keep_preds: bool = False) -> dict:
    """mAP@0.5 and mAP@0.5:0.95 of ``infer`` on labelled records (the shared mAP code).

    With ``keep_preds`` the per-image detections come back too (``"preds"``), so
    :func:`map_gate` can bootstrap the artifact-vs-source difference on the same images.
    """
    from edgekit.metrics import evaluate_detections

    preds = predict_detections(infer, records, head_spec)
    res = evaluate_detections([r.truth() for r in records], preds, names)
    out = {"map50": float(res.map50), "map50_95": float(res.map50_95)}
    if keep_preds:
        out["preds"] = preds
    return out


def map_gate(runner, records, names, head_spec, source_map: dict, max_drop: float, split: str,
             resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Artifact mAP vs the source's; ``passed`` is False when mAP@0.5 drops more than ``max_drop``.

    When ``source_map`` carries the source's detections (``detection_map(..., keep_preds=True)``),
    ``delta_map50_ci95`` is the paired-bootstrap 95% interval of the drop over these images:
    how much of the delta the split can resolve at all. The gate still judges the measured drop.
    """
    got = detection_map(runner.infer, records, names, head_spec, keep_preds=True)
    delta = source_map["map50"] - got["map50"]
    gate = {"split": split, "images": len(records), "source_map50": source_map["map50"],
            "source_map50_95": source_map["map50_95"], "map50": got["map50"], "map50_95": got["map50_95"],
            "delta_map50": delta, "delta_map50_95": source_map["map50_95"] - got["map50_95"],
            "max_map_drop": max_drop, "passed": bool(delta <= max_drop + 1e-9)}
    if source_map.get("preds") is not None and resamples:
        from edgekit.metrics.bootstrap import paired_bootstrap_map50

        boot = paired_bootstrap_map50([r.truth() for r in records], source_map["preds"], got["preds"], names, resamples)
        lo, hi = boot["ci95"]  # of artifact - source: flip into the gate's sign (a drop is positive)
        gate["delta_map50_ci95"] = [-hi, -lo]
        gate["bootstrap_resamples"] = resamples
    return gate


def quick_latency(runner, image: np.ndarray, runs: int = 20, warmup: int = 3) -> float:
    """Median inference time in ms on this host (a quick figure; ``edgekit bench`` measures properly)."""
    x, _ = runner.prepare(image)
    for _ in range(warmup):
        runner.backend.run([x])
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        runner.backend.run([x])
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def _heads(spec: dict | None) -> str:
    """A head_spec in a few words, for error messages."""
    if not spec:
        return "no detection head"
    return f"{spec['type']} heads at strides {spec['strides']}, {spec['num_classes']} classes"


def verify_artifact(artifact, ref, data=None, split: str | None = None, max_map_drop: float | None = None,
                    images: int = 8, backend: str | None = None, verbose: bool = False) -> dict:
    """``edgekit verify``: re-check an exported artifact against its source model.

    What torch and the artifact's runtime print while loading and running is captured
    (:func:`edgekit.export.capture.captured`) and shown on stderr only with ``verbose``.

    Example:
        >>> verify_artifact("out/yolo-lite-tflite-int8.tflite", "best.pt", data="data.yaml")["passed"]  # doctest: +SKIP
        True
    """
    from pathlib import Path

    from edgekit.errors import EdgekitError
    from edgekit.export.capture import step
    from edgekit.export.source import load_source
    from edgekit.runtime.runner import ArtifactRunner, read_manifest

    manifest = read_manifest(artifact)
    with step(f"loading {ref}", verbose):
        source = load_source(ref, tuple(manifest["preprocess"]["imgsz"]))
    if source.task != manifest["task"] or list(source.names) != list(manifest["names"]):
        raise EdgekitError(f"{artifact} ({manifest['task']}, classes {manifest['names']}) was not exported from {ref}: "
                           "give the model it came from as --ref")
    if source.task == "detect" and json.loads(json.dumps(source.head_spec)) != manifest.get("decode"):
        raise EdgekitError(f"{artifact} decodes as {_heads(manifest.get('decode'))} but {ref} is {_heads(source.head_spec)}: "
                           "it was not exported from that model; give the model it came from as --ref")
    records, split, _ = labelled_records(data, split) if source.task == "detect" else (None, None, None)
    with step(f"verifying {Path(artifact).name}", verbose):
        runner = ArtifactRunner(artifact, manifest, backend)
        result = {"artifact": str(Path(artifact)), "ref": str(ref), "target": manifest["target"],
                  "parity": parity(runner, source, parity_images([r.path for r in records or []], None, images)[0], manifest["precision"]),
                  "map": None}
        if records is not None:
            drop = DEFAULT_MAX_MAP_DROP[manifest["precision"]] if max_map_drop is None else max_map_drop
            src_map = detection_map(source_infer(source, source.imgsz), records, source.names, source.head_spec,
                                    keep_preds=True)
            result["map"] = map_gate(runner, records, source.names, source.head_spec, src_map, drop, split)
    result["passed"] = bool(result["parity"].get("passed") and (result["map"] is None or result["map"]["passed"]))
    return result
