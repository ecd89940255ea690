"""``load_dataset``: one entry point for every dataset format."""

from __future__ import annotations

import os
from pathlib import Path

from edgekit.data.dataset import DetectionDataset
from edgekit.errors import DatasetError

FORMATS = ("yolo", "coco", "voc")


def load_dataset(source: str | os.PathLike) -> DetectionDataset:
    """Read a dataset from a data.yaml (any format), a COCO .json, or a VOC/YOLO folder.

    The format of a data.yaml is its ``format:`` key (``yolo`` when absent).

    Example:
        >>> from edgekit.data import load_dataset, sample_data_yaml
        >>> ds = load_dataset(sample_data_yaml())
        >>> ds.format, len(ds.split("val"))
        ('yolo', 40)
    """
    from edgekit.data.coco import read_coco
    from edgekit.data.voc import read_voc, voc_layout
    from edgekit.data.yolo import load_yaml, read_yolo

    src = Path(source)
    if src.is_dir():
        if (src / "data.yaml").is_file():
            src = src / "data.yaml"
        elif voc_layout(src):
            return read_voc(src)
        else:
            raise DatasetError(f"{src} has no data.yaml and no VOC annotations folder of .xml files: give the data.yaml path")
    if not src.exists():
        raise DatasetError(f"{src} does not exist: give the path to a data.yaml, a COCO .json or a VOC folder")
    if src.suffix.lower() == ".json":
        return read_coco(src)
    if src.suffix.lower() not in (".yaml", ".yml"):
        raise DatasetError(f"{src}: expected a data.yaml, a COCO .json or a dataset folder")
    cfg = load_yaml(src)
    fmt = str(cfg.get("format", "yolo")).lower()
    if fmt == "yolo":
        return read_yolo(src, cfg)
    if fmt == "coco":
        return read_coco(src, cfg)
    if fmt == "voc":
        return read_voc(src, cfg)
    raise DatasetError(f"{src}: unknown format '{fmt}': use one of {', '.join(FORMATS)}")


def convert_dataset(source: str | os.PathLike, to: str, out: str | os.PathLike, link: bool = False,
                    overwrite: bool = False) -> Path:
    """Convert a dataset to another format under ``out``; returns the new data.yaml.

    The output is built under a temporary name and moved into place only when complete.

    Example:
        >>> import tempfile, pathlib
        >>> from edgekit.data import sample_data_yaml
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "coco"
        >>> convert_dataset(sample_data_yaml(), "coco", out).name
        'data.yaml'
    """
    from edgekit.data.coco import write_coco
    from edgekit.data.voc import write_voc
    from edgekit.data.yolo import write_yolo
    from edgekit.io import atomic_dir, check_output_not_input

    writers = {"yolo": write_yolo, "coco": write_coco, "voc": write_voc}
    if to not in writers:
        raise DatasetError(f"unknown target format '{to}': use one of {', '.join(FORMATS)}")
    ds = load_dataset(source)
    out = Path(out)
    check_output_not_input(out, ds.input_paths())  # --overwrite of the source folder would delete it
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writers[to](ds, tmp, link=link)
    return out / "data.yaml"
