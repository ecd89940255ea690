"""Builders of the bad inputs of the corpus (tests/hardening/test_bad_input_corpus.py): all made here,
small, in a test's temporary folder; no binary is stored in the repository."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

NAMES = ["a", "b"]


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width`` x ``height`` but holds one tiny IDAT: the 661-byte bomb kind."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(body)
    return path


def png_that_decodes_big(path: Path, width: int = 8000, height: int = 8000) -> Path:
    """A real, complete grey PNG of ``width`` x ``height`` (64 MP by default, over the 50 MP limit), a few
    hundred kB on disk: every row compresses to almost nothing. Decoded as BGR it would take 192 MB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\0" + b"\x80" * width  # filter byte 0, mid-grey
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


def image(path: Path, w: int = 96, h: int = 64, seed: int = 0) -> Path:
    import cv2

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return path


def yolo_dataset(root: Path, n_train: int = 4, n_val: int = 2, names=NAMES) -> Path:
    """A small valid YOLO dataset: data.yaml, train/ and valid/ images with one box each."""
    for split, n in (("train", n_train), ("valid", n_val)):
        for i in range(n):
            image(root / split / "images" / f"{split}{i}.png", seed=i + (100 if split == "valid" else 0))
            lbl = root / split / "labels" / f"{split}{i}.txt"
            lbl.parent.mkdir(parents=True, exist_ok=True)
            lbl.write_text(f"{i % len(names)} 0.5 0.5 0.3 0.4\n")
    yaml = root / "data.yaml"
    yaml.write_text(f"path: {root}\ntrain: train/images\nval: valid/images\nnames: {list(names)}\n")
    return yaml


def coco_dataset(root: Path) -> Path:
    """A small valid COCO dataset (data.yaml + two annotation files)."""
    import json

    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 3), ("val", 2)):
        imgs, anns = [], []
        for i in range(n):
            image(root / "images" / split / f"{i}.png", seed=i)
            imgs.append({"id": i + 1, "file_name": f"{i}.png", "width": 96, "height": 64})
            anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [10, 10, 30, 20], "area": 600, "iscrowd": 0})
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"{split}.json").write_text(json.dumps(
            {"images": imgs, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    yaml = root / "data.yaml"
    yaml.write_text(f"format: coco\npath: {root}\ntrain: {{annotations: annotations/train.json, images: images/train}}\n"
                    "val: {annotations: annotations/val.json, images: images/val}\n")
    return yaml


def voc_folder(root: Path, n: int = 3) -> Path:
    """A small VOC root: Annotations/*.xml and JPEGImages/*.png."""
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image(root / "JPEGImages" / f"{i}.png", seed=i)
        (root / "Annotations" / f"{i}.xml").write_text(
            f"<annotation><filename>{i}.png</filename><size><width>96</width><height>64</height><depth>3</depth></size>"
            f"<object><name>{NAMES[i % 2]}</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>40</xmax><ymax>30</ymax>"
            "</bndbox></object></annotation>")
    return root


def tree_hash(*paths) -> str:
    """One digest of every file (name, bytes, symlink target) under ``paths``: inputs must not change."""
    h = hashlib.sha256()
    for top in paths:
        top = Path(top)
        if not top.exists() and not top.is_symlink():
            h.update(b"absent" + str(top).encode())
            continue
        files = [top] if not top.is_dir() else sorted(top.rglob("*"))
        for f in files:
            h.update(str(f).encode())
            if f.is_symlink():
                h.update(os.readlink(f).encode())
            elif f.is_file():
                h.update(f.read_bytes())
    return h.hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary names an edgekit writer leaves if it does not clean up."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and
                  (p.name.endswith(".tmp") or p.name.startswith(".staging-") or ".old-" in p.name))
