"""Can a seed detector memorise 8 sample images? A check of the whole train -> decode -> NMS -> mAP chain.

    python benchmarks/overfit_check.py yolo-lite 256
    python benchmarks/overfit_check.py mobilenetv2_050-yolo 256

Trains on 8 images of the embedded sample (no augmentation, k-means anchors) for 300
iterations and prints the mAP50 *on those same 8 images* every 50 iterations. A correct
pipeline climbs towards 1.0; a mismatch between the loss's box formula and the runtime
decoder, or between training and validation preprocessing, stays near 0.
"""

import sys
import time

import torch

from edgekit.data import load_dataset, sample_data_yaml
from edgekit.models import create_model
from edgekit.train.loader import DetectionTrainSet, collate
from edgekit.train.loss import YoloLoss
from edgekit.train.trainer import fit_anchors
from edgekit.validate import validate


def main(name: str, imgsz: int, iters: int = 300) -> None:
    torch.manual_seed(0)
    ds = load_dataset(sample_data_yaml())
    recs = [r for r in ds.split("train") if len(r.classes)][:8]
    n = sum(len(g) for g in create_model(name, num_classes=ds.num_classes, imgsz=imgsz).head_spec["anchors"])
    model = create_model(name, num_classes=ds.num_classes, imgsz=imgsz, anchors=fit_anchors(recs, imgsz, n))
    if model.head_spec["type"] == "yolo":
        model.head_spec["scale_x_y"] = [2.0] * len(model.head_spec["strides"])
    loss_fn = YoloLoss(model.head_spec)
    x, t = collate([DetectionTrainSet(recs, imgsz)[i] for i in range(len(recs))])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    t0 = time.time()
    for it in range(iters):
        model.train()
        loss, parts = loss_fn(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 50 == 49:
            r = validate(model, recs, ds.names, imgsz)
            print(f"iter {it + 1:4d}  box {parts['box']:.4f} obj {parts['obj']:.4f} cls {parts['cls']:.4f}  "
                  f"mAP50 on the same 8 images {r['map50']:.3f}  {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 256)
