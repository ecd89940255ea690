"""``edgekit train``: train a registered detector on a dataset."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("train", help="train a detector (see `edgekit models`) on a data.yaml")
    p.add_argument("--model", required=True, help="registered model name, e.g. mobilenetv2-yolo")
    p.add_argument("--data", required=True, help="data.yaml (yolo/coco/voc), COCO .json or VOC folder")
    p.add_argument("--imgsz", type=int, default=320, help="square input size in pixels (default 320)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--out", help="run folder (default runs/train/<model>[-N])")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (or the newest run of --model)")
    p.add_argument("--workers", type=int, default=2, help="data-loader processes")
    p.add_argument("--lr", type=float, default=0.002, help="peak AdamW learning rate")
    p.add_argument("--width", type=float, help="width multiplier, for families that have one")
    p.add_argument("--anchors", choices=["kmeans", "default"], default="kmeans",
                   help="k-means on the training boxes (default) or the family's defaults")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from edgekit.train import TrainOptions, train

    kwargs = {"width": args.width} if args.width else {}
    opts = TrainOptions(model=args.model, data=args.data, imgsz=args.imgsz, epochs=args.epochs, batch=args.batch,
                        out=args.out, device=args.device, resume=args.resume, workers=args.workers, lr=args.lr,
                        anchors=args.anchors, model_kwargs=kwargs, seed=args.seed, progress=not args.json)
    summary = train(opts)
    if not summary:  # a non-zero rank under torchrun: rank 0 reports
        return 0
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"best weights: {summary['best']}")
    return 0
