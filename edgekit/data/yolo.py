"""Ultralytics-style datasets: a ``data.yaml`` plus YOLO txt labels.

``data.yaml`` keys: ``path`` (root, relative to the yaml file; default: the yaml's folder),
``train``/``val``/``test`` (a folder of images, a .txt file listing images, or a list of
those), ``names`` (list or ``{index: name}``). Labels live beside the images with
``/images/`` replaced by ``/labels/`` and a ``.txt`` suffix; each line is
``class cx cy w h`` normalised to [0, 1] (a polygon ``class x1 y1 x2 y2 ...`` is turned
into its bounding box, as Ultralytics does).

Roboflow exports write ``train: ../train/images`` relative to a folder *above* the yaml;
like Ultralytics we retry such a path without the leading ``../`` when it does not exist.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from edgekit.data.dataset import (
    DetectionDataset,
    ImageRecord,
    Issue,
    normalize_names,
    read_size,
)
from edgekit.errors import DatasetError
from edgekit.runtime.model import IMAGE_SUFFIXES

SPLIT_ALIASES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def load_yaml(path: Path) -> dict:
    """``yaml.safe_load`` a data.yaml into a dict, with one-line errors."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path} does not exist: give the path to your data.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    from edgekit.io import parse_yaml

    cfg = parse_yaml(text, str(path), DatasetError)
    if not isinstance(cfg, dict):
        raise DatasetError(f"{path} must be a YAML mapping with train/val/names keys")
    return cfg


def dataset_root(cfg: dict, yaml_path: Path) -> Path:
    """The folder split paths are relative to: ``path`` (itself relative to the yaml) or the yaml's folder."""
    base = yaml_path.parent
    root = cfg.get("path")
    return (base / root).resolve() if root else base.resolve()


def split_entries(cfg: dict) -> dict[str, list[str]]:
    """The split -> list of path strings, accepting val/valid aliases and single strings."""
    out = {}
    for split, aliases in SPLIT_ALIASES.items():
        for key in aliases:
            value = cfg.get(key)
            if value:
                out[split] = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
                break
    return out


def resolve(root: Path, entry: str) -> Path:
    """Resolve a split entry against the root, with the Roboflow ``../`` retry."""
    p = Path(entry).expanduser()
    p = p if p.is_absolute() else root / p
    if not p.exists() and entry.startswith("../"):
        alt = root / entry[3:]
        if alt.exists():
            return alt
    return p


