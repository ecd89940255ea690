"""``edgekit predict MODEL IMAGE... [--backend --threads --delegate --conf --iou --save DIR --json]``.

Runs any model ``edgekit.runtime.load`` opens (an exported artifact, a checkpoint through the
torch reference, a TFLite SSD, a YAML-described ONNX, raw mode) on images or folders of
images; prints one line per image (or JSON), and with ``--save`` writes annotated copies.
Device side: imports no torch unless MODEL is a checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from edgekit.cli.ranges import fraction, whole
from edgekit.runtime.model import IMAGE_SUFFIXES

SHOW = 8  # detections listed per image in the text output


def add_parser(sub):
    p = sub.add_parser("predict", help="run a model on images: detections/classes as text, JSON or annotated images")
    p.add_argument("model", help="exported artifact (.onnx/.tflite/.xml/.param), checkpoint (.pt), or model YAML")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument("--backend", help="onnxruntime, litert, openvino, ncnn, mnn, executorch or torch (default: from the manifest)")
    p.add_argument("--threads", type=whole(1), help="interpreter CPU threads")
    p.add_argument("--delegate", help="LiteRT delegate (edgetpu, vx, or a .so path) / onnxruntime execution provider")
    p.add_argument("--device", help="OpenVINO device (CPU, GPU, NPU, AUTO) or ncnn vulkan")
    p.add_argument("--precision", help="OpenVINO f32/f16/bf16 or ncnn fp32/fp16 arithmetic")
    p.add_argument("--fallback", action="store_true", help="run on the CPU (with a warning) when the delegate/device is absent")
    p.add_argument("--spec", help="model YAML describing a model without an edgekit manifest")
    p.add_argument("--raw", action="store_true", help="print the output arrays' shapes and ranges, no decoding")
    p.add_argument("--imgsz", type=whole(1, 4096), nargs="+", help="with --raw: input size (N or H W) for a model whose input size is dynamic")
    p.add_argument("--conf", type=fraction(), default=0.25, help="minimum detection score (default 0.25)")
    p.add_argument("--iou", type=fraction(above_zero=True), default=0.45, help="NMS IoU threshold (default 0.45)")
    p.add_argument("--classes", type=whole(0), nargs="+", help="keep only these class ids")
    p.add_argument("--max-det", type=whole(1), default=300, help="at most this many detections per image")
    p.add_argument("--k", type=whole(1), default=5, help="classifiers: how many top classes to report")
    p.add_argument("--save", help="write annotated images to this folder")
    p.add_argument("--json", action="store_true", help="print one JSON object (model description + results)")
    p.set_defaults(func=run)


def expand_images(items: list[str]) -> list[Path]:
    """Image files from paths and folders (folders: their images, sorted); a clear error when none."""
    from edgekit.errors import EdgekitError

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise EdgekitError(f"{p} does not exist: give image files or folders of images")
    if not out:
        raise EdgekitError(f"no images in {' '.join(items)}: give .jpg/.png files or a folder holding them")
    return out


def _options(args, model) -> dict:
    if model.task == "detect":
        return {"conf": args.conf, "iou": args.iou, "classes": args.classes, "max_det": args.max_det}
    if model.task == "classify":
        return {"k": args.k}
    if args.imgsz:
        return {"size": tuple(args.imgsz) if len(args.imgsz) == 2 else args.imgsz[0]}
    return {}


def _summary(result) -> str:
    from edgekit.runtime.results import Classification, Detections

    if isinstance(result, Detections):
        if not len(result):
            return "no detections"
        shown = ", ".join(f"{lab} {s:.2f} [{', '.join(f'{v:.0f}' for v in b)}]"
                          for lab, s, b in list(zip(result.labels, result.scores, result.boxes))[:SHOW])
        more = f" ... and {len(result) - SHOW} more (--json lists all)" if len(result) > SHOW else ""
        return f"{len(result)} detections: {shown}{more}"
    if isinstance(result, Classification):
        top = ", ".join(f"{t['name']} {t['score']:.3f}" for t in result.to_dict()["top"])
        return f"{result.name} (top: {top})"
    return ", ".join(f"{k} {tuple(v.shape)} [{float(v.min()):.3g}, {float(v.max()):.3g}]" for k, v in result.items())


def _jsonable(result):
    if hasattr(result, "to_dict"):
        return result.to_dict()
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype), "values": v.ravel()[:64].tolist()} for k, v in result.items()}


def run(args) -> int:
    import json
    import time

    from edgekit.io import atomic_write_bytes
    from edgekit.runtime import load
    from edgekit.runtime.model import read_image

    images = expand_images(args.images)
    if args.save:  # annotated copies keep the images' names: never over (or among) the inputs
        from edgekit.io import check_output_not_input

        # copies keep the images' names: never in an image's own folder; beside it (contains_ok) is fine
        check_output_not_input(args.save, [*args.images, *images, args.model, args.spec], "--save", contains_ok=True)
        check_output_not_input(args.save, dict.fromkeys(p.parent for p in images), "--save", contains_ok=True,
                               inside_ok=True)
        from edgekit.io import writing

        with writing(args.save):  # a file in the way, a read-only disk: said before any image is run
            Path(args.save).mkdir(parents=True, exist_ok=True)
    model = load(args.model, backend=args.backend, threads=args.threads, delegate=args.delegate, device=args.device,
                 precision=args.precision, fallback=args.fallback, spec=args.spec, raw=args.raw)
    options = _options(args, model)
    records = []
    for path in images:
        img = read_image(path)
        t0 = time.perf_counter()
        result = model.predict(img, **options)
        ms = (time.perf_counter() - t0) * 1e3
        records.append({"image": str(path), "ms": round(ms, 3), "result": _jsonable(result)})
        if not args.json:
            print(f"{path}: {_summary(result)} ({ms:.1f} ms)")
        if args.save and model.task in ("detect", "classify"):
            import cv2

            from edgekit.runtime.draw import draw

            ok, buf = cv2.imencode(path.suffix if path.suffix.lower() in IMAGE_SUFFIXES else ".jpg", draw(img, result))
            atomic_write_bytes(Path(args.save) / path.name, buf.tobytes())
    info = model.describe()
    if args.json:
        print(json.dumps({"model": info, "results": records}, indent=1, default=str))
    else:
        for w in info.get("warnings", []):
            print(f"warning: {w}")
        if args.save:
            print(f"annotated images in {args.save}")
    return 0
