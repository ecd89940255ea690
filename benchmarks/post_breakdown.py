"""Where a detector's post-processing time goes, measured inside ``predict_one`` (caches as inference leaves them).

    python benchmarks/post_breakdown.py runs/export/yf-shipped-u8-bgr/yolo-fastest-1.1-tflite-int8.tflite \\
        ../shared/data/fish4knowledge/test/images --name yolo-fastest-1.1-f4k-u8-bgr

For ``--rounds`` rounds over the frames (the first ``--frames`` images of SOURCE, in memory), each frame's
``predict_one`` (1 interpreter thread, OpenCV at 1 thread, as ``edgekit detect --threads 1``) with three of
the post-processing's functions timed where they are called: the whole fused decode + NMS
(``CandidateDecoder.detect``), its NMS (``nms_corners_in_opencv``, with the number of boxes it got) and the
inverse letterbox (``boxes_from_letterbox``). A wrapper adds about a microsecond per call. Reports, as medians
of the rounds: the pre/infer/post split, each part's mean per frame, the NMS's share of the post, how much of
the NMS time the crowded frames (over 100 boxes into NMS) take, and the pre + post share the frame would have
if NMS cost nothing (a bound on what a faster NMS can give, not a measurement of one).

Writes ``benchmarks/results/post-breakdown-<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CROWDED = 100


def timed(owner, name: str, log: list, size=None):
    """Replace ``owner.name`` by a wrapper appending (seconds, size(args)) to ``log``."""
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        out = inner(*args, **kwargs)
        log.append((time.perf_counter() - t, size(args) if size else 0))
        return out

    setattr(owner, name, wrapper)


def one_round(det, frames, conf: float) -> dict:
    import edgekit.runtime.decode as decode
    import edgekit.runtime.postprocess as postprocess

    logs = {"decode_nms": [], "nms": [], "unletterbox": []}
    saved = (decode.CandidateDecoder.detect, decode.nms_corners_in_opencv, postprocess.boxes_from_letterbox)
    timed(decode.CandidateDecoder, "detect", logs["decode_nms"])
    timed(decode, "nms_corners_in_opencv", logs["nms"], size=lambda a: len(a[2]))
    timed(postprocess, "boxes_from_letterbox", logs["unletterbox"])
    split = {"pre_ms": [], "infer_ms": [], "post_ms": []}
    try:
        for img in frames:
            det.predict_one(img, conf=conf)
            for k in split:
                split[k].append(det.last_timing[k])
    finally:
        decode.CandidateDecoder.detect, decode.nms_corners_in_opencv, postprocess.boxes_from_letterbox = saved
    n = len(frames)
    row = {k: sum(v) / n for k, v in split.items()}
    for k, log in logs.items():
        row[f"{k}_ms"] = sum(t for t, _ in log) * 1e3 / n  # per frame, frames without the call count as 0
    nms_total = sum(t for t, _ in logs["nms"])
    crowded = sum(t for t, size in logs["nms"] if size > CROWDED)
    row["nms_frames"] = len(logs["nms"])
    row["crowded_frames"] = sum(1 for _, size in logs["nms"] if size > CROWDED)
    row["nms_share_of_post"] = row["nms_ms"] / row["post_ms"]
    row["crowded_share_of_nms"] = crowded / nms_total if nms_total else 0.0
    frame = row["pre_ms"] + row["infer_ms"] + row["post_ms"]
    row["pre_post_share"] = (row["pre_ms"] + row["post_ms"]) / frame
    row["pre_post_share_without_nms"] = (row["pre_ms"] + row["post_ms"] - row["nms_ms"]) / (frame - row["nms_ms"])
    row["nms_boxes"] = sorted(size for _, size in logs["nms"])
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("artifact")
    ap.add_argument("source", help="a folder of images")
    ap.add_argument("--name", required=True)
    ap.add_argument("--frames", type=int, default=188)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--conf", type=float, default=0.3)
    ap.add_argument("--out")
    args = ap.parse_args(argv)

    import cv2

    from edgekit.runtime import load

    cv2.setNumThreads(1)
    det = load(args.artifact, threads=1)
    paths = sorted(p for p in Path(args.source).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    frames = [cv2.imread(str(p)) for p in paths[:args.frames]]
    for img in frames[:10]:  # warm-up
        det.predict_one(img, conf=args.conf)
    load_before = [round(v, 2) for v in os.getloadavg()]
    rounds = []
    for k in range(args.rounds):
        rounds.append(one_round(det, frames, args.conf))
        print(f"round {k + 1}/{args.rounds}: post {rounds[-1]['post_ms']:.3f} ms, nms {rounds[-1]['nms_ms']:.3f} ms",
              file=sys.stderr)
    keys = [k for k in rounds[0] if k != "nms_boxes"]
    boxes = rounds[0]["nms_boxes"]
    res = {"command": "python benchmarks/post_breakdown.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "artifact": args.artifact, "backend": det.describe(), "frames": len(frames), "conf": args.conf,
           "threads": 1, "opencv_threads": cv2.getNumThreads(), "load_before": load_before,
           "load_after": [round(v, 2) for v in os.getloadavg()],
           "median": {k: round(statistics.median(r[k] for r in rounds), 4) for k in keys},
           "nms_boxes_quantiles": {q: boxes[min(len(boxes) - 1, int(q / 100 * len(boxes)))] for q in (0, 25, 50, 75, 90, 100)}
           if boxes else {},
           "per_round": [{k: round(r[k], 4) for k in keys} for r in rounds],
           "crowded_means": f"over {CROWDED} boxes into NMS"}
    out = Path(args.out) if args.out else HERE / "results" / f"post-breakdown-{args.name}.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res["median"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
