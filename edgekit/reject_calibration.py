"""Fit a classifier artifact's reject ("unsure") thresholds on a labelled image-folder split.

The host-side half of ``edgekit calibrate-reject``: runs the artifact on every image of the
split through :class:`~edgekit.runtime.runner.ArtifactRunner` (the code the board runs),
fits per-class thresholds with :func:`edgekit.runtime.reject.calibrate_reject` and writes
them into the sidecar manifest as ``reject`` (see ``edgekit/cli/calibrate_reject_cmd.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError


def artifact_probabilities(model: str | Path, items: list[tuple[Path, int]], backend: str | None = None,
                           threads: int | None = None, manifest: dict | None = None) -> np.ndarray:
    """Softmax probabilities ``(N, C)`` of an exported classifier on ``(image path, class)`` items.

    Example:
        >>> from edgekit.data.folders import load_image_folder  # doctest: +SKIP
        >>> artifact_probabilities("cls.onnx", load_image_folder("crops").split("val")).shape  # doctest: +SKIP
        (1594, 7)
    """
    from edgekit.runtime.classify import softmax
    from edgekit.runtime.model import read_image
    from edgekit.runtime.runner import ArtifactRunner

    options = {"threads": threads} if threads else {}
    runner = ArtifactRunner(model, manifest=manifest, backend=backend, **options)
    rows = []
    for path, _ in items:
        img = read_image(path)  # the pixel limit and one-line errors of every image edgekit reads
        outs, _ = runner.infer(img)
        rows.append(softmax(np.asarray(outs[0], np.float32).reshape(-1)))
    if not rows:
        return np.zeros((0, len(runner.manifest.get("names", []))), np.float32)
    return np.stack(rows)


def split_items(data: str | Path, split: str, names: list[str]) -> tuple[list[tuple[Path, int]], list[str]]:
    """``(image, class)`` items of one split of an image-folder root, and the root's class names.

    A root without ``train/`` is fine here (calibration needs only the split): its class
    folders are then matched to the model's ``names``.

    Example:
        >>> items, names = split_items("crops", "val", ["0", "1"])  # doctest: +SKIP
    """
    from edgekit.runtime.model import IMAGE_SUFFIXES
    from edgekit.data.folders import SPLIT_FOLDERS, load_image_folder

    root = Path(data)
    if not root.is_dir() or any((root / a).is_dir() for a in SPLIT_FOLDERS["train"]):
        ds = load_image_folder(root)  # the usual checks and messages
        return ds.split(split), ds.names
    folder = next((root / a for a in SPLIT_FOLDERS.get(split, (split,)) if (root / a).is_dir()), None)
    if folder is None:
        raise EdgekitError(f"{root} has no {split}/ folder: expected {root}/{split}/<class>/*.jpg")
    index = {n: i for i, n in enumerate(names)}
    items = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if d.name not in index:
            raise EdgekitError(f"{d} is not one of the model's classes ({', '.join(names)}): rename or remove it")
        items += [(f, index[d.name]) for f in sorted(d.iterdir())
                  if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise EdgekitError(f"{folder} holds no images in class folders: expected {folder}/<class>/*.jpg")
    return items, names


def calibrate_artifact(model: str | Path, data: str | Path, max_error: float = 0.05, split: str = "val",
                       delta: float | None = None, min_support: int = 30, backend: str | None = None,
                       threads: int | None = None, write: bool = True) -> dict:
    """Calibrate an artifact's per-class reject thresholds on a labelled split; write them to its manifest.

    Returns:
        The ``reject`` block written to ``<model>.json`` (see the module docstring), with
        ``manifest`` (the sidecar path) added outside it.

    Raises:
        EdgekitError: not a classifier, classes that differ from the data's, a missing or
            empty data folder, ``max_error`` or ``delta`` outside (0, 1).

    Example:
        >>> r = calibrate_artifact("cls.onnx", "crops", max_error=0.05)  # doctest: +SKIP
        >>> r["calibration"]["accepted_error"] <= 0.05  # doctest: +SKIP
        True
    """
    from edgekit.data.folders import items_hash
    from edgekit.io import atomic_write_text
    from edgekit.runtime.reject import calibrate_reject
    from edgekit.runtime.runner import manifest_path, read_manifest

    if not 0.0 < max_error < 1.0:
        raise EdgekitError(f"--max-error must lie strictly between 0 and 1, got {max_error}: e.g. 0.05 for 5 %")
    if delta is not None and not 0.0 < delta < 1.0:
        raise EdgekitError(f"--delta must lie strictly between 0 and 1, got {delta}: e.g. 0.1 for 90 % confidence")
    if not Path(model).is_file():
        raise EdgekitError(f"{model} does not exist: give an exported classifier (edgekit export CKPT --target onnx)")
    manifest = read_manifest(model)
    if manifest.get("task") != "classify":
        raise EdgekitError(f"{model} is a {manifest.get('task', 'unknown')} model, not a classifier: reject "
                           "thresholds need a classifier exported from `edgekit train --task classify`")
    names = list(manifest.get("names", []))
    items, data_names = split_items(data, split, names)
    if data_names != names:
        raise EdgekitError(f"{data} has classes {data_names} but {Path(model).name} predicts {names}: "
                           "calibrate on data with the model's classes")
    probs = artifact_probabilities(model, items, backend, threads, manifest)
    labels = np.array([c for _, c in items], np.int64)
    r = calibrate_reject(probs, labels, max_error, min_support=min_support, delta=delta)
    block = {
        "thresholds": r["thresholds"], "max_error": r["max_error"], "method": r["method"], "delta": r["delta"],
        "min_support": r["min_support"], "rule": "accept the top class when its probability >= thresholds[class]",
        "calibration": {
            "data": str(data), "split": split, "images": len(items), "hash": items_hash(items), "top1": r["top1"],
            "accepted": r["accepted"], "coverage": r["coverage"], "accepted_error": r["accepted_error"],
            "per_class": [{"name": n, **s} for n, s in zip(names, r["per_class"])],
        },
    }
    side = manifest_path(model)
    if write:
        atomic_write_text(side, json.dumps({**manifest, "reject": block}, indent=1))
    return {**block, "manifest": str(side)}
