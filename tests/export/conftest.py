"""Export test fixtures: checkpoints of registered models at tiny sizes (random weights)."""

from __future__ import annotations

import pytest


def make_checkpoint(path, model: str, imgsz: int, num_classes: int = 2, seed: int = 0):
    """Save an edgekit checkpoint of a freshly built (random) ``model``: what export reads."""
    import torch

    from edgekit.models import create_model, model_task
    from edgekit.train.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    task = model_task(model)
    kwargs = {"imgsz": imgsz} if task == "detect" else {}
    from export_helpers import realistic_init_

    # torch's default init leaves MobileNet outputs ~1e-13: parity would pass vacuously
    m = realistic_init_(create_model(model, num_classes=num_classes, **kwargs), seed)
    ckpt = {"model": model, "task": task, "model_kwargs": kwargs, "names": [f"c{k}" for k in range(num_classes)],
            "imgsz": imgsz, "state_dict": m.state_dict(), "epoch": 0, "metrics": {}}
    if task == "detect":
        ckpt.update({"anchors": None, "head_spec": m.head_spec})  # None: the family's default anchors
    else:
        ckpt.update({"head_spec": getattr(m, "head_spec", {"type": "classify", "num_classes": num_classes})})
    save_checkpoint(path, ckpt)
    return path


@pytest.fixture()
def tiny_checkpoint(tmp_path):
    """Factory: ``tiny_checkpoint("yolo-lite", 64)`` -> path of a random-weight checkpoint."""
    def make(model: str, imgsz: int = 64, num_classes: int = 2):
        return make_checkpoint(tmp_path / f"{model}.pt", model, imgsz, num_classes)
    return make
