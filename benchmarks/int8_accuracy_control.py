"""Does NNCF's accuracy-controlled quantization beat edgekit's plain OpenVINO INT8, on held-out data?

    python benchmarks/int8_accuracy_control.py runs/export/mobilenetv2_050-yolo-p3/mobilenetv2_050-yolo-p3-onnx.onnx \
        --data ../shared/data/fish4knowledge/data.yaml

The question behind it: ``openvino-int8`` of ``mobilenetv2_050-yolo-p3`` loses 0.012 mAP@0.5 on
the Fish4Knowledge test split, short of the 0.01 goal. ``nncf.quantize_with_accuracy_control``
reverts the quantizers that hurt a validation metric most until the drop is under ``--max-drop``.
It is fitted on ``--val-images`` of the *val* split (mAP@0.5 through the shared decoder and mAP
code) and judged on the *test* split, which it never sees; a paired bootstrap over test images
(``--bootstrap`` resamples) gives the 95% interval of each fp32 -> INT8 delta, i.e. how much of
a delta this test split can resolve at all.

Writes ``benchmarks/results/int8-accuracy-control-<model>.json``: fp32, plain INT8 (exactly
``edgekit export --target openvino-int8``'s quantizer) and accuracy-controlled INT8, each with
val and test mAP, deltas with bootstrap intervals, the reverted operations and wall times.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent


def load_items(records, imgsz, resize="letterbox"):
    """(tensor, letterbox, record) per labelled image, with the inference resize (the manifest's)."""
    import cv2

    from edgekit.runtime.preprocess import preprocess

    items = []
    for rec in records:
        x, lb = preprocess(cv2.imread(str(rec.path), cv2.IMREAD_COLOR), imgsz, resize=resize)
        items.append((x, lb, rec))
    return items


def predictions(compiled, items, head_spec):
    """Detections of a compiled OpenVINO model on the items (the shared post-processing)."""
    from edgekit.runtime.postprocess import postprocess_detections

    outs = compiled.outputs
    preds = []
    for x, lb, _ in items:
        res = compiled(x)
        preds.append(postprocess_detections([res[o] for o in outs], head_spec, lb, 0.001, 0.6))
    return preds


def ground_truth(items) -> list[dict]:
    return [rec.truth() for _, _, rec in items]


def mean_ap(preds, items, names) -> tuple[float, float]:
    from edgekit.metrics import evaluate_detections

    r = evaluate_detections(ground_truth(items), preds, names)
    return float(r.map50), float(r.map50_95)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("onnx", help="an fp32 ONNX artifact edgekit exported (its manifest gives decoding and size)")
    p.add_argument("--data", required=True, help="data.yaml: calibration from train, fitting on val, judging on test")
    p.add_argument("--val-images", type=int, default=150)
    p.add_argument("--calib-images", type=int, default=100)
    p.add_argument("--max-drop", type=float, default=0.005, help="accuracy control's allowed val mAP@0.5 drop")
    p.add_argument("--bootstrap", type=int, default=200)
    a = p.parse_args(argv)

    import nncf
    import openvino as ov

    from edgekit.export.calibration import CalibrationReader
    from edgekit.export.openvino import onnx2openvino
    from edgekit.io import atomic_write_text
    from edgekit.metrics.bootstrap import paired_bootstrap_map50
    from edgekit.runtime.runner import read_manifest
    from edgekit.validate_runtime import labelled_split

    manifest = read_manifest(a.onnx)
    spec, names = manifest["decode"], manifest["names"]
    imgsz = tuple(manifest["preprocess"]["imgsz"])
    resize = manifest["preprocess"].get("resize", "letterbox")
    val, _, _ = labelled_split(a.data, "val")
    val = val[:: max(1, len(val) // a.val_images)][: a.val_images]
    test, _, _ = labelled_split(a.data, "test")
    val_items, test_items = load_items(val, imgsz, resize), load_items(test, imgsz, resize)
    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32"}  # bf16 on some CPUs would blur the comparison
    calib = CalibrationReader.from_source(a.data, imgsz, a.calib_images, resize=resize)
    rows = {}

    def record(name, model, seconds, extra=None):
        compiled = core.compile_model(model, "CPU", cfg)
        test_p, val_p = predictions(compiled, test_items, spec), predictions(compiled, val_items, spec)
        rows[name] = {"val": mean_ap(val_p, val_items, names), "test": mean_ap(test_p, test_items, names),
                      "seconds": round(seconds, 1), **(extra or {}), "_preds": test_p}
        print(f"{name}: val mAP50 {rows[name]['val'][0]:.4f}, test mAP50 {rows[name]['test'][0]:.4f}", flush=True)

    record("fp32", ov.convert_model(a.onnx), 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        xml = Path(tmp) / "plain.xml"
        info = onnx2openvino(Path(a.onnx), xml, "int8", calib)
        record("int8_plain", core.read_model(str(xml)), time.time() - t0, {"quantization": info["quantization"]})

    reverted: list[str] = []

    class Catch(logging.Handler):  # NNCF reports the reverted operations only in its log
        def emit(self, rec):
            reverted.extend(line.strip() for line in rec.getMessage().splitlines()[1:] if line.strip())

    nncf.set_log_level(logging.INFO)
    logger = logging.getLogger("nncf")
    handler = Catch()
    logger.addHandler(handler)
    t0 = time.time()
    ac = nncf.quantize_with_accuracy_control(
        ov.convert_model(a.onnx), nncf.Dataset(list(calib)), nncf.Dataset(val_items, lambda it: it[0]),
        lambda compiled, items: mean_ap(predictions(compiled, list(items), spec), list(items), names)[0],
        max_drop=a.max_drop, preset=nncf.QuantizationPreset.MIXED, subset_size=len(calib))
    logger.removeHandler(handler)
    record("int8_accuracy_control", ac, time.time() - t0,
           {"max_drop": a.max_drop, "reverted": sorted(set(r for r in reverted if "/" in r))})

    ref = rows["fp32"]
    for name in ("int8_plain", "int8_accuracy_control"):
        r = rows[name]
        r["delta_map50"] = {"val": round(ref["val"][0] - r["val"][0], 4), "test": round(ref["test"][0] - r["test"][0], 4)}
        boot = paired_bootstrap_map50(ground_truth(test_items), ref["_preds"], r["_preds"], names, a.bootstrap)
        lo, hi = boot["ci95"]  # of int8 - fp32: report the drop (fp32 - int8), as delta_map50
        r["test_delta_bootstrap"] = {"resamples": boot["resamples"], "ci95": [round(-hi, 4), round(-lo, 4)]}
    for r in rows.values():
        r.pop("_preds")
        r["val"] = {"map50": round(r["val"][0], 4), "map50_95": round(r["val"][1], 4)}
        r["test"] = {"map50": round(r["test"][0], 4), "map50_95": round(r["test"][1], 4)}
    from edgekit import __version__

    result = {"model": manifest["model"], "artifact": str(a.onnx), "data": a.data, "val_images": len(val_items),
              "test_images": len(test_items), "calib_images": len(calib), "results": rows,
              "versions": {"edgekit": __version__, "openvino": ov.__version__, "nncf": nncf.__version__},
              "command": " ".join(["int8_accuracy_control.py", *(argv if argv is not None else sys.argv[1:])])}
    dest = HERE / "results" / f"int8-accuracy-control-{manifest['model']}.json"
    atomic_write_text(dest, json.dumps(result, indent=1))
    print(json.dumps({k: {kk: v.get(kk) for kk in ("test", "delta_map50", "test_delta_bootstrap")} for k, v in rows.items()},
                     indent=1))
    print(f"-> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
