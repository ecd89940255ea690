"""``edgekit data crops``: cut the labelled boxes of a detection dataset into a classification set.

Every valid box (positive size, not a COCO crowd region, at least ``min_size`` pixels
each way once clipped to the image) is padded by ``pad`` of its size on each side, clipped
to the image, and written as ``out/<split>/<class>/<image stem>_<k>.jpg`` (``k``: the
box's index in its image, so a crop can be traced back to its label line). ``classes.txt``
lists the class folders in the dataset's order, which the image-folder reader keeps (a
sorted folder listing would put class ``10`` before ``2``); ``crops.json`` records the
settings and the counts. The folder is built under a temporary name and moved into place
only when complete.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from edgekit.errors import DatasetError, EdgekitError, ImageTooLargeError

CLASSES_FILE = "classes.txt"
REPORT_FILE = "crops.json"


def folder_name(name: str) -> str:
    """A class name made safe as one folder name (path separators and control characters become ``_``).

    Example:
        >>> folder_name("traffic light"), folder_name("a/b"), folder_name("..")
        ('traffic light', 'a_b', '_')
    """
    safe = re.sub(r'[\x00-\x1f/\\:*?"<>|]', "_", str(name)).strip()
    return "_" if safe in ("", ".", "..") else safe


def crop_box(box: np.ndarray, width: int, height: int, pad: float, min_size: float) -> tuple[int, int, int, int] | None:
    """Pixel window ``(x1, y1, x2, y2)`` of a padded, clipped box; None when it is too small.

    ``min_size`` applies to the box clipped to the image, before padding: padding must not
    turn a 1-pixel sliver into a "fish".

    Example:
        >>> crop_box(np.array([10., 10., 30., 20.]), 100, 100, 0.1, 4)
        (8, 9, 32, 21)
        >>> crop_box(np.array([98., 10., 120., 20.]), 100, 100, 0.1, 4) is None
        True
    """
    x1, y1 = max(float(box[0]), 0.0), max(float(box[1]), 0.0)
    x2, y2 = min(float(box[2]), float(width)), min(float(box[3]), float(height))
    w, h = x2 - x1, y2 - y1
    if w < max(min_size, 1e-6) or h < max(min_size, 1e-6):
        return None
    px, py = pad * w, pad * h
    # round outwards so the window always holds the whole box
    return (max(int(np.floor(x1 - px)), 0), max(int(np.floor(y1 - py)), 0),
            min(int(np.ceil(x2 + px)), width), min(int(np.ceil(y2 + py)), height))


def make_crops(source: str | os.PathLike, out: str | os.PathLike, pad: float = 0.1, min_size: float = 4,
               splits: list[str] | None = None, overwrite: bool = False, progress: bool = False) -> Path:
    """Cut every valid labelled box of a detection dataset into a class-per-folder dataset.

    Args:
        source: a data.yaml (yolo/coco/voc), COCO .json or VOC folder.
        out: the output folder (``out/<split>/<class>/*.jpg``, ``classes.txt``, ``crops.json``).
        pad: padding added on each side, as a fraction of the box's width/height.
        min_size: boxes narrower or shorter than this (pixels, clipped to the image) are skipped.
        splits: the splits to cut (default: every split of the source).
        overwrite: replace an existing non-empty ``out``.
        progress: show a progress bar.

    Returns:
        ``out``. Counts per split and class are in ``out/crops.json`` (see :func:`read_crops_report`).

    Example:
        >>> import tempfile, pathlib
        >>> from edgekit.data import sample_data_yaml
        >>> out = make_crops(sample_data_yaml(), pathlib.Path(tempfile.mkdtemp()) / "crops", splits=["test"])
        >>> sorted(p.name for p in out.iterdir())[:3]
        ['classes.txt', 'crops.json', 'test']
    """
    import cv2
    from tqdm import tqdm

    from edgekit.data.loader import load_dataset
    from edgekit.io import atomic_dir, atomic_write_text, check_output_not_input
    from edgekit.runtime.model import read_image

    if not 0 <= pad <= 2:
        raise DatasetError(f"--pad {pad} is out of range: give a fraction of the box size between 0 and 2, e.g. 0.1")
    if min_size < 0:
        raise DatasetError(f"--min-size {min_size} is negative: give a size in pixels, e.g. 4")
    ds = load_dataset(source)
    folders = [folder_name(n) for n in ds.names]
    if len(set(folders)) != len(folders):
        raise DatasetError(f"class names {ds.names} give clashing folder names {folders}: rename the classes in the data.yaml")
    wanted = list(ds.splits) if splits is None else [{"valid": "val", "validation": "val"}.get(s, s) for s in splits]
    records = {s: ds.split(s) for s in wanted}  # ds.split raises a clear error for a missing split
    if not any(records.values()):
        raise DatasetError(f"{source} has no images in {', '.join(wanted)}: check the split paths in the data.yaml")
    out = Path(out)
    check_output_not_input(out, ds.input_paths())
    report = {"source": str(source), "pad": pad, "min_size": min_size, "names": list(ds.names), "folders": folders,
              "splits": {}}
    params = [int(cv2.IMWRITE_JPEG_QUALITY), 95]
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for split, recs in records.items():
            counts = np.zeros(len(folders), np.int64)
            skipped = {"crowd_or_degenerate": 0, "too_small": 0, "bad_class": 0, "unreadable_image": 0,
                       "image_too_large": 0}
            for f in folders:  # every class gets its folder, empty or not, so splits line up
                (tmp / split / f).mkdir(parents=True, exist_ok=True)
            stems: dict[str, int] = {}
            for rec in tqdm(recs, desc=f"crops {split}", disable=not progress, leave=False):
                valid = rec.valid_mask()
                skipped["crowd_or_degenerate"] += int((~valid).sum())
                if not valid.any():
                    continue
                try:
                    img = read_image(rec.path)  # the one reader: pixel limit checked from the header first
                except ImageTooLargeError:
                    skipped["image_too_large"] += int(valid.sum())
                    continue
                except EdgekitError:
                    skipped["unreadable_image"] += int(valid.sum())
                    continue
                h, w = img.shape[:2]
                stem = rec.path.stem
                # two images with one stem in a split (lists spanning folders) must not overwrite each other
                seen = stems.get(stem, 0)
                stems[stem] = seen + 1
                stem = stem if seen == 0 else f"{stem}~{seen}"
                for k in np.flatnonzero(valid):
                    c = int(rec.classes[k])
                    if not 0 <= c < len(folders):
                        skipped["bad_class"] += 1
                        continue
                    win = crop_box(rec.boxes[k], w, h, pad, min_size)
                    if win is None:
                        skipped["too_small"] += 1
                        continue
                    x1, y1, x2, y2 = win
                    dst = tmp / split / folders[c] / f"{stem}_{k}.jpg"
                    if not cv2.imwrite(str(dst), img[y1:y2, x1:x2], params):
                        raise DatasetError(f"cannot write {dst.name} under {out.parent}: check free space and permissions")
                    counts[c] += 1
            report["splits"][split] = {"images": len(recs), "crops": int(counts.sum()),
                                       "per_class": {n: int(v) for n, v in zip(ds.names, counts)}, "skipped": skipped}
        atomic_write_text(tmp / CLASSES_FILE, "".join(f"{f}\n" for f in folders))
        atomic_write_text(tmp / REPORT_FILE, json.dumps(report, indent=1))
    return out


def read_crops_report(out: str | os.PathLike) -> dict:
    """The ``crops.json`` written by :func:`make_crops`: settings, and counts per split and class.

    Example:
        >>> read_crops_report("crops")["splits"]["train"]["crops"]  # doctest: +SKIP
        552
    """
    path = Path(out) / REPORT_FILE
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: {out} was not written by `edgekit data crops`")
    return json.loads(path.read_text(encoding="utf-8"))


def crops_to_text(report: dict) -> str:
    """A short table of crops per split and class, for the CLI.

    Example:
        >>> print(crops_to_text({"names": ["a"], "splits": {"val": {"crops": 2, "per_class": {"a": 2},
        ...       "skipped": {"too_small": 1}}}}))
        split      crops  a
        val            2  2  (skipped: too_small 1)
    """
    names = report["names"]
    widths = [max([len(n)] + [len(str(r["per_class"][n])) for r in report["splits"].values()]) for n in names]
    lines = [f"{'split':<8} {'crops':>7}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths))]
    for split, r in report["splits"].items():
        cells = "  ".join(f"{r['per_class'][n]:>{w}}" for n, w in zip(names, widths))
        skipped = ", ".join(f"{k} {v}" for k, v in r["skipped"].items() if v)
        lines.append(f"{split:<8} {r['crops']:>7}  {cells}" + (f"  (skipped: {skipped})" if skipped else ""))
    return "\n".join(lines)
