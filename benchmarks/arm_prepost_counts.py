"""The video loop's pre/infer/post split on emulated Cortex-A cores, in executed aarch64 instructions.

    python benchmarks/arm_prepost_counts.py runs/export/yf-shipped-u8-bgr/yolo-fastest-1.1-tflite-int8.tflite \\
        ../shared/data/fish4knowledge/test/images --name yolo-fastest-1.1-f4k-u8-bgr --core cortex-a53 --core cortex-a76

Needs ``edgekit arm setup --runtimes tflite`` (QEMU user mode, the board install, the counting plugin). The
board install is what ``pip install "edgekit[tflite]"`` puts on a Pi: numpy, OpenCV (headless) and LiteRT, so
the guest runs the same ``Detector.predict_one`` as ``edgekit detect`` on a board.

The frames (the first ``--frames`` images of SOURCE, decoded on the host) go to the guest as arrays. Per core,
three counting runs, each after two warm-up frames with the garbage collector off, count the instructions
between two markers around all the frames of one step:

- ``pre``: ``runner.prepare`` (resize into the input tensor);
- ``infer``: ``Detector.infer`` (the same preparation, then the interpreter);
- ``predict``: ``predict_one`` (all of it: decode, NMS, the inverse letterbox, the results).

So per frame: pre = ``pre``, interpreter = ``infer - pre``, post = ``predict - infer``; the share is
(pre + post) / predict. Counts are deterministic for a given runtime release, input and core (no timing,
so a shared host does not disturb them). They are instructions, not milliseconds: a cache miss or an
in-order pipeline's stall costs no instruction, so a time share on a board can differ; what they show is how
much work each step asks of that core's instruction set.

Writes ``benchmarks/results/arm-prepost-<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

GUEST = r"""
import gc, json, os, sys
import numpy as np
import cv2
from edgekit.runtime import load

artifact, frames_path, mode, conf = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
cv2.setNumThreads(1)
with np.load(frames_path) as z:
    frames = [z[f"arr_{k}"] for k in range(len(z.files))]
det = load(artifact, threads=1)
for f in frames[:2]:  # warm-up: the decoder's tables, the kept input tensor, the interpreter's first run
    det.predict_one(f, conf=conf)
step = {"pre": lambda f: det.runner.prepare(f, reuse=True), "infer": det.infer,
        "predict": lambda f: det.predict_one(f, conf=conf)}[mode]
gc.collect()
gc.disable()
os.getppid()  # marker: counting starts
for f in frames:
    step(f)
os.getppid()  # marker: counting stops
print(json.dumps({"numpy": np.__version__, "opencv": cv2.__version__, **det.describe()}))
"""
STEPS = ("pre", "infer", "predict")


def split(counts: dict) -> dict:
    """Per-frame instructions of each part from the three runs' counts, and the pre + post share of a frame.

    Example:
        >>> c = {"pre": {"total": 10}, "infer": {"total": 100}, "predict": {"total": 130}}
        >>> split(c)
        {'pre': 10, 'interpreter': 90, 'post': 30, 'frame': 130, 'pre_post_share': 0.3077}
    """
    pre, infer, predict = (counts[s]["total"] for s in STEPS)
    return {"pre": pre, "interpreter": infer - pre, "post": predict - infer, "frame": predict,
            "pre_post_share": round((pre + predict - infer) / predict, 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("artifact", help="a .tflite with its manifest")
    ap.add_argument("source", help="a folder of images")
    ap.add_argument("--name", required=True)
    ap.add_argument("--core", action="append", help="emulated core (repeatable; default cortex-a53)")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--conf", type=float, default=0.3)
    ap.add_argument("--out")
    args = ap.parse_args(argv)

    import cv2
    import numpy as np

    from edgekit.arm.count import read_counts
    from edgekit.arm.run import run_guest
    from edgekit.arm.setup import cache_dir

    cache = cache_dir()
    paths = sorted(p for p in Path(args.source).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    frames = [cv2.imread(str(p)) for p in paths[:args.frames]]
    res = {"command": "python benchmarks/arm_prepost_counts.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "artifact": args.artifact, "source": args.source, "frames": len(frames), "conf": args.conf,
           "unit": "aarch64 instructions per frame (QEMU TCG insn_count plugin, 1 guest thread, 2 warm-up frames, "
                   "garbage collector off)", "cores": {}}
    with tempfile.TemporaryDirectory(prefix="arm-prepost-") as tmp:
        frames_path = Path(tmp) / "frames.npz"
        np.savez(frames_path, *frames)
        for core in args.core or ["cortex-a53"]:
            counts = {}
            for step in STEPS:
                out = Path(tmp) / f"{core}-{step}.json"
                print(f"{core}: counting {step} over {len(frames)} frames ...", file=sys.stderr)
                r = run_guest(cache, core, "tflite", ["-c", GUEST, str(Path(args.artifact).resolve()), str(frames_path),
                                                      step, str(args.conf)], count_out=out)
                counts[step] = read_counts(out, len(frames))
                if "guest" not in res:  # the board install's versions and the model's description, once
                    res["guest"] = json.loads(r.stdout.strip().splitlines()[-1])
            res["cores"][core] = {"counts": counts, "split": split(counts)}
            print(f"{core}: {res['cores'][core]['split']}", file=sys.stderr)
    out = Path(args.out) if args.out else HERE / "results" / f"arm-prepost-{args.name}.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({c: v["split"] for c, v in res["cores"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
