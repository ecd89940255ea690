"""Helpers shared by the tests (import as ``tests.export.export_helpers``: tests is a package)."""

from __future__ import annotations

import torch

# the fast tier's shared tiny detector (``fast_exports`` in tests/conftest.py): 7 conv layers convert in seconds
TINY_MODEL, TINY_IMGSZ, TINY_CALIB = "yolo-lite", 64, 16


def realistic_init_(model, seed: int = 0):
    """LeCun-normal conv/linear weights, small biases, random BN affine and running stats."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.weight[0].numel() ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model.eval()


def make_checkpoint(path, model: str, imgsz: int, num_classes: int = 2, seed: int = 0, names=None):
    """Save an edgekit checkpoint of a freshly built (random) ``model``: what export reads.

    ``names`` (a list) sets the class names and count (default ``c0``, ``c1``, ...): give a
    dataset's names where a command checks that the model's classes are the data's.
    """
    import torch

    from edgekit.models import create_model, model_task
    from edgekit.models.checkpoint import save_checkpoint

    if names is not None:
        names, num_classes = list(names), len(names)
    torch.manual_seed(seed)
    task = model_task(model)
    kwargs = {"imgsz": imgsz} if task == "detect" else {}
    # torch's default init leaves MobileNet outputs ~1e-13: parity would pass vacuously
    m = realistic_init_(create_model(model, num_classes=num_classes, **kwargs), seed)
    ckpt = {"model": model, "task": task, "model_kwargs": kwargs, "names": names or [f"c{k}" for k in range(num_classes)],
            "imgsz": imgsz, "state_dict": m.state_dict(), "epoch": 0, "metrics": {}}
    if task == "detect":
        ckpt.update({"anchors": None, "head_spec": m.head_spec})  # None: the family's default anchors
    else:
        ckpt.update({"head_spec": getattr(m, "head_spec", {"type": "classify", "num_classes": num_classes})})
    save_checkpoint(path, ckpt)
    return path


def export_all(source, out, **options) -> dict:
    """``{target: artifact path}`` of ``source`` exported to every target installed here; any failure fails."""
    from edgekit.export import export
    from edgekit.export.targets import TARGETS

    rep = export(source, [t for t in TARGETS if TARGETS[t].available()], out=out, **options)
    failed = {r.target: r.reason for r in rep.results if not r.ok}
    assert not failed, failed
    return {r.target: out / r.file for r in rep.results}


def small_test_split(sample_yaml, out, n: int):
    """``out/data.yaml``: the sample's train split with a test split of its first ``n`` images (labels copied),
    so each gated try of an ``auto`` search stays cheap."""
    import shutil
    from pathlib import Path

    out, root = Path(out), sample_yaml.parent
    for sub in ("images", "labels"):
        (out / "test" / sub).mkdir(parents=True)
    for img in sorted((root / "test" / "images").iterdir())[:n]:
        shutil.copy(img, out / "test" / "images" / img.name)
        label = root / "test" / "labels" / (img.stem + ".txt")
        if label.exists():
            shutil.copy(label, out / "test" / "labels" / label.name)
    names = [ln for ln in sample_yaml.read_text().splitlines() if ln.startswith(("nc:", "names:"))]
    data = out / "data.yaml"
    data.write_text(f"path: {out}\ntrain: {root / 'train' / 'images'}\ntest: test/images\n" + "\n".join(names) + "\n")
    return data
