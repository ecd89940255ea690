"""Image-folder classification datasets: ``root/<split>/<class>/<image>``.

The layout torchvision's ``ImageFolder`` and Ultralytics' classify datasets use, and what
``edgekit data crops`` writes. Splits are ``train``, ``val`` (or ``valid``/``validation``)
and ``test``. Class names come from ``root/classes.txt`` (one per line, in index order)
when present, else from the sorted sub-folders of ``train``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.data.dataset import SPLITS
from edgekit.errors import DatasetError
from edgekit.runtime.model import IMAGE_SUFFIXES

SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
CROPS_HINT = "cut one from a detection dataset with `edgekit data crops DATA.yaml --out DIR`"


@dataclass
class ClassificationDataset:
    """Class names plus up to three splits of ``(image path, class index)``.

    Example:
        >>> ds = ClassificationDataset(names=["a", "b"], splits={"train": [(Path("x.jpg"), 1)]})
        >>> ds.num_classes, ds.counts()["train"]["per_class"]
        (2, {'a': 0, 'b': 1})
    """

    names: list[str]
    splits: dict[str, list[tuple[Path, int]]]
    root: Path | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def split(self, name: str) -> list[tuple[Path, int]]:
        """The items of one split; an :class:`EdgekitError` if the dataset has no such split."""
        name = {"valid": "val", "validation": "val"}.get(name, name)
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise DatasetError(f"{self.source or 'dataset'} has no '{name}' split (it has: {have}): "
                               f"add a {name}/ folder with one sub-folder per class")
        return self.splits[name]

    def counts(self) -> dict:
        """Images per split and per class name (JSON-able)."""
        out = {}
        for split, items in self.splits.items():
            per = [0] * self.num_classes
            for _, c in items:
                per[c] += 1
            out[split] = {"images": len(items), "per_class": dict(zip(self.names, per))}
        return out


def items_hash(items: list[tuple[Path, int]]) -> str:
    """A short hash of a split's file names and labels: which data a checkpoint saw.

    Example:
        >>> len(items_hash([(Path("a/x.jpg"), 0)]))
        16
    """
    h = hashlib.sha256()
    for path, c in items:
        h.update(f"{Path(path).parent.name}/{Path(path).name}:{c}\n".encode())
    return h.hexdigest()[:16]


def read_classes_file(path: Path) -> list[str]:
    """Class names from a ``classes.txt``: one per non-empty line, in index order, no duplicates."""
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    if not names:
        raise DatasetError(f"{path} is empty: list one class name per line, or delete it to use the train/ sub-folders")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"{path} lists {', '.join(dup)} more than once: keep each class name once")
    return names


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_dirs(split_dir: Path) -> dict[str, Path]:
    return {d.name: d for d in sorted(split_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")}


def load_image_folder(root: str | os.PathLike) -> ClassificationDataset:
    """Read ``root/<split>/<class>/*`` into a :class:`ClassificationDataset`.

    Args:
        root: the dataset folder, holding ``train/`` and usually ``val/`` and ``test/``.

    Returns:
        The dataset: names (``classes.txt`` order, else sorted ``train/`` sub-folders) and,
        per split present, the sorted ``(path, class index)`` items.

    Raises:
        DatasetError: root or ``train/`` missing, no class folders, no images in a split, a
            class folder that is not a known class, or a ``classes.txt`` naming absent folders.

    Example:
        >>> import tempfile, pathlib
        >>> from edgekit.data import sample_data_yaml
        >>> from edgekit.data.crops import make_crops
        >>> out = make_crops(sample_data_yaml(), pathlib.Path(tempfile.mkdtemp()) / "c", splits=["train"])
        >>> ds = load_image_folder(out)
        >>> ds.names, len(ds.split("train"))
        (['0', '1', '2', '5', '6', '7', '8'], 521)
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root} does not exist: give an image-folder dataset (root/train/<class>/*.jpg), or {CROPS_HINT}")
    if root.is_file():
        raise DatasetError(f"{root} is a file, not an image-folder dataset (root/train/<class>/*.jpg): {CROPS_HINT}")
    found = {}
    for split, aliases in SPLIT_FOLDERS.items():
        for a in aliases:
            if (root / a).is_dir():
                found[split] = root / a
                break
    if "train" not in found:
        raise DatasetError(f"{root} has no train/ folder: expected root/train/<class>/*.jpg; {CROPS_HINT}")
    train_classes = _class_dirs(found["train"])
    classes_file = root / "classes.txt"
    if classes_file.is_file():
        names = read_classes_file(classes_file)
        missing = [n for n in names if n not in train_classes]
        if missing:
            raise DatasetError(f"{classes_file} names {', '.join(missing)} but {found['train']} has no such folder: "
                               "fix classes.txt or add the folders")
    else:
        names = sorted(train_classes)
    if not names:
        raise DatasetError(f"{found['train']} has no class sub-folders: put each class's images in train/<class name>/")
    index = {n: i for i, n in enumerate(names)}
    splits: dict[str, list[tuple[Path, int]]] = {}
    for split in SPLITS:
        if split not in found:
            continue
        items = []
        for cname, cdir in _class_dirs(found[split]).items():
            if cname not in index:
                raise DatasetError(f"{cdir} is not one of the classes ({', '.join(names)}): "
                                   "rename or remove it, or add it to train/ (and classes.txt)")
            items += [(p, index[cname]) for p in _images(cdir)]
        if not items:
            raise DatasetError(f"{found[split]} holds no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders: "
                               f"add images or remove the {found[split].name}/ folder")
        splits[split] = items
    return ClassificationDataset(names=names, splits=splits, root=root.resolve(), source=str(root))
