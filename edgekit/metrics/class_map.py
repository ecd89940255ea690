"""Evaluating across label sets: every class as one (``--single-cls``) or a rename/merge table (``--map-classes``).

A detector trained on seven fish species, judged on a set labelled just "Fish", is scored
class-agnostically; two sets that name the same things differently are scored after a
rename. One table maps *names* from either side (the model's and the data's) to the
evaluated class; a name it does not mention keeps its own name, a name mapped to ``null``
is left out (its boxes and detections are dropped). ``--map-classes FILE`` is a YAML mapping::

    # species ids of the model -> "fish"; the data's "Fish" -> "fish"
    "0": fish
    "1": fish
    Fish: fish
    debris: null

When classes merge, each evaluated class is put through NMS again (IoU 0.6, as the
detections were), so one fish predicted as two species counts once, as Ultralytics'
``single_cls`` validation does with class-agnostic NMS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError

SINGLE_NAME = "object"
RENMS_IOU = 0.6


class ClassMap:
    """Names -> evaluated names; ``None`` drops a class.

    Example:
        >>> cm = ClassMap({"0": "fish", "1": "fish"})
        >>> cm.targets(["0", "1", "2"], ["fish"])
        ['fish', '2']
        >>> ClassMap(single=True).targets(["a", "b"], ["c"])
        ['object']
    """

    def __init__(self, table: dict | None = None, single: bool = False):
        self.table = {str(k): (None if v is None else str(v)) for k, v in (table or {}).items()}
        self.single = single

    @classmethod
    def from_options(cls, single_cls: bool = False, map_classes: str | None = None) -> "ClassMap | None":
        """The map for the CLI options, or None for plain evaluation (the names must then agree)."""
        if single_cls and map_classes:
            raise EdgekitError("--single-cls and --map-classes both given: use one (map every name to one class "
                               "in the file for a single class with renames)")
        if single_cls:
            return cls(single=True)
        if map_classes:
            return cls(read_class_table(map_classes))
        return None

    def name(self, name: str) -> str | None:
        if self.single:
            return SINGLE_NAME
        return self.table.get(str(name), str(name))

    def targets(self, *name_lists) -> list[str]:
        """The evaluated classes, in first-seen order over the given name lists."""
        out: list[str] = []
        for names in name_lists:
            for n in names:
                t = self.name(n)
                if t is not None and t not in out:
                    out.append(t)
        return out

    def merges(self, names) -> bool:
        """Do two of these names end as one class (then detections need NMS again)?"""
        mapped = [self.name(n) for n in names]
        kept = [m for m in mapped if m is not None]
        return len(set(kept)) < len(kept)

    def ids(self, names: list[str], targets: list[str]) -> np.ndarray:
        """Old class id -> new class id (-1: dropped)."""
        return np.array([targets.index(t) if (t := self.name(n)) is not None else -1 for n in names], np.int64)


def read_class_table(path: str | Path) -> dict:
    """The ``--map-classes`` YAML: a mapping of class names to evaluated names (or null)."""
    from edgekit.io import parse_yaml

    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"--map-classes {path} does not exist: give a YAML file mapping class names to the names "
                           "to evaluate, e.g. '\"0\": fish'")
    table = parse_yaml(path.read_text(errors="replace"), str(path))
    if not isinstance(table, dict) or not table:
        raise EdgekitError(f"{path} is not a mapping of class names: write one 'name: evaluated_name' per line")
    bad = [k for k, v in table.items() if v is not None and not isinstance(v, (str, int))]
    if bad:
        raise EdgekitError(f"{path}: the value of {bad[0]!r} is not a class name: map each name to a name, or to null "
                           "to leave it out")
    return table


def remap_boxes(items: list[dict], names: list[str], cmap: ClassMap, targets: list[str],
                renms: bool = False) -> list[dict]:
    """Ground truth or detections (dicts of ``boxes``, ``classes`` [, ``scores``, ``iscrowd``]) in the new classes.

    Example:
        >>> cm = ClassMap(single=True)
        >>> d = [{"boxes": np.array([[0, 0, 9, 9], [0, 0, 9, 9.]]), "scores": np.array([.9, .8]), "classes": np.array([0, 1])}]
        >>> remap_boxes(d, ["a", "b"], cm, ["object"], renms=True)[0]["classes"].tolist()
        [0]
    """
    from edgekit.runtime.boxes import nms

    lut = cmap.ids(names, targets)
    out = []
    for it in items:
        classes = lut[np.asarray(it["classes"], np.int64).reshape(-1)] if len(it["classes"]) else np.zeros(0, np.int64)
        keep = classes >= 0
        new = {k: (np.asarray(v)[keep] if k in ("boxes", "scores", "iscrowd") and v is not None else v)
               for k, v in it.items()}
        new["classes"] = classes[keep]
        if renms and "scores" in new and len(new["classes"]):
            idx = nms(new["boxes"], new["scores"], new["classes"], RENMS_IOU, max_det=len(new["classes"]))
            new = {k: (np.asarray(v)[idx] if k in ("boxes", "scores", "classes") else v) for k, v in new.items()}
        out.append(new)
    return out


def remap_coco(gt: dict, preds: list[dict], cmap: ClassMap) -> tuple[dict, list[dict]]:
    """COCO ground truth and results with their categories mapped (ids 1..N in evaluated order).

    Merged classes' detections go through NMS again per image, as in :func:`remap_boxes`.

    Example:
        >>> gt = {"images": [{"id": 1}], "categories": [{"id": 3, "name": "a"}, {"id": 4, "name": "b"}],
        ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 4, "bbox": [0, 0, 9, 9]}]}
        >>> g, p = remap_coco(gt, [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 9, 9], "score": .9}], ClassMap(single=True))
        >>> g["categories"], g["annotations"][0]["category_id"], p[0]["category_id"]
        ([{'id': 1, 'name': 'object'}], 1, 1)
    """
    from edgekit.runtime.boxes import nms

    cats = sorted(gt.get("categories", []), key=lambda c: c["id"])
    names = [str(c.get("name", c["id"])) for c in cats]
    targets = cmap.targets(names)
    new_id = {c["id"]: targets.index(t) + 1 for c, n in zip(cats, names) if (t := cmap.name(n)) is not None}
    anns = [{**a, "category_id": new_id[a["category_id"]]} for a in gt.get("annotations", [])
            if a.get("category_id") in new_id]
    kept = [{**p, "category_id": new_id[p["category_id"]]} for p in preds if p.get("category_id") in new_id]
    if cmap.merges(names) and kept:
        by_image: dict = {}
        for p in kept:
            by_image.setdefault(p["image_id"], []).append(p)
        kept = []
        for group in by_image.values():
            b = np.array([p["bbox"] for p in group], np.float64)
            xyxy = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1)
            idx = nms(xyxy, np.array([p["score"] for p in group]), np.array([p["category_id"] for p in group]),
                      RENMS_IOU, max_det=len(group))
            kept += [group[i] for i in idx]
    new_gt = {**gt, "categories": [{"id": k + 1, "name": t} for k, t in enumerate(targets)], "annotations": anns}
    return new_gt, kept
