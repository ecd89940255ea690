"""Train one seed detector with stated settings and record its test-split accuracy as data.

    python benchmarks/train_seed.py --model mobilenetv2-yolo --data ../shared/data/fish4knowledge/data.yaml \
        --imgsz 320 --epochs 30

Writes ``benchmarks/results/train-<model>-<data>-<imgsz>.json`` with the keys other tools
read (model, data, imgsz, epochs, params, gflops, map50, map50_95 on the test split,
wall_s, host, device) plus per-class APs, the validation curve and the exact settings.
With ``--keep-weights``, a best.pt under 5 MB is copied to ``edgekit/assets/weights/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

from edgekit.cli.ranges import image_shape
from edgekit.input_size import size_text, stored_size

HERE = Path(__file__).resolve().parent
# trained weights ship inside the package, so `make demo` and the tests use them without ../shared
WEIGHTS = HERE.parent / "edgekit" / "assets" / "weights"


def host_string() -> str:
    from edgekit.boards.cpu import cpu_info

    cpu = cpu_info()
    return f"{cpu['model'] or platform.processor()} ({cpu['cores']} cores), {platform.system()} {platform.machine()}"


def lineage(init: str | None, model: str) -> list[dict]:
    """The chain of checkpoints a run started from (each one's own --init, read from the files).

    One row per ancestor: its model, image size, data, epochs, best epoch and val mAP50, and
    whether it is the same model (fine-tuned) or another (only the layers that fit were taken).
    """
    import torch

    rows, seen = [], set()
    if init and not str(init).endswith(".pt"):  # Darknet .weights / .conv.N: no checkpoint chain to follow
        return [{"path": str(init), "model": "darknet-weights", "same_model": False}]
    while init and Path(init).is_file() and init not in seen:
        if not str(init).endswith(".pt"):  # the chain began at Darknet weights
            rows.append({"path": str(init), "model": "darknet-weights", "same_model": False})
            break
        seen.add(init)
        ck = torch.load(init, map_location="cpu", weights_only=True)
        opts = ck.get("train_options", {})
        rows.append({"path": str(init), "model": ck.get("model"), "same_model": ck.get("model") == model,
                     "imgsz": ck.get("imgsz"), "data": (ck.get("data") or {}).get("source"),
                     "epochs": opts.get("epochs"), "best_epoch": ck.get("epoch", -1) + 1,
                     "val_map50": round((ck.get("metrics") or {}).get("val", {}).get("map50", 0.0), 4)})
        init = opts.get("weights")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--imgsz", type=image_shape, default=320, help="320, or WIDTHxHEIGHT (e.g. 320x192) for wide frames")
    p.add_argument("--anchors", choices=["kmeans", "default"], help="as `edgekit train --anchors` (default: k-means for "
                   "a new model, the --init checkpoint's own when it is the same model)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--width", type=float)
    p.add_argument("--device", default="cpu")
    p.add_argument("--init", help="start from this checkpoint's weights (recorded in the results)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up epochs")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    p.add_argument("--bf16", action="store_true", help="forward + loss under bf16 autocast (as `edgekit train --bf16`)")
    p.add_argument("--freeze", help="N Darknet cfg layers or 'backbone' kept as loaded (as `edgekit train --freeze`)")
    p.add_argument("--runs", default="runs/bench", help="where the training runs go")
    p.add_argument("--keep-weights", action="store_true", help="copy best.pt (< 5 MB) to edgekit/assets/weights/")
    p.add_argument("--resume", action="store_true", help="continue this tag's interrupted run instead of restarting it")
    p.add_argument("--qat", action="store_true", help="conv inputs rounded to 256 levels in training (as `edgekit train --qat`)")
    p.add_argument("--mosaic", type=float, default=0.0, help="mosaic probability (as `edgekit train --mosaic`)")
    p.add_argument("--suffix", default="", help="appended to the tag <model>-<data>-<imgsz> (run folder, result file, "
                                                "kept weights): a second recipe for one model keeps the first's files")
    a = p.parse_args(argv)
    a.imgsz = stored_size(a.imgsz)  # 320, or [h, w]

    import torch

    from edgekit.data import load_dataset
    from edgekit.models.complexity import count_macs, count_params
    from edgekit.train import TrainOptions, train
    from edgekit.train.augment import AugmentOptions
    from edgekit.train.freeze import parse_freeze
    from edgekit.models.checkpoint import load_checkpoint
    from edgekit.validate import validate

    data_name = Path(a.data).resolve().parent.name if Path(a.data).suffix in (".yaml", ".yml") else Path(a.data).stem
    kwargs = {"width": a.width} if a.width else {}
    family = a.model
    if a.model.lower().endswith(".cfg"):  # a Darknet cfg: the registry's darknet family with its text (as `edgekit train`)
        kwargs.update(cfg=Path(a.model).read_text(encoding="utf-8"), cfg_name=Path(a.model).name)
        family, a.model = "darknet", Path(a.model).stem
    tag = f"{a.model}-{data_name}-{size_text(a.imgsz)}{a.suffix}"
    out = Path(a.runs) / tag
    if out.exists() and not a.resume:
        shutil.rmtree(out)
    t0 = time.time()
    summary = train(TrainOptions(model=family, data=a.data, imgsz=a.imgsz, epochs=a.epochs, batch=a.batch, lr=a.lr,
                                 out=str(out), device=a.device, workers=a.workers, model_kwargs=kwargs,
                                 weights=a.init, warmup_epochs=a.warmup, threads=a.threads, bf16=a.bf16,
                                 freeze=parse_freeze(a.freeze) if a.freeze else None,
                                 augment=AugmentOptions(mosaic=a.mosaic), qat=a.qat, anchors=a.anchors,
                                 resume=a.resume and (out / "weights" / "last.pt").is_file()))
    wall = time.time() - t0
    model, ckpt = load_checkpoint(summary["best"])
    test = validate(model, load_dataset(a.data).split("test"), ckpt["names"], a.imgsz)
    result = {
        "model": a.model, "data": data_name, "imgsz": a.imgsz, "epochs": a.epochs,
        "params": count_params(model), "gflops": round(2 * count_macs(model, a.imgsz) / 1e9, 4),
        "map50": round(test["map50"], 4), "map50_95": round(test["map50_95"], 4),
        "wall_s": round(wall, 1), "host": host_string(), "device": a.device,
        # the epochs' own seconds (training + per-epoch validation) from the run's results.json, whole run: also right
        # when --resume finished an interrupted run, where wall_s covers only this invocation
        "train_epochs_s": round(sum(r.get("epoch_s", 0.0) for r in json.loads((out / "results.json").read_text())), 1),
        "per_class": test["per_class"], "test_images": test["images"], "ms_per_image": test["ms_per_image"],
        "best_epoch": ckpt["epoch"] + 1, "val_curve": json.loads((out / "results.json").read_text()),
        "init_lineage": lineage(a.init, a.model),
        "settings": {"batch": a.batch, "lr": a.lr, "init": a.init, "warmup_epochs": a.warmup, "width": a.width, "anchors": ckpt["anchors"], "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "bf16": a.bf16, "freeze": a.freeze, "mosaic": a.mosaic, "qat": a.qat, "anchors_option": a.anchors, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])},
    }
    from edgekit import __version__
    from edgekit.io import atomic_write_text

    result["edgekit"] = __version__
    # epochs this model has trained: this run plus, for each same-model checkpoint it continued
    # from, the epochs that checkpoint holds (its best epoch, not its run's plan); a
    # different-model ancestor only lent the layers that fit (see init_lineage)
    total = a.epochs
    for row in result["init_lineage"]:
        if not row["same_model"]:
            break
        total += row["best_epoch"]
    result["epochs_total"] = total
    dest = HERE / "results" / f"train-{tag}.json"
    atomic_write_text(dest, json.dumps(result, indent=1))
    print(f"{tag}: test mAP50 {result['map50']:.4f} mAP50-95 {result['map50_95']:.4f} in {wall / 60:.1f} min -> {dest}")
    if a.keep_weights and Path(summary["best"]).stat().st_size < 5 * 2**20:
        shutil.copy(summary["best"], WEIGHTS / f"{tag}.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
