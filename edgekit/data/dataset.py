"""One in-memory representation for every dataset format (YOLO txt, COCO JSON, Pascal VOC).

A :class:`DetectionDataset` has class names and splits; each split is a list of
:class:`ImageRecord` with boxes in *pixel* xyxy coordinates of the original image (COCO's
convention), so readers, writers, training, validation and mAP all agree on one unit.
Problems found while reading (a label out of range, a degenerate box, a missing image)
are kept as :class:`Issue` entries instead of stopping the read: ``edgekit data check``
reports them, and training skips what is unusable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass
class Issue:
    """One problem found in a dataset.

    ``kind`` is one of: ``unreadable_image``, ``image_too_large``, ``missing_image``, ``label_without_image``,
    ``image_without_labels``, ``class_out_of_range``, ``box_out_of_bounds``,
    ``degenerate_box``, ``malformed_label``, ``unknown_class``.
    """

    kind: str
    split: str
    path: str
    detail: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "split": self.split, "path": self.path, "detail": self.detail}


@dataclass(eq=False)  # records hold arrays: compare by identity
class ImageRecord:
    """An image and its labelled boxes.

    Attributes:
        path: the image file.
        width, height: image size in pixels (0 when the image could not be read).
        boxes: (N, 4) float32 xyxy pixel boxes.
        classes: (N,) int64 class indices into the dataset's ``names``.
        iscrowd: (N,) bool, COCO crowd regions (ignored by mAP, never trained on).
        image_id: a stable id (COCO's id when read from COCO, else the index in its split).
    """

    path: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    iscrowd: np.ndarray | None = None
    image_id: int = 0

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.classes = np.asarray(self.classes, np.int64).reshape(-1)
        if self.iscrowd is None:
            self.iscrowd = np.zeros(len(self.classes), bool)
        self.iscrowd = np.asarray(self.iscrowd, bool).reshape(-1)

    def truth(self) -> dict:
        """This image's ground truth as :func:`edgekit.metrics.evaluate_detections` takes it.

        Example:
            >>> sorted(ImageRecord("a.jpg", 8, 8, [[0, 0, 4, 4]], [0]).truth())
            ['boxes', 'classes', 'iscrowd']
        """
        return {"boxes": self.boxes, "classes": self.classes, "iscrowd": self.iscrowd}

    def valid_mask(self) -> np.ndarray:
        """Boxes usable for training: positive width and height, not crowd."""
        wh = self.boxes[:, 2:] - self.boxes[:, :2]
        return (wh > 0).all(axis=1) & ~self.iscrowd


@dataclass
class DetectionDataset:
    """Class names plus up to three splits of :class:`ImageRecord`.

    Example:
        >>> ds = DetectionDataset(names=["fish"], splits={"train": []})
        >>> ds.num_classes
        1
    """

    names: list[str]
    splits: dict[str, list[ImageRecord]]
    root: Path | None = None
    source: str = ""
    format: str = ""
    issues: list[Issue] = field(default_factory=list)
    category_ids: list[int] | None = None  # COCO's own category ids, index-aligned with names
    label_paths: list[Path] = field(default_factory=list)  # label files/folders read (input_paths() lists them)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def split(self, name: str) -> list[ImageRecord]:
        """The records of one split; an :class:`EdgekitError` if the dataset has no such split."""
        from edgekit.errors import DatasetError

        name = {"valid": "val", "validation": "val"}.get(name, name)
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise DatasetError(f"{self.source or 'dataset'} has no '{name}' split (it has: {have}): add it to the data.yaml, "
                               f"or make train/val/test lists with `edgekit data split {self.source or 'DATA'}`")
        return self.splits[name]

    def input_paths(self) -> list[Path]:
        """What reading this dataset touched: its source, every folder holding its images, its label files/folders.

        An output must be none of these, contain none and lie inside none
        (:func:`edgekit.io.check_output_not_input`).

        Example:
            >>> from edgekit.data import load_dataset, sample_data_yaml
            >>> sorted({p.name for p in load_dataset(sample_data_yaml()).input_paths()})
            ['data.yaml', 'images', 'labels']
        """
        paths = [Path(self.source)] if self.source else []
        paths += dict.fromkeys(r.path.parent for recs in self.splits.values() for r in recs)
        return paths + list(self.label_paths)

    def counts(self) -> dict:
        """Images, boxes and boxes per class name, per split (JSON-able)."""
        out = {}
        for split, recs in self.splits.items():
            per_class = np.zeros(self.num_classes, np.int64)
            for r in recs:
                valid = r.classes[(r.classes >= 0) & (r.classes < self.num_classes)]
                per_class += np.bincount(valid, minlength=self.num_classes)
            out[split] = {
                "images": len(recs),
                "boxes": int(sum(len(r.classes) for r in recs)),
                "per_class": {n: int(c) for n, c in zip(self.names, per_class)},
            }
        return out


def normalize_names(names) -> list[str]:
    """Class names from a list or an ``{index: name}`` mapping (Ultralytics allows both).

    Example:
        >>> normalize_names({1: "b", 0: "a"})
        ['a', 'b']
    """
    from edgekit.errors import DatasetError

    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DatasetError("'names' keys must be class indices 0..N-1, e.g. {0: cat, 1: dog}") from None
        if keys != list(range(len(keys))):
            raise DatasetError(f"'names' keys must be 0..{len(keys) - 1} without gaps, got {keys}")
        return [str(names[k] if k in names else names[str(k)]) for k in keys]
    if isinstance(names, (list, tuple)) and names:
        return [str(n) for n in names]
    raise DatasetError("'names' must be a non-empty list of class names or a {index: name} mapping")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header without decoding the pixels; (0, 0) if unreadable.

    Example:
        >>> image_size(Path("missing.jpg"))
        (0, 0)
    """
    from edgekit.errors import EdgekitError
    from edgekit.runtime.model import image_header

    try:
        return image_header(path, limit=0)  # the size only: read_size judges the pixel limit
    except EdgekitError:
        return 0, 0


def read_size(path: Path, split: str, width: int = 0, height: int = 0) -> tuple[int, int, Issue | None]:
    """(width, height, None) of an image of a dataset, or (0, 0, the issue) when it cannot be used.

    The size comes from the annotation when it has one (COCO, VOC), else from the header. An image over
    the pixel limit (``edgekit.runtime.model.max_pixels``: a decompression bomb, or a photo too large to
    decode on a board) is an ``image_too_large`` issue, as an unreadable one is an ``unreadable_image``
    issue: ``edgekit data check`` lists them and training leaves them out.

    Example:
        >>> read_size(Path("bomb.png"), "train", 20000, 20000)[2].kind
        'image_too_large'
    """
    from edgekit.runtime.model import pixel_limit_error

    if width <= 0 or height <= 0:
        width, height = image_size(path)
        if width == 0:
            return 0, 0, Issue("unreadable_image", split, str(path), "not a readable image")
    reason = pixel_limit_error(path, width, height)
    if reason:
        return 0, 0, Issue("image_too_large", split, str(path), reason)
    return width, height, None
