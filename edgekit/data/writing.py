"""Small helpers shared by the dataset writers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from edgekit.data.dataset import ImageRecord


def unique_names(records: list[ImageRecord]) -> list[str]:
    """File names for a split's images, made unique when two folders hold the same name.

    Example:
        >>> unique_names([ImageRecord("a/x.jpg", 1, 1), ImageRecord("b/x.jpg", 1, 1)])
        ['x.jpg', '1_x.jpg']
    """
    seen: set[str] = set()
    names = []
    for i, rec in enumerate(records):
        name = rec.path.name
        if name in seen:
            name = f"{i}_{name}"
        seen.add(name)
        names.append(name)
    return names


def place_image(src: Path, dst: Path, link: bool) -> None:
    """Copy (or symlink, with ``link``) an image into a dataset being written."""
    if dst.exists():
        return
    if link:
        os.symlink(Path(src).resolve(), dst)
    else:
        shutil.copy2(src, dst)
