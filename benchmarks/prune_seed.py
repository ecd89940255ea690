"""Prune a trained seed detector, fine-tune it, and record before/after figures as data.

    python benchmarks/prune_seed.py --weights edgekit/assets/weights/mobilenetv2_050-yolo-p3-fish4knowledge-320.pt \
        --data ../shared/data/fish4knowledge/data.yaml --target-macs-fraction 0.62 --steps 3 \
        --finetune-epochs 2 --final-epochs 6 --threads 2

Runs :func:`edgekit.prune.prune` (the same function as ``edgekit prune``) into
``runs/prune/<model>`` (an interrupted run resumes there: rerun the same command) and writes
``benchmarks/results/prune-<model>.json`` (keys: model, ratio, before/after with params, macs,
map50, map50_95, latency_ms {onnx, tflite-int8}; steps [{macs, map50}]; the paired bootstrap
interval of the mAP@0.5 change; host and the command) and ``prune-<model>.html`` beside it.
mAP before/after is on the test split; the steps' mAP is the val split the fine-tuning selects on.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _is_file(text: str) -> bool:
    """An artifact path that exists (a report keeps a rejection's reason where the path would be)."""
    try:
        return Path(text).is_file()
    except OSError:  # a reason longer than a file name can be
        return False


def remeasure(r: dict, args) -> dict:
    """The before/after latency of the run's artifacts measured again (interleaved rounds), load average recorded.

    An artifact the run could not time (a report from before the latency exports opened the mAP
    gate, where the parent's INT8 export was rejected) is exported again first, its gate result kept.
    """
    import os

    from edgekit.prune import PruneOptions
    from edgekit.prune.measure import _images, artifact_latency, export_targets, gate_verdicts

    # artifact_latency reads only threads, bench frames and targets; the ratio just satisfies the options check
    opts = PruneOptions(args.weights, args.data, ratio=0.5, threads=args.threads)
    for key, ckpt in (("before", r["source"]), ("after", r["weights"])):
        gates = r[key].get("artifacts_gate") or {}
        folder = Path(r["out"]) / "export" / key
        if (folder / "export_report.json").is_file():  # the latest export's verdicts (with their intervals) win
            gates = {**gates, **gate_verdicts(json.loads((folder / "export_report.json").read_text())["targets"])}
        redo = [t for t, p in r[key]["artifacts"].items() if not _is_file(p) or t not in gates]
        if redo:
            new = export_targets(Path(ckpt), redo, opts, folder, lambda s: print(s, file=sys.stderr),
                                 data=args.data, gates=gates)
            r[key]["artifacts"].update({t: str(p) for t, p in new.items()})
        r[key]["artifacts_gate"] = gates
    arts = {k: {t: Path(p) for t, p in r[k]["artifacts"].items()} for k in ("before", "after")}
    load0 = os.getloadavg()
    lat = artifact_latency(arts, _images(args.data, r.get("map_split", "test")), opts,
                           lambda s: print(s, file=sys.stderr), rounds=args.latency_rounds)
    upd = {k: {**r[k], **lat[k]} for k in ("before", "after")}
    upd["latency_setup"] = {**r["latency_setup"], "rounds": args.latency_rounds, "threads": args.threads,
                            "remeasured": True, "load_average_before_after": [round(load0[0], 2),
                                                                              round(os.getloadavg()[0], 2)]}
    return upd


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--ratio", type=float)
    target.add_argument("--target-macs-fraction", type=float, help="MAC budget as a fraction of the model's")
    p.add_argument("--importance", default="l2")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--final-epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="fine-tune under bf16 autocast (as `edgekit prune --bf16`)")
    p.add_argument("--ignore", nargs="+", default=[], metavar="NAME",
                   help="layers (module names, shell wildcards) that keep their channels, as `edgekit prune --ignore`")
    p.add_argument("--out", help="default runs/prune/<model>")
    p.add_argument("--reuse-report", action="store_true",
                   help="rewrite the results from the finished run's prune_report.json instead of pruning/measuring again")
    p.add_argument("--remeasure-latency", action="store_true",
                   help="with --reuse-report: benchmark the run's exported artifacts again (at --threads, "
                        "--latency-rounds interleaved rounds), e.g. on a quieter host, and record the load average")
    p.add_argument("--latency-rounds", type=int, default=5)
    args = p.parse_args(argv)

    from edgekit.models.checkpoint import read_checkpoint
    from edgekit.models.complexity import count_macs
    from edgekit.models.checkpoint import model_from_checkpoint
    from edgekit.prune import PruneOptions, prune
    from edgekit.runtime.bench import host_info

    ck = read_checkpoint(args.weights)
    target_macs = None
    if args.target_macs_fraction:
        target_macs = int(count_macs(model_from_checkpoint(ck), int(ck["imgsz"])) * args.target_macs_fraction)
    out = Path(args.out or Path("runs") / "prune" / ck["model"])
    t0 = time.time()
    command = "python benchmarks/prune_seed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.commands.txt", "a") as f:  # a resumed run lists every invocation
        f.write(command + "\n")
    if args.reuse_report:
        r = json.loads((out / "prune_report.json").read_text())
        if args.remeasure_latency:
            from edgekit.prune.report import write_report

            r.update(remeasure(r, args))
            r.update(write_report(r, out))  # the run's own report (and its HTML) shows the new figures too
    else:
        r = prune(PruneOptions(args.weights, args.data, ratio=args.ratio, target_macs=target_macs,
                               importance=args.importance, steps=args.steps, finetune_epochs=args.finetune_epochs,
                               final_epochs=args.final_epochs, lr=args.lr, threads=args.threads, bf16=args.bf16, ignore=args.ignore,
                               out=str(out)))
    for s in r["steps"][1:]:  # what each step's fine-tuning really ran with (a resumed run may have changed it)
        if s.get("weights", "").endswith("best.pt") and Path(s["weights"]).exists():
            o = read_checkpoint(s["weights"]).get("train_options", {})
            s["finetune"] = {k: o.get(k) for k in ("epochs", "lr", "batch", "threads", "warmup_epochs", "bf16")}
    r.setdefault("ignore", args.ignore)
    b, a = r["before"], r["after"]
    r.update({"macs_change": round(a["macs"] / b["macs"] - 1, 4), "params_change": round(a["params"] / b["params"] - 1, 4),
              "latency_change": {t: (round(a["latency_ms"][t] / b["latency_ms"][t] - 1, 4)
                                     if a["latency_ms"].get(t) and b["latency_ms"].get(t) else None)
                                 for t in b["latency_ms"]},
              "wall_s_this_invocation": round(time.time() - t0, 1), "host": host_info(),
              "platform": f"{platform.system()} {platform.machine()}",
              "command": command,
              "invocations": (out.parent / f"{out.name}.commands.txt").read_text().splitlines()})
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"prune-{r['model']}.json").write_text(json.dumps(r, indent=2) + "\n")
    shutil.copyfile(r["report_html"], results / f"prune-{r['model']}.html")
    print(json.dumps({k: r[k] for k in ("model", "ratio", "before", "after", "map50_delta", "map50_delta_ci95",
                                        "macs_change", "latency_change")}, indent=2))
    return 0

if __name__ == "__main__":
    sys.exit(main())
