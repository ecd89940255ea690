"""Does the fish detector find fish, or Fish4Knowledge's backgrounds? Class-agnostic mAP50 under corruptions.

    python benchmarks/robustness.py --weights edgekit/assets/weights/mobilenetv2_050-yolo-p3-fish4knowledge-320.pt \
        --data ../shared/data/fish4knowledge/data.yaml --split test

The test split is re-rendered under underwater corruptions, each at three severities: green and
blue colour casts, turbidity (contrast pulled towards a murky veil), blur, sensor noise, JPEG
compression, and a scale change (0.5x, 0.75x, 1.5x, 2x: the image resized, its boxes with it).
Every condition is scored class-agnostically (``edgekit val --single-cls``: the question is
whether a fish is found, not which species) through :func:`edgekit.validate.validate`, the same
path as ``edgekit val``. Writes ``benchmarks/results/robustness-<model>.json``: the clean mAP50,
each condition's mAP50, their mean, the gap to clean and the issue's goal (mean within 0.15).
Corruptions are seeded: a rerun renders the same images.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SEVERITIES = (1, 2, 3)
GOAL_GAP = 0.15


def cast(img, s, channel):
    """Underwater colour cast: the other channels attenuated (red first), as water absorbs them."""
    out = img.astype(np.float32)
    keep = {"green": 1, "blue": 0}[channel]  # BGR
    for c in range(3):
        if c != keep:
            out[..., c] *= (1.0 - 0.22 * s) if c == 2 else (1.0 - 0.12 * s)
    return np.clip(out, 0, 255).astype(np.uint8)


def turbidity(img, s, rng):
    """Contrast pulled towards a greenish-grey veil (scattering): a uniform blend, no texture."""
    veil = np.array([110, 120, 90], np.float32)  # BGR murky green-grey
    a = 0.25 * s
    out = img.astype(np.float32) * (1 - a) + veil * a
    return np.clip(out, 0, 255).astype(np.uint8)


def blur(img, s, rng):
    import cv2

    k = 2 * s + 1
    return cv2.GaussianBlur(img, (k, k), 0.6 * s + 0.4)


def noise(img, s, rng):
    out = img.astype(np.float32) + rng.normal(0, 6.0 * s, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def jpeg(img, s, rng):
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, {1: 40, 2: 20, 3: 10}[s]])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


CORRUPTIONS = {
    "cast_green": lambda img, s, rng: cast(img, s, "green"),
    "cast_blue": lambda img, s, rng: cast(img, s, "blue"),
    "turbidity": turbidity,
    "blur": blur,
    "noise": noise,
    "jpeg": jpeg,
}
SCALES = (0.5, 0.75, 1.5, 2.0)


def render(records, out_dir: Path, fn=None, severity=0, scale=1.0, seed=0):
    """The records re-rendered into ``out_dir`` (PNG, lossless) with ``fn`` or a scale change."""
    import cv2

    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    new = []
    for k, rec in enumerate(records):
        img = cv2.imread(str(rec.path), cv2.IMREAD_COLOR)
        if fn is not None:
            img = fn(img, severity, rng)
        boxes = np.asarray(rec.boxes, np.float64).reshape(-1, 4)
        w, h = rec.width, rec.height
        if scale != 1.0:
            w, h = max(1, round(rec.width * scale)), max(1, round(rec.height * scale))
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            boxes = boxes * np.array([w / rec.width, h / rec.height] * 2)
        path = out_dir / f"{k:05d}.png"
        cv2.imwrite(str(path), img)
        new.append(replace(rec, path=path, width=w, height=h, boxes=boxes.astype(np.float32)))
    return new


def model_label(ck: dict) -> str:
    """The checkpoint's family, or for a Darknet cfg the cfg's name: ``darknet`` alone names no model.

    Example:
        >>> model_label({"model": "darknet", "model_kwargs": {"cfg_name": "yolo-fastest-1.1.cfg"}})
        'yolo-fastest-1.1'
    """
    name = (ck.get("model_kwargs") or {}).get("cfg_name")
    return Path(name).stem if ck.get("model") == "darknet" and name else ck["model"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="edgekit/assets/weights/mobilenetv2_050-yolo-p3-fish4knowledge-320.pt")
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "fish4knowledge" / "data.yaml"))
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="default benchmarks/results/robustness-<model>.json")
    args = p.parse_args(argv)

    import torch

    from edgekit.data import load_dataset
    from edgekit.metrics.class_map import ClassMap
    from edgekit.models.checkpoint import load_checkpoint
    from edgekit.validate import validate

    torch.set_num_threads(2)
    model, ck = load_checkpoint(args.weights)
    ds = load_dataset(args.data)
    records = ds.split(args.split)[: args.limit or None]
    names, imgsz, agnostic = list(ck["names"]), ck["imgsz"], ClassMap(single=True)  # an int or [h, w]

    def score(recs) -> float:
        return round(validate(model, recs, names, imgsz, class_map=agnostic, data_names=ds.names)["map50"], 4)

    t0 = time.time()
    conditions = []
    with tempfile.TemporaryDirectory(prefix="robustness-") as tmp:
        clean = score(records)
        print(f"clean: {clean:.4f}", file=sys.stderr)
        for i, (name, fn) in enumerate(CORRUPTIONS.items()):
            for s in SEVERITIES:
                recs = render(records, Path(tmp) / f"{name}-{s}", fn, s, seed=args.seed * 100 + i * 10 + s)
                conditions.append({"corruption": name, "severity": s, "map50": score(recs)})
                print(f"{name} {s}: {conditions[-1]['map50']:.4f}", file=sys.stderr)
        for scale in SCALES:
            recs = render(records, Path(tmp) / f"scale-{scale}", scale=scale)
            conditions.append({"corruption": "scale", "severity": scale, "map50": score(recs)})
            print(f"scale {scale}: {conditions[-1]['map50']:.4f}", file=sys.stderr)
    mean = round(float(np.mean([c["map50"] for c in conditions])), 4)
    per = {}
    for c in conditions:
        per.setdefault(c["corruption"], []).append(c["map50"])
    result = {
        "model": model_label(ck), "weights": args.weights, "data": args.data, "split": args.split,
        "images": len(records), "imgsz": imgsz, "scoring": "class-agnostic mAP50 (edgekit val --single-cls)",
        "clean_map50": clean, "conditions": conditions,
        "per_corruption_mean": {k: round(float(np.mean(v)), 4) for k, v in per.items()},
        "mean_map50": mean, "gap": round(clean - mean, 4), "goal_gap": GOAL_GAP, "goal_met": clean - mean <= GOAL_GAP,
        "worst": min(conditions, key=lambda c: c["map50"]),
        "wall_s": round(time.time() - t0, 1),
        "command": "python benchmarks/robustness.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    out = Path(args.out or HERE / "results" / f"robustness-{model_label(ck)}.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("model", "clean_map50", "mean_map50", "gap", "goal_met", "worst")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