def label_path(image: Path) -> Path:
    """The YOLO label file of an image: last ``images`` folder -> ``labels``, suffix -> .txt.

    Example:
        >>> label_path(Path("d/train/images/a.jpg")).as_posix()
        'd/train/labels/a.txt'
    """
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def list_images(root: Path, entries: list[str], split: str, issues: list[Issue]) -> list[Path]:
    """Image files of a split from folders and/or .txt lists, sorted and de-duplicated."""
    images: list[Path] = []
    for entry in entries:
        p = resolve(root, entry)
        if p.is_dir():
            images += [f for f in sorted(p.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
        elif p.is_file() and p.suffix == ".txt":
            for line in p.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if not line:
                    continue
                f = Path(line)
                if not f.is_absolute():
                    f = root / line if (root / line).exists() else p.parent / line
                if not f.exists():
                    issues.append(Issue("missing_image", split, str(f), f"listed in {p.name}"))
                    continue
                images.append(f)
        else:
            raise DatasetError(f"{split} split path {p} does not exist: fix '{entry}' in the data.yaml (relative paths are relative to 'path' or the yaml's folder)")
    return list(dict.fromkeys(images))


def parse_label_file(text: str, nc: int, w: int, h: int, split: str, path: str, issues: list[Issue]):
    """Parse YOLO label lines into pixel xyxy boxes and classes, recording every problem."""
    boxes, classes = [], []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls_f = float(fields[0])
            vals = np.array([float(v) for v in fields[1:]], np.float64)
        except ValueError:
            issues.append(Issue("malformed_label", split, path, f"line {n}: not numbers: {line.strip()[:60]}"))
            continue
        if len(vals) == 4:
            cx, cy, bw, bh = vals
            x1, y1, x2, y2 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
        elif len(vals) >= 6 and len(vals) % 2 == 0:  # polygon: its bounding box
            xs, ys = vals[0::2], vals[1::2]
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
        else:
            issues.append(Issue("malformed_label", split, path, f"line {n}: expected 'class cx cy w h', got {len(fields)} fields"))
            continue
        if not np.isfinite(vals).all():
            issues.append(Issue("malformed_label", split, path, f"line {n}: non-finite coordinate"))
            continue
        # a class of nan or inf is out of range too (found by tests/fuzz: int() of them raised)
        if not math.isfinite(cls_f) or cls_f != int(cls_f) or not 0 <= int(cls_f) < nc:
            issues.append(Issue("class_out_of_range", split, path, f"line {n}: class {fields[0]} not in 0..{nc - 1}"))
            continue
        tol = 1e-3  # exporters round to 6 decimals; do not flag 1.0000004
        if min(x1, y1) < -tol or max(x2, y2) > 1 + tol:
            issues.append(Issue("box_out_of_bounds", split, path, f"line {n}: box outside the image, clipped"))
        x1, y1, x2, y2 = (float(np.clip(v, 0.0, 1.0)) for v in (x1, y1, x2, y2))
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            issues.append(Issue("degenerate_box", split, path, f"line {n}: zero width or height"))
        boxes.append([x1 * w, y1 * h, x2 * w, y2 * h])
        classes.append(int(cls_f))
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int64)


def read_split(root: Path, entries: list[str], split: str, nc: int, issues: list[Issue]) -> list[ImageRecord]:
    """Read one split's images and labels."""
    records = []
    images = list_images(root, entries, split, issues)
    for idx, img in enumerate(images):
        w, h, problem = read_size(img, split)
        if problem:
            issues.append(problem)
            continue
        lp = label_path(img)
        if lp.is_file():
            text = lp.read_text(encoding="utf-8", errors="replace")
            boxes, classes = parse_label_file(text, nc, w, h, split, str(lp), issues)
        else:
            boxes, classes = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        if len(classes) == 0:
            issues.append(Issue("image_without_labels", split, str(img), "background image"))
        records.append(ImageRecord(img, w, h, boxes, classes, image_id=idx))
    # label files whose image is missing (only meaningful for folder splits)
    stems = {(label_path(i).parent, i.stem) for i in images}
    for entry in entries:
        p = resolve(root, entry)
        if p.is_dir():
            ldir = label_path(p / "x.jpg").parent
            if ldir != p and ldir.is_dir():
                for lf in sorted(ldir.rglob("*.txt")):
                    if (lf.parent, lf.stem) not in stems:
                        issues.append(Issue("label_without_image", split, str(lf), "no image with this name"))
    return records


def read_yolo(yaml_path: str | os.PathLike, cfg: dict | None = None) -> DetectionDataset:
    """Read an Ultralytics-style data.yaml and its YOLO txt labels.

    Example:
        >>> ds = read_yolo("edgekit/assets/fish_sample/data.yaml")  # doctest: +SKIP
        >>> ds.names, len(ds.split("train"))  # doctest: +SKIP
        (['0', '1', '2', '5', '6', '7', '8'], 120)
    """
    yaml_path = Path(yaml_path)
    cfg = load_yaml(yaml_path) if cfg is None else cfg
    if "names" not in cfg:
        raise DatasetError(f"{yaml_path} has no 'names': add the class names, e.g. names: [fish, crab]")
    names = normalize_names(cfg["names"])
    if "nc" in cfg and int(cfg["nc"]) != len(names):
        raise DatasetError(f"{yaml_path}: nc is {cfg['nc']} but {len(names)} names are given: make them agree")
    root = dataset_root(cfg, yaml_path)
    entries = split_entries(cfg)
    if not entries:
        raise DatasetError(f"{yaml_path} names no train/val/test split: add e.g. 'train: train/images'")
    issues: list[Issue] = []
    splits = {s: read_split(root, e, s, len(names), issues) for s, e in entries.items()}
    labels = list(dict.fromkeys(label_path(r.path).parent for recs in splits.values() for r in recs))
    return DetectionDataset(names, splits, root=root, source=str(yaml_path), format="yolo", issues=issues,
                            label_paths=labels)


def write_yolo(ds: DetectionDataset, out: Path, link: bool = False) -> Path:
    """Write ``ds`` as ``out/data.yaml`` + ``out/<split>/{images,labels}``; returns the yaml path."""
    import yaml

    from edgekit.data.writing import place_image, unique_names

    cfg = {"path": ".", "names": list(ds.names), "nc": ds.num_classes}
    for split, recs in ds.splits.items():
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        (out / split / "labels").mkdir(parents=True, exist_ok=True)
        for rec, name in zip(recs, unique_names(recs)):
            place_image(rec.path, out / split / "images" / name, link)
            lines = []
            keep = ~rec.iscrowd  # YOLO txt has no notion of ignored regions
            for (x1, y1, x2, y2), c in zip(rec.boxes[keep].astype(np.float64), rec.classes[keep]):
                cx, cy = (x1 + x2) / 2 / rec.width, (y1 + y2) / 2 / rec.height
                bw, bh = (x2 - x1) / rec.width, (y2 - y1) / rec.height
                lines.append(f"{int(c)} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
            (out / split / "labels" / Path(name).with_suffix(".txt")).write_text("\n".join(lines) + ("\n" if lines else ""))
        cfg[split] = f"{split}/images"
    (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out / "data.yaml"
