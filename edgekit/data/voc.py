"""Pascal VOC datasets: ``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``.

In a data.yaml: ``format: voc``, ``path`` (the VOC root), each split an id-list file
(``train: ImageSets/Main/train.txt``) and optionally ``images``/``annotations`` folders
(defaults ``JPEGImages``/``Annotations``) and ``names`` (default: every object name seen,
sorted). A folder with ``Annotations/`` may also be given directly, whatever the case of its
folder names (``annotations/``, ``annots/``, ``images/``, ``imagesets/main/``: :func:`voc_layout`);
``edgekit data split`` writes split lists and a data.yaml for a folder that has none.

XML is untrusted input: it is parsed with ``defusedxml``, which refuses entity
declarations (the "billion laughs" bomb) and external references. VOC ``difficult``
objects are kept as ignored regions (``iscrowd``), as the VOC benchmark ignores them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from edgekit.data.dataset import DetectionDataset, ImageRecord, Issue, normalize_names, read_size
from edgekit.errors import DatasetError
from edgekit.runtime.model import IMAGE_SUFFIXES


# Folder names users' VOC sets come with (compared case-insensitively), in order of preference.
ANNOTATION_DIRS = ("annotations", "annots", "annotation", "xml", "xmls")
IMAGE_DIRS = ("jpegimages", "images", "imgs", "jpeg", "img")


def _child(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first sub-folder of ``root`` whose lower-cased name is in ``names`` (by the order of ``names``)."""
    try:
        found = {p.name.lower(): p for p in sorted(root.iterdir()) if p.is_dir()}
    except OSError:
        return None
    return next((found[n] for n in names if n in found), None)


def voc_layout(root: str | os.PathLike) -> dict | None:
    """The VOC folders of ``root`` whatever their case, or None when it has no annotation folder.

    Returns ``{"annotations", "images", "sets"}`` (``sets``: the ``ImageSets/Main`` folder or None),
    names relative to ``root`` as a data.yaml writes them.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "annots").mkdir(); (root / "images").mkdir()
        >>> _ = (root / "annots" / "a.xml").write_text("<annotation/>")
        >>> voc_layout(root)
        {'annotations': 'annots', 'images': 'images', 'sets': None}
    """
    root = Path(root)
    ann = _child(root, ANNOTATION_DIRS)
    if ann is None or not any(ann.glob("*.xml")) and not any(ann.glob("*.XML")):
        return None
    img = _child(root, IMAGE_DIRS)
    image_sets = _child(root, ("imagesets",))
    main = _child(image_sets, ("main",)) if image_sets else None
    return {"annotations": ann.name, "images": img.name if img else "JPEGImages",
            "sets": main.relative_to(root).as_posix() if main else None}


def parse_voc_xml(path: Path) -> dict:
    """Parse one VOC annotation into ``{filename, width, height, objects: [(name, xyxy, difficult)]}``.

    Raises:
        ValueError: with a one-line reason when the XML is malformed, forbidden or incomplete.
    """
    import defusedxml.ElementTree as ET
    from defusedxml import DefusedXmlException

    try:
        root = ET.parse(path).getroot()
    except DefusedXmlException as exc:
        raise ValueError(f"refused unsafe XML ({type(exc).__name__}: entity or DTD declarations are not allowed)") from None
    except ET.ParseError as exc:
        raise ValueError(f"malformed XML: {exc}") from None

    def num(node, tag):
        text = node.findtext(tag)
        if text is None:
            raise ValueError(f"missing <{tag}>")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"<{tag}> is not a number: {text.strip()[:20]}") from None
        if not math.isfinite(value):  # found by tests/fuzz: int(inf) raised OverflowError
            raise ValueError(f"<{tag}> is not a finite number: {text.strip()[:20]}")
        return value

    size = root.find("size")
    w = int(num(size, "width")) if size is not None and size.findtext("width") else 0
    h = int(num(size, "height")) if size is not None and size.findtext("height") else 0
    objects = []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        name = (obj.findtext("name") or "").strip()
        if box is None or not name:
            raise ValueError("an <object> lacks <name> or <bndbox>")
        xyxy = [num(box, t) for t in ("xmin", "ymin", "xmax", "ymax")]
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        objects.append((name, xyxy, difficult))
    return {"filename": (root.findtext("filename") or "").strip(), "width": w, "height": h, "objects": objects}


def find_image(images_dir: Path, stem: str, filename: str) -> Path | None:
    """The image of an annotation: its <filename>, else any known suffix with the same stem."""
    if filename and (images_dir / filename).exists():
        return images_dir / filename
    for suf in IMAGE_SUFFIXES:
        if (images_dir / f"{stem}{suf}").exists():
            return images_dir / f"{stem}{suf}"
    return None


def read_voc_split(ids: list[str], ann_dir: Path, img_dir: Path, names: list[str], split: str,
                   issues: list[Issue]) -> list[ImageRecord]:
    """Read the annotations of the listed ids."""
    index = {n: i for i, n in enumerate(names)}
    records = []
    for k, stem in enumerate(ids):
        xml = ann_dir / f"{stem}.xml"
        if not xml.exists():
            issues.append(Issue("missing_image", split, str(xml), "listed id has no annotation file"))
            continue
        try:
            ann = parse_voc_xml(xml)
        except ValueError as exc:
            issues.append(Issue("malformed_label", split, str(xml), str(exc)))
            continue
        img = find_image(img_dir, stem, ann["filename"])
        if img is None:
            issues.append(Issue("label_without_image", split, str(xml), f"no image for '{stem}' in {img_dir}"))
            continue
        w, h, problem = read_size(img, split, ann["width"], ann["height"])
        if problem:
            issues.append(problem)
            continue
        boxes, classes, ignore = [], [], []
        for name, (x1, y1, x2, y2), difficult in ann["objects"]:
            if name not in index:
                issues.append(Issue("unknown_class", split, str(xml), f"object '{name}' is not in names"))
                continue
            if x2 <= x1 or y2 <= y1:
                issues.append(Issue("degenerate_box", split, str(xml), f"{name} box {[x1, y1, x2, y2]} has zero area"))
            if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
                issues.append(Issue("box_out_of_bounds", split, str(xml), f"{name} box {[x1, y1, x2, y2]} outside {w}x{h}"))
            boxes.append([x1, y1, x2, y2])
            classes.append(index[name])
            ignore.append(difficult)
        if not classes:
            issues.append(Issue("image_without_labels", split, str(img), "background image"))
        records.append(ImageRecord(img, w, h, boxes, classes, np.array(ignore, bool), image_id=k))
    return records


