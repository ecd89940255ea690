"""``edgekit prune``: structured channel pruning with fine-tuning, and the before/after report."""

from __future__ import annotations

from edgekit.cli.ranges import fraction, image_size, number, whole


def add_parser(sub):
    p = sub.add_parser("prune", help="remove whole channels (DepGraph), fine-tune, measure the exported model")
    p.add_argument("--weights", required=True, help="detector checkpoint (.pt) written by `edgekit train`, or a Darknet "
                   ".cfg (pruned without fine-tuning; written back as .cfg + .weights)")
    p.add_argument("--darknet-weights", help="with a .cfg: its .weights file")
    p.add_argument("--data", required=True, help="the data.yaml it was trained on (fine-tuning, mAP, calibration)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--ratio", type=fraction(above_zero=True),
                        help="fraction of every prunable layer's channels to remove, e.g. 0.3")
    target.add_argument("--target-macs", type=number(1.0), help="prune until the model has at most this many MACs")
    target.add_argument("--target-latency", type=number(0.0, above=True), metavar="MS",
                        help="prune until the exported ONNX model infers in MS milliseconds on this host "
                             "(with --board: until the estimate for that board says MS)")
    p.add_argument("--board", help="with --target-latency: a board profile (`edgekit boards`) whose latency "
                   "`edgekit estimate` predicts, instead of measuring on this host")
    p.add_argument("--board-runtime", choices=("ncnn", "litert", "onnxruntime", "openvino"),
                   help="with --board: the runtime estimated (default ncnn)")
    p.add_argument("--board-precision", choices=("fp32", "fp16", "int8"), help="with --board: default fp32")
    p.add_argument("--importance", choices=["l1", "l2", "taylor", "bn-scale"], default="l2",
                   help="channel ranking: weight norms (l1, l2; default l2), |weight x gradient| (taylor) or "
                        "batch-norm scales (bn-scale; refused for models without batch norm)")
    p.add_argument("--steps", type=whole(1, 50), default=3, help="pruning steps, each followed by fine-tuning (default 3)")
    p.add_argument("--finetune-epochs", type=whole(0), default=1, help="epochs of fine-tuning after each step (default 1)")
    p.add_argument("--final-epochs", type=whole(0), help="epochs after the last step (default: --finetune-epochs)")
    p.add_argument("--round-to", type=whole(1, 256), default=8, help="keep channel counts multiples of this (default 8)")
    p.add_argument("--ignore", nargs="+", default=[], metavar="NAME",
                   help="layers (module names, shell wildcards) that keep their channels; heads always do")
    p.add_argument("--imgsz", type=image_size, help="input size (default: the checkpoint's)")
    p.add_argument("--batch", type=whole(1), default=16)
    p.add_argument("--lr", type=number(0.0, 1.0, above=True), default=0.001, help="fine-tuning peak learning rate")
    p.add_argument("--workers", type=whole(0), default=1)
    p.add_argument("--threads", type=whole(1), help="torch and benchmark threads (default: the libraries' choice)")
    p.add_argument("--bf16", action="store_true", help="fine-tune under bfloat16 autocast (as `edgekit train --bf16`): "
                   "faster steps on a CPU with AVX-512 BF16 or AMX")
    p.add_argument("--no-measure", action="store_true",
                   help="skip the before/after test mAP and the export + latency of onnx and tflite-int8")
    p.add_argument("--out", help="run folder (default runs/prune/<model>); an interrupted run resumes from it")
    p.add_argument("--json", action="store_true", help="print the report as one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from edgekit.prune import PruneOptions, prune

    opts = PruneOptions(args.weights, args.data, ratio=args.ratio,
                        target_macs=int(args.target_macs) if args.target_macs else None,
                        target_latency_ms=args.target_latency, board=args.board, board_runtime=args.board_runtime,
                        board_precision=args.board_precision, importance=args.importance, steps=args.steps,
                        finetune_epochs=args.finetune_epochs, final_epochs=args.final_epochs, round_to=args.round_to,
                        ignore=list(args.ignore), out=args.out, darknet_weights=args.darknet_weights, imgsz=args.imgsz, batch=args.batch, lr=args.lr,
                        workers=args.workers, threads=args.threads, bf16=args.bf16, measure=not args.no_measure,
                        progress=not args.json)
    r = prune(opts)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    b, a = r["before"], r["after"]
    print(f"{r['model']}: {b['macs']:,} -> {a['macs']:,} MACs ({a['macs'] / b['macs'] - 1:+.1%}), "
          f"{b['params']:,} -> {a['params']:,} params"
          + (f", mAP50 {b['map50']} -> {a['map50']} ({r['map_split']})" if r.get("map_split") else ""))
    for t, v in (b.get("latency_ms") or {}).items():
        w = a["latency_ms"].get(t)
        print(f"  {t}: {v} -> {w} ms" + (f" ({w / v - 1:+.1%})" if v and w else ""))
    print(f"pruned model: {r['weights']}" + (f" + {r['darknet_weights']}" if r.get("darknet_weights") else ""))
    print(f"report: {r['report_html']}")
    return 0
