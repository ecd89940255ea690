"""Cut a detection dataset's boxes into thumbnails, train a classifier on them, record test accuracy as data.

    python benchmarks/train_classifier.py --data ../shared/data/fish4knowledge/data.yaml \
        --model mobilenetv2-cls --width 0.5 --imgsz 64 --epochs 10

Runs ``edgekit data crops`` (pad 0.1, min size 4 px) into ``runs/bench/crops-<data>``, trains
with ``edgekit train --task classify`` settings, scores ``best.pt`` on the crops' test split
and writes ``benchmarks/results/train-<model>-<data>-<imgsz>.json`` with the keys other tools
read (model, data, imgsz, epochs, params, gflops, top1, top5, wall_s, host, device) plus
per-class accuracy, the confusion matrix, the crop counts, the validation curve and the
exact settings. ``wall_s`` is the training time (epochs and their validation); cutting the
crops and the final test pass are recorded apart.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="detection data.yaml whose boxes become the thumbnails")
    p.add_argument("--model", default="mobilenetv2-cls")
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--imgsz", type=int, default=64)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--balanced", action="store_true", help="class-balanced sampling")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--runs", default="runs/bench", help="where the crops and the training run go")
    a = p.parse_args(argv)

    import shutil

    import torch

    from edgekit import __version__
    from edgekit.data.crops import make_crops, read_crops_report
    from edgekit.data.folders import load_image_folder
    from edgekit.io import atomic_write_text
    from edgekit.models.complexity import count_flops, count_params
    from edgekit.models.checkpoint import load_checkpoint
    from edgekit.train.classify import ClassifyOptions, train_classifier
    from edgekit.validate_classify import validate_classifier
    from train_seed import host_string  # same host description as the detector results

    if a.threads:
        torch.set_num_threads(a.threads)
    data_name = Path(a.data).resolve().parent.name
    tag = f"{a.model}-{data_name}-{a.imgsz}"
    crops_dir, out = Path(a.runs) / f"crops-{data_name}", Path(a.runs) / tag
    t0 = time.time()
    make_crops(a.data, crops_dir, pad=0.1, min_size=4, overwrite=True)
    crops_s = time.time() - t0
    if out.exists():
        shutil.rmtree(out)
    t0 = time.time()
    summary = train_classifier(ClassifyOptions(model=a.model, data=str(crops_dir), imgsz=a.imgsz, epochs=a.epochs,
                                               batch=a.batch, lr=a.lr, balanced=a.balanced, out=str(out),
                                               device=a.device, workers=a.workers, model_kwargs={"width": a.width}))
    wall = time.time() - t0
    model, ckpt = load_checkpoint(summary["best"])
    ds = load_image_folder(crops_dir)
    t0 = time.time()
    test = validate_classifier(model, ds.split("test"), ckpt["names"], a.imgsz, device=a.device, unsure=0.5)
    result = {
        "model": a.model, "data": data_name, "imgsz": a.imgsz, "epochs": a.epochs,
        "params": count_params(model), "gflops": round(count_flops(model, a.imgsz) / 1e9, 4),
        "top1": test["top1"], "top5": test["top5"], "wall_s": round(wall, 1), "host": host_string(), "device": a.device,
        "width": a.width, "task": "classify", "split": "test", "test_images": test["images"],
        "per_class": test["per_class"], "confusion": test["confusion"], "unsure_0.5": test["unsure"],
        "ms_per_image": test["ms_per_image"], "test_s": round(time.time() - t0, 1), "crops_s": round(crops_s, 1),
        "crops": {s: r["per_class"] for s, r in read_crops_report(crops_dir)["splits"].items()},
        "best_epoch": ckpt["epoch"] + 1, "val_curve": json.loads((out / "results.json").read_text()),
        "settings": {"batch": a.batch, "lr": a.lr, "balanced": a.balanced, "pad": 0.1, "min_size": 4,
                     "label_smoothing": 0.1, "torch": torch.__version__, "threads": torch.get_num_threads(),
                     "workers": a.workers, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])},
        "edgekit": __version__,
    }
    dest = HERE / "results" / f"train-{tag}.json"
    atomic_write_text(dest, json.dumps(result, indent=1))
    print(f"{tag}: test top1 {result['top1']:.4f} top5 {result['top5']:.4f} ({test['images']} thumbnails) "
          f"in {wall / 60:.1f} min -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
