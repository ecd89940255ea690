"""Accuracy gates of an export: the metric an artifact must keep against its source.

One interface for both tasks, so the exporter does not care which:

- :class:`MapGate` (detectors): mAP@0.5 on a labelled data.yaml split, default drop 0.02 for
  INT8 and 0.005 for float targets, with the paired-bootstrap interval of the drop;
- :class:`Top1Gate` (classifiers): top-1 accuracy on an image-folder split (what
  ``edgekit data crops`` writes: the crops the classifier was trained on, not whole frames),
  default drop 1 point for every precision, with its paired-bootstrap interval.

A gate knows its verification images (``paths``), so calibration can leave them out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError

DEFAULT_MAX_TOP1_DROP = 0.01


def make_gate(source, data, split: str | None, max_map_drop: float | None = None,
              max_top1_drop: float | None = None):
    """The gate for ``source`` on ``data`` (None without labelled data).

    Example:
        >>> make_gate(load_source("cls.pt"), "crops", None).kind  # doctest: +SKIP
        'top1'
    """
    if data is None:
        return None
    if source.task == "classify":
        return Top1Gate.from_data(source, data, split, max_top1_drop)
    from edgekit.export.verify import labelled_records

    records, split, names = labelled_records(data, split)
    if records is None:
        return None
    if list(names) != list(source.names):
        raise EdgekitError(f"{data} has classes {names} but the model has {source.names}: verify on the same classes")
    return MapGate(source, records, split, max_map_drop)


class MapGate:
    """mAP@0.5 of the artifact vs the source on a detection split (:func:`edgekit.export.verify.map_gate`)."""

    kind, option = "map", "--max-map-drop"

    def __init__(self, source, records, split: str, max_drop: float | None):
        self.source, self.records, self.split, self.max_drop = source, records, split, max_drop
        self.paths = [r.path for r in records]
        self._source_map = None

    def check(self, runner, precision: str, log) -> dict:
        from edgekit.export.verify import DEFAULT_MAX_MAP_DROP, detection_map, map_gate, source_infer

        src = self.source
        if self._source_map is None:  # once per run; its detections are kept for each gate's bootstrap
            log(f"source mAP on {len(self.records)} {self.split} images ...")
            self._source_map = detection_map(source_infer(src, src.imgsz), self.records, src.names, src.head_spec,
                                             keep_preds=True)
        drop = DEFAULT_MAX_MAP_DROP[precision] if self.max_drop is None else self.max_drop
        return map_gate(runner, self.records, src.names, src.head_spec, self._source_map, drop, self.split)

    @staticmethod
    def failure(gate: dict) -> str:
        return (f"mAP50 dropped {gate['delta_map50']:.4f} > {gate['max_map_drop']} "
                f"({gate['source_map50']:.4f} -> {gate['map50']:.4f})")


class Top1Gate:
    """Top-1 of the artifact vs the source on an image-folder split, with a paired bootstrap."""

    kind, option = "top1", "--max-top1-drop"

    def __init__(self, source, items: list[tuple[Path, int]], split: str, max_drop: float | None):
        self.source, self.items, self.split = source, items, split
        self.max_drop = DEFAULT_MAX_TOP1_DROP if max_drop is None else max_drop
        self.paths = [p for p, _ in items]
        self.labels = np.array([c for _, c in items], np.int64)
        self._source_hits = None

    @classmethod
    def from_data(cls, source, data, split: str | None, max_drop: float | None) -> "Top1Gate":
        """The gate on an image-folder set; a detection data.yaml is refused with the command that makes crops."""
        from edgekit.data.folders import load_image_folder

        data = Path(data)
        if data.is_file():
            raise EdgekitError(f"{data} is a detection data.yaml but {source.model} is a classifier, verified on the "
                               f"crops it was trained on: run `edgekit data crops {data} --out crops` and give "
                               "--data crops")
        ds = load_image_folder(data)
        if list(ds.names) != list(source.names):
            raise EdgekitError(f"{data} has classes {ds.names} but the model has {source.names}: verify on the same classes")
        split = split or ("test" if "test" in ds.splits else "val")
        items = ds.split(split)
        if not items:
            raise EdgekitError(f"the {split} split of {data} has no images: the top-1 gate needs labelled images")
        return cls(source, items, split, max_drop)

    def _hits(self, logits_of) -> np.ndarray:
        """Per image: is the top-1 class right?"""
        from edgekit.runtime.model import read_image

        hits = np.zeros(len(self.items), bool)
        for k, (path, label) in enumerate(self.items):
            hits[k] = int(np.argmax(logits_of(read_image(path)).reshape(-1))) == label
        return hits

    def check(self, runner, precision: str, log, resamples: int = 200) -> dict:
        from edgekit.export.verify import source_infer

        if self._source_hits is None:
            log(f"source top-1 on {len(self.items)} {self.split} images ...")
            infer = source_infer(self.source, self.source.imgsz)
            self._source_hits = self._hits(lambda img: infer(img)[0][0])
        got = self._hits(lambda img: runner.infer(img)[0][0])
        return top1_gate(self._source_hits, got, self.max_drop, self.split, resamples)

    @staticmethod
    def failure(gate: dict) -> str:
        return (f"top-1 dropped {gate['delta_top1']:.4f} > {gate['max_top1_drop']} "
                f"({gate['source_top1']:.4f} -> {gate['top1']:.4f})")


def top1_gate(source_hits: np.ndarray, hits: np.ndarray, max_drop: float, split: str, resamples: int = 200,
              seed: int = 0) -> dict:
    """The top-1 gate record: accuracies, the drop, its paired-bootstrap 95% interval, passed.

    Example:
        >>> g = top1_gate(np.array([1, 1, 0, 1], bool), np.array([1, 0, 0, 1], bool), 0.01, "test")
        >>> g["source_top1"], g["top1"], g["delta_top1"], g["passed"]
        (0.75, 0.5, 0.25, False)
    """
    src, new = source_hits.astype(np.float64), hits.astype(np.float64)
    delta = float(src.mean() - new.mean())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(src), (int(resamples), len(src)))
    drops = src[idx].mean(1) - new[idx].mean(1)
    lo, hi = np.percentile(drops, [2.5, 97.5])
    return {"split": split, "images": int(len(src)), "source_top1": float(src.mean()), "top1": float(new.mean()),
            "delta_top1": delta, "delta_top1_ci95": [float(lo), float(hi)], "bootstrap_resamples": int(resamples),
            "max_top1_drop": max_drop, "passed": bool(delta <= max_drop + 1e-9)}