def collect_names(ann_dir: Path) -> list[str]:
    """Every object name in the annotations, sorted (used when the yaml gives no names)."""
    names = set()
    for xml in sorted(ann_dir.glob("*.xml")):
        try:
            names.update(o[0] for o in parse_voc_xml(xml)["objects"])
        except ValueError:
            continue
    if not names:
        raise DatasetError(f"no objects found in {ann_dir}: add 'names' to the data.yaml")
    return sorted(names)


def read_voc(source: str | os.PathLike, cfg: dict | None = None) -> DetectionDataset:
    """Read a VOC dataset from a data.yaml (``cfg`` given) or a VOC root folder.

    Example:
        >>> ds = read_voc("../shared/data/bccd")  # doctest: +SKIP
        >>> ds.names  # doctest: +SKIP
        ['Platelets', 'RBC', 'WBC']
    """
    from edgekit.data.yolo import dataset_root, resolve, split_entries

    source = Path(source)
    if cfg is None:
        root = source.resolve()
        layout = voc_layout(root) or {"annotations": "Annotations", "images": "JPEGImages", "sets": None}
        sets = layout["sets"]
        cfg = {s: f"{sets}/{s}.txt" for s in ("train", "val", "test") if sets and (root / sets / f"{s}.txt").exists()}
        if not cfg:  # no split lists: every annotation is one 'train' split (`edgekit data split` makes val/test)
            cfg = {"train": None}
        cfg.update(annotations=layout["annotations"], images=layout["images"])
    else:
        root = dataset_root(cfg, source)
    ann_dir = resolve(root, str(cfg.get("annotations", "Annotations")))
    img_dir = resolve(root, str(cfg.get("images", "JPEGImages")))
    for d, what in ((ann_dir, "annotations"), (img_dir, "images")):
        if not d.is_dir():
            raise DatasetError(f"VOC {what} folder {d} does not exist: set '{what}:' in the data.yaml")
    names = normalize_names(cfg["names"]) if cfg.get("names") else collect_names(ann_dir)
    issues: list[Issue] = []
    splits = {}
    entries = split_entries(cfg) or {"train": [None]}
    lists: list[Path] = []  # the id lists read (ImageSets/Main/*.txt)
    for split, files in entries.items():
        ids: list[str] = []
        for f in files:
            if f in (None, "None"):
                ids += [p.stem for p in sorted(ann_dir.glob("*.xml"))]
                continue
            p = resolve(root, f)
            if not p.is_file():
                raise DatasetError(f"{split} id list {p} does not exist: fix '{f}' in the data.yaml")
            ids += [ln.split()[0] for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
        splits[split] = read_voc_split(list(dict.fromkeys(ids)), ann_dir, img_dir, names, split, issues)
        lists += [resolve(root, f) for f in files if f not in (None, "None")]
    return DetectionDataset(names, splits, root=root, source=str(source), format="voc", issues=issues,
                            label_paths=[ann_dir, *lists])


def voc_xml(rec: ImageRecord, filename: str, names: list[str]) -> str:
    """One VOC annotation document for ``rec``."""
    from xml.sax.saxutils import escape

    objs = []
    for (x1, y1, x2, y2), c, ign in zip(rec.boxes.astype(float), rec.classes, rec.iscrowd):
        objs.append(
            f"  <object>\n    <name>{escape(names[int(c)])}</name>\n    <difficult>{int(ign)}</difficult>\n"
            f"    <bndbox><xmin>{x1:g}</xmin><ymin>{y1:g}</ymin><xmax>{x2:g}</xmax><ymax>{y2:g}</ymax></bndbox>\n  </object>\n")
    return (f"<annotation>\n  <folder>JPEGImages</folder>\n  <filename>{escape(filename)}</filename>\n"
            f"  <size><width>{rec.width}</width><height>{rec.height}</height><depth>3</depth></size>\n"
            + "".join(objs) + "</annotation>\n")


def write_voc(ds: DetectionDataset, out: Path, link: bool = False) -> Path:
    """Write ``ds`` as a VOC tree under ``out`` plus a data.yaml; returns the yaml path."""
    import yaml

    from edgekit.data.writing import place_image, unique_names

    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / d).mkdir(parents=True, exist_ok=True)
    cfg = {"format": "voc", "path": ".", "names": list(ds.names)}
    for split, recs in ds.splits.items():
        ids = []
        for rec, name in zip(recs, unique_names(recs)):
            place_image(rec.path, out / "JPEGImages" / name, link)
            stem = Path(name).stem
            (out / "Annotations" / f"{stem}.xml").write_text(voc_xml(rec, name, ds.names))
            ids.append(stem)
        (out / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        cfg[split] = f"ImageSets/Main/{split}.txt"
    (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out / "data.yaml"
