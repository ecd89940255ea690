"""``edgekit data check``: is this dataset usable, and what is wrong with it?

Reading a dataset already records label problems (see :class:`edgekit.data.Issue`); the
check adds a full decode of every image (headers can be fine while the pixels are
truncated) and decides whether the dataset can be used at all. Only a dataset that cannot
be used is an error (exit 1): no train or val split, or a split without a readable image.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from edgekit.data.dataset import DetectionDataset, Issue
from edgekit.data.loader import load_dataset

# issues that make a label or image unusable (the rest are informational)
WARNING_KINDS = {"unreadable_image", "image_too_large", "missing_image", "label_without_image", "class_out_of_range",
                 "malformed_label", "unknown_class", "degenerate_box", "box_out_of_bounds"}


@dataclass
class CheckReport:
    """What ``check_dataset`` found; ``to_dict()`` is the ``--json`` output."""

    source: str
    format: str
    names: list[str]
    counts: dict
    issues: list[Issue]
    fatal: list[str] = field(default_factory=list)
    box_sizes: dict = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return not self.fatal

    def issue_counts(self) -> dict:
        return dict(sorted(Counter(i.kind for i in self.issues).items()))

    def to_dict(self, examples: int = 20) -> dict:
        by_kind = defaultdict(list)
        for i in self.issues:
            by_kind[i.kind].append(i.to_dict())
        return {
            "source": self.source,
            "format": self.format,
            "usable": self.usable,
            "fatal": self.fatal,
            "names": self.names,
            "splits": self.counts,
            "box_size_px": self.box_sizes,
            "issue_counts": self.issue_counts(),
            "issues": {k: v[:examples] for k, v in sorted(by_kind.items())},
        }

    def to_text(self) -> str:
        lines = [f"{self.source} ({self.format}, {len(self.names)} classes: {', '.join(self.names)})"]
        for split, c in self.counts.items():
            per = ", ".join(f"{n}: {k}" for n, k in c["per_class"].items())
            lines.append(f"  {split:5s} {c['images']:6d} images {c['boxes']:7d} boxes   {per}")
        for split, q in self.box_sizes.items():
            w, h = q["median"]
            lines.append(f"  {split:5s} box w x h in pixels: median {w:g}x{h:g}, 5% {q['p5'][0]:g}x{q['p5'][1]:g}, "
                         f"95% {q['p95'][0]:g}x{q['p95'][1]:g}")
        for kind, n in self.issue_counts().items():
            mark = "!" if kind in WARNING_KINDS else " "
            first = next(i for i in self.issues if i.kind == kind)
            lines.append(f"  {mark} {kind}: {n}  (e.g. {os.path.basename(first.path)}: {first.detail})")
        lines.append("  usable: yes" if self.usable else "  NOT USABLE: " + "; ".join(self.fatal))
        return "\n".join(lines)


def decode_images(ds: DetectionDataset, progress: bool = True) -> list[Issue]:
    """Fully decode every image and report the ones that fail.

    Pillow's ``load()`` is used because it raises on a truncated file, where OpenCV's
    ``imread`` pads the missing rows with grey and only prints a warning.
    """
    from PIL import Image
    from tqdm import tqdm

    from edgekit.errors import EdgekitError, ImageTooLargeError
    from edgekit.runtime.model import image_header

    bad, issues = [], []
    items = [(split, rec) for split, recs in ds.splits.items() for rec in recs]
    for split, rec in tqdm(items, desc="decoding images", disable=not progress, leave=False):
        try:
            image_header(rec.path)  # the pixel limit, from the header, before a byte is decoded
        except EdgekitError as exc:
            too_large = isinstance(exc, ImageTooLargeError)
            issues.append(Issue("image_too_large" if too_large else "unreadable_image", split, str(rec.path),
                                str(exc) if too_large else "not a readable image"))
            bad.append((split, rec))
            continue
        try:
            with Image.open(rec.path) as im:
                im.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            issues.append(Issue("unreadable_image", split, str(rec.path), "truncated or corrupt: the pixels cannot be decoded"))
            bad.append((split, rec))
    bad_ids = {id(rec) for _, rec in bad}
    for split in ds.splits:
        ds.splits[split] = [r for r in ds.splits[split] if id(r) not in bad_ids]
    return issues


def box_sizes(ds: DetectionDataset) -> dict:
    """Per split, the 5th/50th/95th percentile of box width and height in original pixels.

    The number that decides the input size: a box must stay several pixels wide after the
    letterbox, and a head's stride should not dwarf it.

    Example:
        >>> from edgekit.data import load_dataset, sample_data_yaml
        >>> box_sizes(load_dataset(sample_data_yaml()))["train"]["median"]
        [14.0, 10.0]
    """
    import numpy as np

    out = {}
    for split, recs in ds.splits.items():
        boxes = [r.boxes[r.valid_mask()] for r in recs]
        wh = np.concatenate([b[:, 2:] - b[:, :2] for b in boxes]) if boxes else np.zeros((0, 2))
        if len(wh):
            out[split] = {name: np.percentile(wh, q, axis=0).round(1).tolist()
                          for name, q in (("p5", 5), ("median", 50), ("p95", 95))}
    return out


def check_dataset(source: str | os.PathLike | DetectionDataset, decode: bool = True, progress: bool = False) -> CheckReport:
    """Read a dataset, decode its images and report counts, issues and usability.

    Example:
        >>> from edgekit.data import sample_data_yaml
        >>> report = check_dataset(sample_data_yaml())
        >>> report.usable, report.counts["train"]["images"]
        (True, 120)
    """
    ds = source if isinstance(source, DetectionDataset) else load_dataset(source)
    issues = list(ds.issues)
    if decode:
        issues += decode_images(ds, progress)
    fatal = []
    if "train" not in ds.splits and "val" not in ds.splits:
        fatal.append("no train or val split")
    for split, recs in ds.splits.items():
        if not recs:
            fatal.append(f"split '{split}' has no readable image")
    labelled = sum(len(r.classes) for recs in ds.splits.values() for r in recs)
    if labelled == 0 and not fatal:
        fatal.append("no labelled box in any split")
    return CheckReport(ds.source, ds.format, ds.names, ds.counts(), issues, fatal, box_sizes(ds))
