"""The video loop's cost: pure inference FPS vs pipeline FPS, the pre/infer/post split, RSS over a long run.

    python benchmarks/video_pipeline.py ../shared/models/yolo-fastest-1.1/yolo-fastest-1.1.cfg \
        ../shared/video/vtest.avi --classes 0 --line 384,0,384,576 --threads 1

MODEL is an artifact (.tflite/.onnx/...) or a source model (.cfg/.pt), which is first exported to
``--target`` (default tflite-int8) calibrated on ``--calib-frames`` frames spread over SOURCE
(the export's parity check applies; a COCO model has no data.yaml here, so no mAP gate).
In one process, on the same artifact and source:

1. ``predict``: the first ``--frames`` frames decoded into memory, then ``predict_one`` on each
   (1 warm-up pass): the model's own ``pre_ms``/``infer_ms``/``post_ms`` means; pure inference
   FPS = 1000 / infer_ms, predict FPS = 1000 / (pre + infer + post).
2. ``pipeline``: :func:`edgekit.runtime.stream` over the source file (capture thread, tracker,
   line counter; no sinks), then the same with the annotated video and JSONL written
   (``run_stream``): FPS and the ratio to pure inference (the issue's goal: >= 90 %).
3. ``soak``: the pipeline over the source looped until ``--soak-frames`` frames, RSS sampled every
   1000 frames; growth from the first sample (after warm-up) to the last (goal: < 5 %).

Writes ``benchmarks/results/video-<artifact>-<source>-t<threads>.json`` with the command, host,
versions and git commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def frames_of(source: str, n: int) -> list:
    from edgekit.runtime.video import open_source

    out = []
    with open_source(source) as src:
        for f in src:
            out.append(f.image)
            if len(out) >= n:
                break
    return out


def export_model(model: str, source: str, target: str, calib_frames: int, out: Path) -> Path:
    import cv2

    calib = out / "calib"
    calib.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(source)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or calib_frames
    keep = set(int(k * total / calib_frames) for k in range(calib_frames))
    k = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if k in keep:
            cv2.imwrite(str(calib / f"{k:06d}.jpg"), img)
        k += 1
    # in a child process: the converters' memory (torch, TensorFlow) must not count in the soak's RSS
    res = subprocess.run([sys.executable, "-m", "edgekit", "export", model, "--target", target, "--calib", str(calib),
                          "--out", str(out), "--json"], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"export to {target} failed: {res.stderr.strip()}")
    r = json.loads(res.stdout)["targets"][0]
    return Path(r["path"]) if Path(r["path"]).is_absolute() else out / Path(r["path"]).name


def predict_pass(det, frames, options) -> dict:
    for img in frames[:10]:  # warm-up
        det.predict_one(img, **options)
    pre, inf, post = [], [], []
    for img in frames:
        det.predict_one(img, **options)
        t = det.last_timing
        pre.append(t["pre_ms"])
        inf.append(t["infer_ms"])
        post.append(t["post_ms"])
    n = len(frames)
    m = {"pre_ms": sum(pre) / n, "infer_ms": sum(inf) / n, "post_ms": sum(post) / n}
    total = sum(m.values())
    return {**{k: round(v, 3) for k, v in m.items()}, "frames": n,
            "pre_post_share": round((m["pre_ms"] + m["post_ms"]) / total, 4),
            "inference_fps": round(1000 / m["infer_ms"], 2), "predict_fps": round(1000 / total, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("source")
    ap.add_argument("--target", default="tflite-int8")
    ap.add_argument("--calib-frames", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--conf", type=float, default=0.3)
    ap.add_argument("--classes", type=int, nargs="+")
    ap.add_argument("--line", help="x1,y1,x2,y2 counting line")
    ap.add_argument("--frames", type=int, default=300, help="frames for the predict pass")
    ap.add_argument("--soak-frames", type=int, default=10000)
    ap.add_argument("--out", help="result JSON (default benchmarks/results/video-<artifact>-<source>-t<threads>.json)")
    args = ap.parse_args(argv)

    from edgekit import __version__
    from edgekit.runtime import load, stream
    from edgekit.runtime.sinks import run_stream

    work = Path(tempfile.mkdtemp(prefix="video-bench-"))
    model = Path(args.model)
    if model.suffix in (".cfg", ".pt"):
        print(f"exporting {model} to {args.target} ...", file=sys.stderr)
        artifact = export_model(str(model), args.source, args.target, args.calib_frames, work / "export")
    else:
        artifact = model
    options = {"conf": args.conf, "iou": 0.45, "classes": args.classes}
    det = load(artifact, threads=args.threads)
    res = {"command": "python benchmarks/video_pipeline.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "artifact": str(artifact), "source": args.source, "threads": args.threads,
           "host": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "edgekit": __version__,
           "backend": det.describe(), "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                                          capture_output=True, text=True).stdout.strip()}
    print("predict pass ...", file=sys.stderr)
    res["predict"] = predict_pass(det, frames_of(args.source, args.frames), options)
    sopts = {**options, "line": args.line, "track": True}
    print("pipeline pass ...", file=sys.stderr)
    s = stream(det, args.source, **sopts)
    timing = {"pre_ms": 0.0, "infer_ms": 0.0, "post_ms": 0.0}
    for r in s:
        for k in timing:
            timing[k] += r.timing.get(k, 0.0)
    res["pipeline"] = {**s.summary(), **{k: round(v / max(s.frames, 1), 3) for k, v in timing.items()}}
    print("pipeline + sinks pass ...", file=sys.stderr)
    s = stream(det, args.source, **sopts)
    res["pipeline_sinks"] = run_stream(s, save=work / "out.mp4", jsonl=work / "events.jsonl", handle_signals=False)
    for k in ("pipeline", "pipeline_sinks"):
        res[k]["vs_inference"] = round(res[k]["fps_mean"] / res["predict"]["inference_fps"], 3)
        res[k]["vs_predict"] = round(res[k]["fps_mean"] / res["predict"]["predict_fps"], 3)
    if args.soak_frames:
        # the predict pass held --frames decoded frames; glibc keeps freed heap mapped, so hand it back
        # first: the soak's RSS is then the loop's own
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        print(f"soak: {args.soak_frames} frames ...", file=sys.stderr)
        s = stream(det, args.source, loop=True, **sopts)
        samples = []
        t0 = time.monotonic()
        for r in s:
            if s.frames % 1000 == 0:
                samples.append([s.frames, round(rss_mb(), 1)])
                print(f"  {s.frames} frames, RSS {samples[-1][1]} MB", file=sys.stderr)
            if s.frames >= args.soak_frames:
                s.stop()
        first, last = samples[0][1], samples[-1][1]
        res["soak"] = {"frames": s.frames, "seconds": round(time.monotonic() - t0, 1), "rss_mb": samples,
                       "rss_growth": round((last - first) / first, 4), "summary": s.summary()}
    name = f"video-{Path(artifact).stem}-{Path(args.source).stem}-t{args.threads}.json"
    out = Path(args.out) if args.out else HERE / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: res[k] for k in ("predict", "pipeline", "pipeline_sinks") if k in res}, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
