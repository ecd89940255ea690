"""``edgekit detect --model ARTIFACT --source SRC [...]``: a detector over a video, camera or stream.

Tracks, counts (a line: IN/OUT per class; a zone: entries per class), events as JSON lines,
an annotated video, a window. A thin shell over :func:`edgekit.runtime.stream` and
:func:`edgekit.runtime.sinks.run_stream`. stdout carries the summary only (``--json``: one
JSON document with ``frames``, ``dropped``, ``fps_mean``, ``fps_p90``, ``counts``, ``tracks``);
progress goes to stderr. Ctrl-C and SIGTERM stop cleanly and still write the summary.
"""

from __future__ import annotations

import sys
from edgekit.cli.ranges import fraction, number, whole


def add_parser(sub):
    p = sub.add_parser("detect", help="run a detector on a video, camera, stream or image folder: tracks, counts, events")
    p.add_argument("--model", required=True, help="detector artifact (.tflite/.onnx/.xml/.param) or checkpoint (.pt)")
    p.add_argument("--source", required=True,
                   help="video file, folder or glob of images, camera index or /dev/videoN, rtsp/http/tcp URL, or picamera2")
    p.add_argument("--classify", metavar="CLS_ARTIFACT",
                   help="classifier artifact: each track's species from its crops (mean probability), 'unsure' "
                        "under the manifest's reject thresholds")
    p.add_argument("--show", action="store_true", help="show annotated frames in a window (needs a display)")
    p.add_argument("--save", metavar="OUT.mp4", help="write the annotated video (boxes, labels, track ids, counts, FPS)")
    p.add_argument("--jsonl", metavar="EVENTS.jsonl", help="write events, one JSON object per line")
    p.add_argument("--conf", type=fraction(), default=0.25, help="minimum detection score (default 0.25)")
    p.add_argument("--iou", type=fraction(above_zero=True), default=0.45, help="NMS IoU threshold (default 0.45)")
    p.add_argument("--classes", type=whole(0), nargs="+", help="keep only these class ids")
    p.add_argument("--track", action="store_true", help="track objects with stable ids (implied by counting and --classify)")
    p.add_argument("--count-line", metavar="X1,Y1,X2,Y2",
                   help="count crossings of this line, in pixels: 'in' towards the right-hand side walking from "
                        "(x1,y1) to (x2,y2) (a line drawn left to right: downward is in)")
    p.add_argument("--count-zone", metavar="POLYGON", help="count tracks entering this polygon: x1,y1,x2,y2,x3,y3,...")
    p.add_argument("--anchor", choices=["center", "bottom"], default="center",
                   help="the point of a box that counts (bottom: where a person's feet are)")
    p.add_argument("--max-fps", type=number(0.0, above=True), help="process at most this many frames a second")
    p.add_argument("--stride", type=whole(1), default=1, help="files and image folders: every K-th frame (default 1)")
    p.add_argument("--duration", type=number(0.0, above=True),
                   help="stop after S seconds (of video time for a file, of wall time for a live source)")
    p.add_argument("--loop", action="store_true", help="files and image folders: start again at the end (with --duration)")
    p.add_argument("--reconnect", type=number(0.0), default=30.0, metavar="S",
                   help="live sources: reopen a dropped stream with back-off, giving up after S s without a frame")
    p.add_argument("--backend", help="onnxruntime, litert, openvino, ncnn, mnn, executorch or torch (default: from the manifest)")
    p.add_argument("--threads", type=whole(1), help="interpreter CPU threads; OpenCV's resize then uses as many "
                                                     "(at 1 thread, faster per frame than OpenCV's default here: README)")
    p.add_argument("--delegate", help="LiteRT delegate (edgetpu, vx, or a .so path) / onnxruntime execution provider")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def _progress(every: float = 2.0):
    import time

    state = {"next": time.monotonic() + every}

    def report(r) -> None:
        now = time.monotonic()
        if now >= state["next"]:
            state["next"] = now + every
            counts = ", ".join(f"{k} {v['in']}/{v['out']}" if isinstance(v, dict) else f"{k} {v}"
                               for k, v in r.counts.items())
            print(f"frame {r.frame.index}  {r.fps:.1f} FPS  {len(r.tracks)} tracks  {counts}", file=sys.stderr, flush=True)

    return report


def run(args) -> int:
    import json
    import os

    from edgekit.runtime import stream
    from edgekit.runtime.sinks import run_stream

    from edgekit.io import check_output_not_input

    inputs = [args.model, args.classify] + ([args.source] if os.path.exists(str(args.source)) else [])
    for flag, path in (("--save", args.save), ("--jsonl", args.jsonl)):
        if path:  # before the model is loaded: an output over the video or the model would destroy it
            check_output_not_input(path, inputs, flag)
    if args.threads:
        import cv2

        cv2.setNumThreads(args.threads)  # process-wide: this command owns the process
    load_options = {k: v for k, v in (("backend", args.backend), ("threads", args.threads),
                                      ("delegate", args.delegate)) if v is not None}
    s = stream(args.model, args.source, conf=args.conf, iou=args.iou, classes=args.classes, track=args.track,
               line=args.count_line, zone=args.count_zone, anchor=args.anchor, stride=args.stride,
               max_fps=args.max_fps, duration=args.duration, classifier=args.classify, reconnect_s=args.reconnect, loop=args.loop,
               **load_options)
    summary = run_stream(s, save=args.save, jsonl=args.jsonl, show=args.show, on_result=_progress())
    if s.ended not in ("end", "duration", "stopped"):
        print(f"edgekit: warning: {s.ended}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
        return 0
    rate = f"{summary['fps_mean']:.1f} FPS mean, {summary['fps_p90']:.1f} FPS p90"
    print(f"{summary['frames']} frames ({summary['dropped']} dropped), {rate}, {summary['tracks']} tracks")
    for name, v in summary["counts"].items():
        print(f"  {name}: in {v['in']}, out {v['out']}" if isinstance(v, dict) else f"  {name}: {v}")
    for what, path in (("annotated video", args.save), ("events", args.jsonl)):
        if path:
            print(f"{what}: {path}")
    return 0
