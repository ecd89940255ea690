"""COCO JSON detection datasets (``instances_*.json``).

In a data.yaml, ``format: coco`` and each split given as ``{annotations: FILE.json,
images: DIR}`` (``images`` defaults to the JSON's folder), or simply as ``FILE.json``.
A bare ``.json`` path is read as one ``val`` split. COCO category ids may be sparse; they
are mapped, in increasing id order, to contiguous class indices, and the ids are kept in
``DetectionDataset.category_ids`` so results can be written back with the original ids.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from edgekit.data.dataset import DetectionDataset, ImageRecord, Issue, read_size
from edgekit.errors import DatasetError
from edgekit.io import read_json


def coco_categories(doc: dict, path: Path) -> tuple[list[int], list[str]]:
    """(category ids sorted, names in that order) of a COCO document."""
    cats = doc.get("categories")
    if not isinstance(cats, list) or not cats:
        raise DatasetError(f"{path} has no 'categories' list: it must be COCO ground truth with categories")
    try:
        pairs = sorted((int(c["id"]), str(c["name"])) for c in cats)
    except (KeyError, TypeError, ValueError, OverflowError):
        raise DatasetError(f"{path}: every category needs an integer 'id' and a 'name'") from None
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _size(value) -> int:
    """A COCO image's width or height as a whole number of pixels, 0 when it is missing or not one.

    Example:
        >>> _size(640), _size("640"), _size(None), _size("640px"), _size(float("inf"))
        (640, 640, 0, 0, 0)
    """
    try:
        v = int(value) if not isinstance(value, bool) else 0
    except (TypeError, ValueError, OverflowError):
        return 0
    return v if v > 0 else 0


def read_coco_split(json_path: Path, images_dir: Path | None, split: str, issues: list[Issue],
                    expect: tuple[list[int], list[str]] | None = None):
    """Read one COCO JSON file into records; returns (category ids, names, records)."""
    doc = read_json(json_path, DatasetError)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or not isinstance(doc.get("annotations", []), list):
        raise DatasetError(f"{json_path} is not COCO ground truth: it needs 'images', 'annotations' and 'categories' lists")
    cat_ids, names = coco_categories(doc, json_path)
    if expect is not None and (cat_ids, names) != expect:
        raise DatasetError(f"{json_path} has other categories than the other splits: use one category list for all splits")
    index = {cid: i for i, cid in enumerate(cat_ids)}
    images_dir = images_dir or json_path.parent
    by_image: dict[int, list] = {}
    for a in doc.get("annotations", []):
        try:
            by_image.setdefault(int(a["image_id"]), []).append(a)
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{json_path}: an annotation has no integer 'image_id'") from None
    records = []
    for im in doc["images"]:
        try:
            img_id, fname = int(im["id"]), im["file_name"]
        except (KeyError, TypeError, ValueError, OverflowError):
            raise DatasetError(f"{json_path}: every image needs an integer 'id' and a 'file_name'") from None
        if not isinstance(fname, (str, int)) or isinstance(fname, bool) or str(fname).strip() == "":
            raise DatasetError(f"{json_path}: image id {img_id} has 'file_name' {str(fname)[:40]!r}: give the image's "
                               "file name as a string")
        path = images_dir / str(fname)
        # a size the JSON gets wrong ("640px", null, 1e400) is read from the image header instead
        w, h = (_size(im.get(k)) for k in ("width", "height"))
        try:
            exists = path.is_file()
        except (OSError, ValueError):  # a name too long for the file system, a NUL byte (found by tests/fuzz)
            exists = False
        if not exists:
            issues.append(Issue("missing_image", split, str(path)[:300], f"image id {img_id}"))
            continue
        w, h, problem = read_size(path, split, w, h)
        if problem:
            issues.append(problem)
            continue
        boxes, classes, crowd = [], [], []
        for a in by_image.pop(img_id, []):
            bbox = a.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4) or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox):
                issues.append(Issue("malformed_label", split, str(json_path), f"annotation {a.get('id')}: bbox must be [x, y, w, h]"))
                continue
            cid = a.get("category_id")
            if not isinstance(cid, (int, float, str)) or cid not in index:  # a list or dict id cannot be one
                issues.append(Issue("class_out_of_range", split, str(json_path), f"annotation {a.get('id')}: unknown category_id {cid}"))
                continue
            x, y, bw, bh = (float(v) for v in bbox)
            if not (math.isfinite(x + bw) and math.isfinite(y + bh)):  # 1e308 + 1e308 (found by tests/fuzz)
                issues.append(Issue("malformed_label", split, str(json_path), f"annotation {a.get('id')}: bbox beyond any image"))
                continue
            if bw <= 0 or bh <= 0:
                issues.append(Issue("degenerate_box", split, str(path), f"annotation {a.get('id')}: zero width or height"))
            if x < -1 or y < -1 or x + bw > w + 1 or y + bh > h + 1:
                issues.append(Issue("box_out_of_bounds", split, str(path), f"annotation {a.get('id')}: box outside the image"))
            boxes.append([x, y, x + bw, y + bh])
            classes.append(index[cid])
            crowd.append(bool(a.get("iscrowd", 0)))
        if not classes:
            issues.append(Issue("image_without_labels", split, str(path), "background image"))
        records.append(ImageRecord(path, w, h, boxes, classes, np.array(crowd, bool), image_id=img_id))
    for img_id in by_image:
        issues.append(Issue("label_without_image", split, str(json_path), f"annotations for unknown image id {img_id}"))
    return cat_ids, names, records


def read_coco(source: str | os.PathLike, cfg: dict | None = None) -> DetectionDataset:
    """Read COCO JSON: a data.yaml with ``format: coco`` (``cfg`` given) or one JSON file.

    Example:
        >>> ds = read_coco("instances_val.json")  # doctest: +SKIP
        >>> ds.category_ids[:3]  # doctest: +SKIP
        [1, 2, 3]
    """
    from edgekit.data.yolo import dataset_root, resolve

    source = Path(source)
    issues: list[Issue] = []
    if cfg is None:
        ids, names, recs = read_coco_split(source, None, "val", issues)
        return DetectionDataset(names, {"val": recs}, root=source.parent, source=str(source), format="coco",
                                issues=issues, category_ids=ids, label_paths=[source])
    root = dataset_root(cfg, source)
    splits, expect, jsons = {}, None, []
    for split in ("train", "val", "test"):
        value = cfg.get(split) or (cfg.get("valid") if split == "val" else None)
        if not value:
            continue
        if isinstance(value, dict):
            ann, img = value.get("annotations"), value.get("images")
        else:
            ann, img = value, None
        if not ann:
            raise DatasetError(f"{source}: split '{split}' needs 'annotations: FILE.json'")
        jsons.append(resolve(root, str(ann)))
        ids, names, recs = read_coco_split(jsons[-1], resolve(root, str(img)) if img else None, split, issues, expect)
        expect = (ids, names)
        splits[split] = recs
    if expect is None:
        raise DatasetError(f"{source} names no train/val/test split: add e.g. 'val: {{annotations: val.json, images: images/val}}'")
    return DetectionDataset(expect[1], splits, root=root, source=str(source), format="coco", issues=issues,
                            category_ids=expect[0], label_paths=jsons)


def coco_document(ds: DetectionDataset, records: list[ImageRecord], file_names: list[str]) -> dict:
    """A COCO ground-truth dict for ``records`` (ids 1..N for categories unless the dataset has its own)."""
    cat_ids = ds.category_ids or list(range(1, ds.num_classes + 1))
    images, anns = [], []
    for i, (rec, name) in enumerate(zip(records, file_names), 1):
        images.append({"id": i, "file_name": name, "width": rec.width, "height": rec.height})
        for (x1, y1, x2, y2), c, crowd in zip(rec.boxes.astype(float), rec.classes, rec.iscrowd):
            w, h = x2 - x1, y2 - y1
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat_ids[int(c)],
                         "bbox": [round(x1, 3), round(y1, 3), round(w, 3), round(h, 3)],
                         "area": round(max(w, 0) * max(h, 0), 3), "iscrowd": int(crowd)})
    cats = [{"id": cid, "name": n} for cid, n in zip(cat_ids, ds.names)]
    return {"images": images, "annotations": anns, "categories": cats}


def write_coco(ds: DetectionDataset, out: Path, link: bool = False) -> Path:
    """Write ``ds`` as ``out/annotations/<split>.json`` + ``out/images/<split>/``; returns a data.yaml."""
    import yaml

    from edgekit.data.writing import place_image, unique_names

    cfg = {"format": "coco", "path": ".", "names": list(ds.names)}
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split, recs in ds.splits.items():
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        names = unique_names(recs)
        for rec, name in zip(recs, names):
            place_image(rec.path, out / "images" / split / name, link)
        doc = coco_document(ds, recs, names)
        (out / "annotations" / f"{split}.json").write_text(json.dumps(doc))
        cfg[split] = {"annotations": f"annotations/{split}.json", "images": f"images/{split}"}
    (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out / "data.yaml"
