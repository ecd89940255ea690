"""Is ``--keep-float``'s non-monotone mAP noise or a ranking problem? onnx-int8, one calibration reused.

For one detector and its labelled test split, writes ``benchmarks/results/keep-float-ranking-<model>.json``:

- ``plain``: plain INT8 (min-max, the exporter's output clip), and plain INT8 from two other
  100-image calibration subsets of the train split (``plain-calib-offset1/2``): the calibration noise;
- ``nodes-topK``: the K worst rows of the SQNR ranking kept float by their own nodes only
  (what ``--keep-float K`` did before rows carried ``keep_float``);
- ``keep_float-topK``: the same rows by their ``keep_float`` (nodes + the layers reading their
  output: ``edgekit.export.sensitivity.keep_float_nodes``, what ``--keep-float K|auto`` does now);
- ``single``: for the 20 worst rows, the model's output SQNR gain when only that row is float,
  by nodes and by ``keep_float``.

Every config row: mAP@0.5 on the test split, its paired-bootstrap delta against plain with the
95% interval, and the whole model's output SQNR against float (raw head maps clipped to the
exporter's logit clip) on the 8 parity images and on the whole test split. One calibration is
computed and reused through onnxruntime's calibration cache, so configs differ only in what is float.

    python benchmarks/keep_float_ranking.py edgekit/assets/weights/mobilenetv2_050-yolo-p3-fish4knowledge-320.pt \\
        --data ../shared/data/fish4knowledge/data.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEPS = (1, 2, 4, 8, 16)


def log(s: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {s}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--single", type=int, default=20, help="rows measured one at a time (default 20)")
    args = ap.parse_args(argv)

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgekit.export.calibration import DETECTION_LOGIT_CLIP, CalibrationReader, calibration_paths, select_evenly
    from edgekit.export.onnx import _output_overrides, ranges_cache, torch2onnx
    from edgekit.export.sensitivity import keep_float_nodes, onnx_sensitivity
    from edgekit.export.source import load_source
    from edgekit.export.verify import detection_map, labelled_records, source_infer
    from edgekit.metrics import evaluate_detections
    from edgekit.metrics.bootstrap import paired_bootstrap_map50
    from edgekit.runtime.model import read_image
    from edgekit.runtime.onnxruntime_backend import make_session
    from edgekit.runtime.postprocess import postprocess_detections
    from edgekit.runtime.preprocess import preprocess

    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime's quant_pre_process advice
    src = load_source(args.model)
    records, split, _ = labelled_records(args.data, None)
    gts = [r.truth() for r in records]
    tmp = Path(tempfile.mkdtemp(prefix="edgekit-kf-rank-"))
    fp32 = tmp / "fp32.onnx"
    torch2onnx(src.module, src.imgsz, fp32)
    test_paths = [r.path for r in records]
    verification = {str(p) for p in test_paths}
    pool = [p for p in calibration_paths(args.data, "train") if str(p) not in verification]

    def calibrate(offset: int):
        reader = CalibrationReader(select_evenly(pool[offset:] + pool[:offset], 100), src.imgsz, source=args.data,
                                   resize=src.resize)
        cache = ranges_cache(fp32, reader, tmp / f"ranges-{offset}.json", "minmax")
        return cache, _output_overrides(fp32, reader, DETECTION_LOGIT_CLIP)

    def convert(cal, keep, out: Path) -> Path:
        cache, overrides = cal
        quantize_static(str(fp32), str(out), None, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=list(keep),
                        extra_options={"TensorQuantOverrides": overrides}, calibration_cache_path=str(cache))
        return out

    def clipped(ys) -> np.ndarray:
        return np.concatenate([np.clip(y, -DETECTION_LOGIT_CLIP, DETECTION_LOGIT_CLIP).ravel() for y in ys])

    inputs = [preprocess(read_image(p), src.imgsz, resize=src.resize) for p in test_paths]
    fsess = make_session(fp32, threads=1)
    ref = [clipped(fsess.run(None, {"images": x})).astype(np.float64) for x, _ in inputs]

    def sqnr(outs, n=None) -> float:
        pairs = list(zip(ref, outs))[:n]
        sig = sum(float(r @ r) for r, _ in pairs)
        noise = sum(float((r - o) @ (r - o)) for r, o in pairs)
        return round(10 * np.log10(sig / max(noise, 1e-30)), 3)

    def outputs(path: Path, n=None):
        sess = make_session(path, threads=1)
        return [sess.run(None, {"images": x}) for x, _ in inputs[:n]]

    def evaluate(path: Path) -> dict:
        raw = outputs(path)
        preds = [postprocess_detections(maps, src.head_spec, lb, 0.001, 0.6) for maps, (_, lb) in zip(raw, inputs)]
        m = evaluate_detections(gts, preds, src.names)
        outs = [clipped(r).astype(np.float64) for r in raw]
        return {"map50": float(m.map50), "preds": preds, "out_sqnr_db_8": sqnr(outs, 8), "out_sqnr_db_all": sqnr(outs)}

    src_map = detection_map(source_infer(src, src.imgsz), records, src.names, src.head_spec)
    name = src.model
    out_json = ROOT / "benchmarks" / "results" / f"keep-float-ranking-{name}.json"
    res = {"model": name, "data": args.data, "split": split, "images": len(records), "source_map50": src_map["map50"],
           "calib_images": 100, "calib_method": "minmax", "output_sqnr": "raw head maps clipped to +-"
           f"{DETECTION_LOGIT_CLIP}, against the fp32 ONNX", "configs": [],
           "command": "python benchmarks/keep_float_ranking.py " + " ".join(argv or sys.argv[1:])}
    cal = calibrate(0)
    plain = evaluate(convert(cal, [], tmp / "plain.onnx"))

    def record(config: str, keep: list[str], m: dict) -> None:
        boot = paired_bootstrap_map50(gts, plain["preds"], m["preds"], src.names, 200)
        res["configs"].append({"config": config, "kept_nodes": len(keep), "map50": round(m["map50"], 4),
                               "delta_vs_plain": round(boot["delta"], 4),
                               "delta_vs_plain_ci95": [round(v, 4) for v in boot["ci95"]],
                               "out_sqnr_db_8": m["out_sqnr_db_8"], "out_sqnr_db_all": m["out_sqnr_db_all"]})
        log(json.dumps(res["configs"][-1]))
        out_json.write_text(json.dumps(res, indent=1) + "\n")

    record("plain", [], plain)
    rows = onnx_sensitivity(fp32, tmp / "plain.onnx", [{"images": x} for x, _ in inputs[:8]])
    res["ranking"] = [{"name": r["name"], "lost_db": r["lost_db"], "keep_float": r["keep_float"]} for r in rows[:16]]
    for k in STEPS:
        for how, keep in (("nodes", [n for r in rows[:k] for n in r["nodes"]]), ("keep_float", keep_float_nodes(rows, k))):
            record(f"{how}-top{k}", keep, evaluate(convert(cal, keep, tmp / "try.onnx")))
    for offset in (1, 2):
        record(f"plain-calib-offset{offset}", [], evaluate(convert(calibrate(offset), [], tmp / "try.onnx")))
    base = sqnr([clipped(o).astype(np.float64) for o in outputs(tmp / "plain.onnx", 8)], 8)
    res["single"] = []
    for r in rows[:args.single]:
        gain = {}
        for how in ("nodes", "keep_float"):
            outs = outputs(convert(cal, r[how], tmp / "try.onnx"), 8)
            gain[how] = round(sqnr([clipped(o).astype(np.float64) for o in outs], 8) - base, 3)
        res["single"].append({"name": r["name"], "lost_db": r["lost_db"], "out_gain_db_nodes": gain["nodes"],
                              "out_gain_db_keep_float": gain["keep_float"]})
        log(json.dumps(res["single"][-1]))
        out_json.write_text(json.dumps(res, indent=1) + "\n")
    log(f"wrote {out_json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
