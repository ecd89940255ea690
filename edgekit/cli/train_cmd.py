"""``edgekit train``: train a registered detector on a dataset, or a classifier on image folders."""

from __future__ import annotations

from edgekit.cli.ranges import image_shape, number, whole

DEFAULTS = {"detect": {"imgsz": 320, "batch": 16}, "classify": {"imgsz": 64, "batch": 64}}


def add_parser(sub):
    p = sub.add_parser("train", help="train a detector or a classifier (see `edgekit models`)")
    p.add_argument("--task", choices=["detect", "classify"], default="detect",
                   help="detect (default): --data is a data.yaml; classify: --data is an image-folder root "
                        "(root/train/<class>/*.jpg, e.g. from `edgekit data crops`)")
    p.add_argument("--model", required=True, help="registered model name, e.g. mobilenetv2-yolo or mobilenetv2-cls, or a "
                   "Darknet .cfg (its heads fitted to the data's classes; the cfg's text is kept in the checkpoint)")
    p.add_argument("--data", required=True, help="data.yaml (yolo/coco/voc), COCO .json or VOC folder; "
                                                 "with --task classify an image-folder root")
    p.add_argument("--imgsz", type=image_shape, help="input size in pixels: 320 (square; the default, 64 with --task "
                   "classify) or WIDTHxHEIGHT for wide frames, e.g. 384x224 for 16:9 (detect only)")
    p.add_argument("--epochs", type=whole(1), default=50)
    p.add_argument("--batch", type=whole(1), help="batch size (default 16; 64 with --task classify)")
    p.add_argument("--out", help="run folder (default runs/train/<model>[-N])")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (or the newest run of --model) as it was "
                   "trained: an option that contradicts its checkpoint (--model, --imgsz, --lr, other data...) is refused; "
                   "--epochs may grow it; --device/--workers/--threads are this machine's")
    p.add_argument("--weights", help="start from a checkpoint: the same model fine-tunes (its anchors kept unless --anchors); another "
                   "model sharing layers (e.g. the backbone) takes the tensors that fit (detect only); with a .cfg --model, "
                   "Darknet .weights or a `darknet partial` backbone (e.g. yolov4-tiny.conv.29)")
    p.add_argument("--workers", type=whole(0), default=1, help="data-loader processes (default 1)")
    p.add_argument("--threads", type=whole(1), help="torch threads (default: torch's choice); keep threads + workers <= cores")
    p.add_argument("--bf16", action="store_true", help="forward pass and loss under bfloat16 autocast: faster steps on a "
                   "CPU with AVX-512 BF16 or AMX (slower without them); validation and checkpoints stay fp32")
    p.add_argument("--lr", type=number(0.0, 1.0, above=True), default=0.002, help="peak AdamW learning rate")
    p.add_argument("--freeze", metavar="N|backbone", help="train only what follows a pretrained start: the first N "
                   "layers of a Darknet .cfg (e.g. the N of a .conv.N file) or a registry model's backbone stay as loaded "
                   "(no gradient, batch-norm statistics kept); faster steps")
    p.add_argument("--width", type=number(0.0, 4.0, above=True), help="width multiplier, for families that have one")
    p.add_argument("--anchors", choices=["kmeans", "default"],
                   help="k-means on the training boxes (default for a new model) or the family's defaults; with "
                        "--weights of the same model its anchors are kept unless this is given (detect only)")
    p.add_argument("--mosaic", type=number(0.0, 1.0), help="probability of a mosaic (a window of four training images "
                   "tiled 2 x 2, at the training scale; detect only; default 0: off)")
    p.add_argument("--qat", action="store_true", help="quantization-aware fine-tuning: every conv's input rounded to 256 "
                   "levels in training steps, as an INT8 export rounds it; for a few epochs from a trained --weights "
                   "whose INT8 export the gate rejects (detect only; checkpoints and validation stay float)")
    p.add_argument("--balanced", action="store_true", help="sample every class equally often (classify only)")
    p.add_argument("--seed", type=whole(0), default=0)
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")
    p.set_defaults(func=run)


def cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (x86 AVX-512 BF16 or AMX, Arm BF16): what ``--bf16`` pays off on."""
    from edgekit.boards.cpu import cpu_info

    return bool({"avx512-bf16", "amx-bf16", "bf16"} & set(cpu_info().get("features", [])))


def run(args) -> int:
    import json
    import sys

    from edgekit.errors import EdgekitError
    from edgekit.models import list_models, model_task
    from edgekit.train import ClassifyOptions, TrainOptions, train
    from edgekit.train.augment import AugmentOptions
    from edgekit.train.freeze import parse_freeze

    cfg_kwargs = {}
    if args.model.lower().endswith(".cfg"):  # a Darknet file: the registry's "darknet" family with its text
        from pathlib import Path

        from edgekit.models.darknet_cfg import read_cfg

        read_cfg(args.model)  # one-line errors for a missing or malformed file, before any data is read
        cfg_kwargs = {"cfg": Path(args.model).read_text(encoding="utf-8"), "cfg_name": Path(args.model).name}
        args.out = args.out or _cfg_run(Path(args.model).stem, args.resume)
        args.model = "darknet"
    elif args.weights and args.task == "detect":
        from edgekit.models.darknet_model import is_darknet_weights

        if is_darknet_weights(args.weights):
            raise EdgekitError(f"--weights {args.weights} is Darknet weights: give the .cfg they belong to as --model")
    if model_task(args.model) != args.task:
        others = ", ".join(list_models(task=args.task))
        raise EdgekitError(f"model '{args.model}' is a {model_task(args.model)} model: pass --task "
                           f"{model_task(args.model)}, or pick a {args.task} model ({others})")
    kwargs = {**({"width": args.width} if args.width else {}), **cfg_kwargs}
    imgsz = args.imgsz or DEFAULTS[args.task]["imgsz"]
    if args.task == "classify" and isinstance(imgsz, tuple):
        from edgekit.input_size import size_text

        raise EdgekitError(f"--imgsz {size_text(imgsz)}: classifiers take a square input: give one size, e.g. 64")
    batch = args.batch or DEFAULTS[args.task]["batch"]
    common = dict(model=args.model, data=args.data, imgsz=imgsz, epochs=args.epochs, batch=batch, out=args.out,
                  device=args.device, resume=args.resume, workers=args.workers, lr=args.lr, model_kwargs=kwargs,
                  seed=args.seed, threads=args.threads, bf16=args.bf16, progress=not args.json,
                  freeze=parse_freeze(args.freeze) if args.freeze else None)
    if args.bf16 and args.device == "cpu" and not cpu_has_bf16():
        print("note: this CPU has no native bf16 (avx512_bf16 or amx_bf16): --bf16 steps will be emulated and slower",
              file=sys.stderr)
    if args.task == "classify":
        if args.weights:  # said to be detect-only in --help; refusing beats silently ignoring it
            raise EdgekitError("--weights initialises detectors only: drop it, or train with --task detect")
        if args.qat:
            raise EdgekitError("--qat is built for detectors: drop it, or train with --task detect")
        if args.mosaic:
            raise EdgekitError("--mosaic mixes detection images and their boxes: drop it, or train with --task detect")
        opts = ClassifyOptions(**common, balanced=args.balanced)
    else:
        extra = {"augment": AugmentOptions(mosaic=args.mosaic)} if args.mosaic else {}
        if args.qat:
            extra["qat"] = True
        opts = TrainOptions(**common, anchors=args.anchors, weights=args.weights, **extra)
    summary = train(opts)  # one engine for both tasks; the options' type picks the task
    if not summary:  # a non-zero rank under torchrun: rank 0 reports
        return 0
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"best weights: {summary['best']}")
    return 0


def _cfg_run(stem: str, resume: bool) -> str:
    """runs/train/<cfg stem>[-N] (with ``resume``: the newest such run): a cfg's runs are named after the
    file, not after the "darknet" family."""
    import os
    from pathlib import Path

    from edgekit.errors import EdgekitError
    from edgekit.train.runs import next_run_dir

    if resume:
        runs = sorted(Path("runs/train").glob(f"{stem}*/weights/last.pt"), key=os.path.getmtime)
        if not runs:
            raise EdgekitError(f"no run of {stem} to resume under runs/train: give --out")
        return str(runs[-1].parents[1])
    return str(next_run_dir(Path("runs") / "train" / stem))
