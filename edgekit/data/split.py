"""``edgekit data split``: train/val/test split lists and a data.yaml for a dataset that has none.

Every image of the dataset (all its current splits pooled) is shuffled with the seed and cut into
train/val/test by the fractions. What is written:

- ``OUT/splits/{train,val,test}.txt``: image paths (YOLO) or annotation ids (VOC), relative to
  the dataset root, so a split travels with the folder;
- ``OUT/data.yaml``: the format, ``path`` (the dataset root, relative to OUT when it can be),
  the folders, ``names`` and the three lists.

``OUT`` defaults to the dataset's folder: the files are added beside the data, nothing there is
changed. A file the dataset was read from (its own data.yaml, its ImageSets lists) is never
overwritten, even with ``overwrite=True``, unless an earlier ``edgekit data split`` wrote it (re-splitting
with another seed or other fractions). COCO sets are refused (one .json
holds the split): convert them first (``edgekit data convert --to yolo``).
"""

from __future__ import annotations

import os
from pathlib import Path

from edgekit.errors import DatasetError

SPLITS = ("train", "val", "test")


def split_sizes(n: int, val: float, test: float) -> dict[str, int]:
    """How many of ``n`` images go to each split (val and test rounded, at least one each when asked).

    Example:
        >>> split_sizes(100, 0.15, 0.15)
        {'train': 70, 'val': 15, 'test': 15}
        >>> split_sizes(5, 0.1, 0.0)
        {'train': 4, 'val': 1, 'test': 0}
    """
    if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise DatasetError(f"--val {val} and --test {test} must be fractions in [0, 1) summing to less than 1")
    n_val = max(1, round(n * val)) if val > 0 else 0
    n_test = max(1, round(n * test)) if test > 0 else 0
    if n - n_val - n_test < 1:
        raise DatasetError(f"{n} images cannot give a train split beside {n_val} val and {n_test} test images: "
                           "lower --val/--test or add images")
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def split_dataset(source: str | os.PathLike, val: float = 0.15, test: float = 0.15, seed: int = 0,
                  out: str | os.PathLike | None = None, overwrite: bool = False) -> dict:
    """Write split lists and a data.yaml for ``source``; returns ``{"data", "counts", "seed"}``.

    Example:
        >>> import shutil, tempfile, pathlib
        >>> from edgekit.data import sample_data_yaml
        >>> out = pathlib.Path(tempfile.mkdtemp())
        >>> r = split_dataset(sample_data_yaml(), val=0.2, test=0.1, seed=1, out=out)
        >>> r["counts"]["val"]["images"], pathlib.Path(r["data"]).name
        (40, 'data.yaml')
    """
    import numpy as np
    import yaml

    from edgekit.data.loader import load_dataset
    from edgekit.io import atomic_write_text

    ds = load_dataset(source)
    if ds.format not in ("yolo", "voc"):
        raise DatasetError(f"{source}: data split writes YOLO or VOC split lists; convert this {ds.format} set "
                           "first with `edgekit data convert --to yolo`")
    records = list({rec.path.resolve(): rec for recs in ds.splits.values() for rec in recs}.values())
    records.sort(key=lambda r: str(r.path))
    if not records:
        raise DatasetError(f"{source} has no readable labelled images to split: check it with `edgekit data check`")
    sizes = split_sizes(len(records), val, test)
    order = np.random.default_rng(seed).permutation(len(records))

    root = Path(ds.root).resolve()
    out = Path(out).resolve() if out is not None else root
    lists = {s: out / "splits" / f"{s}.txt" for s in SPLITS if sizes[s]}
    targets = [out / "data.yaml", *lists.values()]
    inputs = {Path(os.path.realpath(p)) for p in ds.input_paths()} - _own_split_files(source)
    for t in targets:
        if Path(os.path.realpath(t)) in inputs:
            raise DatasetError(f"{t} is a file this dataset was read from: give --out another folder")
        if t.exists() and not overwrite:
            raise DatasetError(f"{t} exists: pass --overwrite to replace it, or give --out another folder")

    def entry(rec) -> str:  # VOC lists hold annotation ids, YOLO lists image paths (relative to the root)
        return rec.path.stem if ds.format == "voc" else os.path.relpath(rec.path.resolve(), root)

    start, counts, texts = 0, {}, {}
    for s in SPLITS:
        chosen = [records[i] for i in order[start:start + sizes[s]]]
        start += sizes[s]
        if not chosen:
            continue
        texts[s] = "".join(entry(r) + "\n" for r in sorted(chosen, key=lambda r: str(r.path)))
        per_class = np.bincount(np.concatenate([np.asarray(r.classes, int) for r in chosen]), minlength=len(ds.names))
        counts[s] = {"images": len(chosen), "boxes": int(per_class.sum()),
                     "per_class": {ds.names[c]: int(k) for c, k in enumerate(per_class)}}

    cfg: dict = {"format": ds.format, "path": os.path.relpath(root, out) if _related(root, out) else str(root)}
    if ds.format == "voc":
        from edgekit.data.voc import voc_layout

        layout = voc_layout(root) or {"annotations": "Annotations", "images": "JPEGImages"}
        cfg.update(annotations=layout["annotations"], images=layout["images"])
    cfg["names"] = list(ds.names)
    for s in texts:
        cfg[s] = os.path.relpath(lists[s], root)
    cfg["split"] = {"seed": seed, "val": val, "test": test, "tool": "edgekit data split"}

    for s, text in texts.items():  # each file whole or absent; the data.yaml last, so no yaml names a missing list
        lists[s].parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(lists[s], text)
    atomic_write_text(out / "data.yaml", yaml.safe_dump(cfg, sort_keys=False))
    return {"data": str(out / "data.yaml"), "counts": counts, "seed": seed}


def _related(root: Path, out: Path) -> bool:
    """Whether a relative ``path:`` from ``out`` to ``root`` stays readable (same tree, not via /)."""
    try:
        return os.path.commonpath([root, out]) != os.sep
    except ValueError:
        return False


def _own_split_files(source) -> set[Path]:
    """The data.yaml and lists an earlier ``edgekit data split`` wrote (marked ``split.tool``), if ``source`` is one."""
    from edgekit.data.yolo import load_yaml

    src = Path(source)
    yaml_path = src / "data.yaml" if src.is_dir() else src
    if yaml_path.suffix.lower() not in (".yaml", ".yml") or not yaml_path.is_file():
        return set()
    cfg = load_yaml(yaml_path)
    if not isinstance(cfg.get("split"), dict) or cfg["split"].get("tool") != "edgekit data split":
        return set()
    base = yaml_path.parent
    root = (base / str(cfg.get("path", "."))).resolve()
    return {Path(os.path.realpath(yaml_path))} | {Path(os.path.realpath(root / str(cfg[s]))) for s in SPLITS if cfg.get(s)}
