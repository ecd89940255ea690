"""One calibration reader for every INT8 path, in onnxruntime's ``CalibrationDataReader`` shape.

Built from an image folder or a data.yaml split, with the *inference* letterbox
(:func:`edgekit.runtime.preprocess.preprocess`), so the activations the quantizer sees
are the ones the board will see. The selection is deterministic (evenly spaced over the
sorted file list) and hashed, and both are recorded in the artifact's manifest.

A missing or empty calibration source is an error, never a silent fallback to random data.

Calibration and verification never share an image: an in-sample check flatters the quantizer
(a detector calibrated on 3 photos passed parity on those 3, and was rejected on 100 others).
Images of the verification split are removed from the calibration pool by content, and a
calibration source without a labelled split gives up a held-out part for the parity check.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.model import IMAGE_SUFFIXES
DEFAULT_IMAGES = 100
# below this many images the quantization ranges rest on too few activations: export warns
# (ORT's and LiteRT's examples calibrate on 100-500; edgekit's default is 100)
FEW_IMAGES = 50
# A detector's raw head maps are logits: the decoder only ever passes them through sigmoid
# (xy, objectness, classes) or exp (wh), and beyond +-9.2 a sigmoid is within 1e-4 of 0 or 1
# (a box then scores below any threshold, or is certain). Background cells reach -25, so a
# calibrated per-tensor INT8 range of [-25, 13] spends most of its 256 steps where nothing can
# change; clipping the output ranges to +-9.2 halves the step where boxes are decided.
# benchmarks/int8_output_clip.py (Tiny-YOLOv3, Fish4Knowledge test): mAP50 delta tflite-int8
# -0.022 -> -0.006, onnx-int8 -0.020 -> +0.006. Not tighter: at +-6.9 (p = 0.001, the mAP
# threshold) the low-score tail that mAP counts is cut (-0.013 and +0.002).
DETECTION_LOGIT_CLIP = 9.2


def clipped(lo, hi, clip: float | None):
    """A calibrated (lo, hi) range (numbers or arrays) clipped to [-clip, clip]; unchanged when ``clip`` is None.

    Example:
        >>> clipped(-24.7, 13.5, 9.2), clipped(-3.0, 2.0, 9.2)
        ((-9.2, 9.2), (-3.0, 2.0))
    """
    if clip is None:
        return lo, hi
    low, high = np.maximum(lo, -clip), np.minimum(hi, clip)
    return (float(low), float(high)) if np.ndim(low) == 0 else (low, high)


def calibration_paths(source: str | Path, split: str = "train") -> list[Path]:
    """Image paths of a calibration source: a folder (recursive; an image-folder set's ``split``
    sub-folder when it has one) or a data.yaml split.

    Example:
        >>> from edgekit.data.sample import sample_data_yaml
        >>> len(calibration_paths(sample_data_yaml(), "train"))
        120
    """
    source = Path(source)
    if source.is_dir() and (source / split).is_dir():  # an image-folder set (root/train/<class>/...): its split
        source = source / split
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        where = f"folder {source}"
    elif source.is_file():
        from edgekit.data import load_dataset

        ds = load_dataset(source)
        if split not in ds.splits:
            split = next((s for s in ("train", "val", "test") if s in ds.splits), split)
        paths = sorted(r.path for r in ds.split(split))
        where = f"split '{split}' of {source}"
    else:
        raise EdgekitError(f"calibration source {source} does not exist: give --data DATA.yaml or --calib DIR of images")
    if not paths:
        raise EdgekitError(f"no images in {where}: INT8 needs real calibration images (--data DATA.yaml or --calib DIR)")
    return paths


def select_evenly(paths: list[Path], n: int) -> list[Path]:
    """``n`` paths evenly spaced over the sorted list (all of them when there are fewer).

    Example:
        >>> [p.name for p in select_evenly([Path(f"{i}.jpg") for i in range(10)], 3)]
        ['0.jpg', '4.jpg', '9.jpg']
    """
    if n <= 0:
        raise EdgekitError(f"--calib-images must be positive, got {n}")
    if len(paths) <= n:
        return list(paths)
    idx = np.linspace(0, len(paths) - 1, n).round().astype(int)
    return [paths[i] for i in idx]


def content_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes: the identity of an image whatever its name or folder.

    Example:
        >>> import tempfile, pathlib
        >>> a = pathlib.Path(tempfile.mkdtemp()) / "a.jpg"; _ = a.write_bytes(b"x")
        >>> content_digest(a)[:8]
        '2d711642'
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def split_pool(paths: list[Path], n: int, exclude=(), hold_out: int = 0) -> tuple[list[Path], list[Path], int]:
    """(calibration, held-out, excluded count) from a pool of image paths.

    Images whose content equals one in ``exclude`` (the verification images) are dropped;
    then ``hold_out`` evenly spaced images (at most a quarter of the pool) are set aside for
    verification, and ``n`` evenly
    spaced images of the rest calibrate. The three sets are disjoint by content.

    Example:
        >>> pool = [Path(f"{i}.jpg") for i in range(10)]
        >>> cal, held, _ = split_pool(pool, 3, hold_out=2)
        >>> [p.name for p in held], [p.name for p in cal]
        (['0.jpg', '9.jpg'], ['1.jpg', '5.jpg', '8.jpg'])
    """
    excluded = 0
    if exclude:
        # equal content means equal size: only pool files of a verification image's size are read and hashed
        sizes = {Path(p).stat().st_size for p in exclude}
        banned = {content_digest(p) for p in exclude}
        kept = [p for p in paths if p.stat().st_size not in sizes or content_digest(p) not in banned]
        excluded, paths = len(paths) - len(kept), kept
    # a small pool gives up at most a quarter (at least one image) so that most of it still calibrates
    held = select_evenly(paths, min(hold_out, max(1, len(paths) // 4))) if hold_out and len(paths) > 1 else []
    held_set = set(held)
    rest = [p for p in paths if p not in held_set]
    if not rest:
        why = (f"all {excluded} of its images are verification images" if excluded
               else "it has too few images to hold some out for verification")
        raise EdgekitError(f"no calibration images left: {why}; give --calib a folder of other images "
                           "(calibration and verification must not share images)")
    return select_evenly(rest, n), held, excluded


class CalibrationReader:
    """Letterboxed (or stretched, ``resize``: the model's own) NCHW float32 batches of one, served as
    ``{input_name: array}``.

    Works as an onnxruntime ``CalibrationDataReader`` (``get_next``/``rewind``), as an
    iterable of arrays (NNCF, LiteRT) and reports what it used (:meth:`info`).

    Example:
        >>> from edgekit.data.sample import sample_data_yaml
        >>> r = CalibrationReader.from_source(sample_data_yaml(), imgsz=64, images=4)
        >>> r.get_next()["images"].shape, len(r), r.info()["images"]
        ((1, 3, 64, 64), 4, 4)
    """

    def __init__(self, paths: list[Path], imgsz: int | tuple[int, int], input_name: str = "images", source: str = "",
                 split: str | None = None, available: int | None = None, held_out: list[Path] | None = None,
                 excluded: int = 0, resize: str = "letterbox"):
        import cv2

        from edgekit.runtime.model import image_header
        from edgekit.runtime.preprocess import check_resize, fit_image

        self.paths = list(paths)
        self.imgsz = imgsz
        self.input_name = input_name
        self.resize = check_resize(resize)
        self.source, self.split, self.available = str(source), split, available or len(paths)
        # verification images this source gave up (no labelled split), and how many it shared with one
        self.held_out, self.excluded = list(held_out or []), excluded
        self._images = []  # letterboxed HWC uint8: 4x smaller than the float tensors
        digest = hashlib.sha256()
        for p in self.paths:
            image_header(p)  # the pixel limit, from the header, before the bytes are read and decoded
            data = p.read_bytes()
            digest.update(p.name.encode() + hashlib.sha256(data).digest())
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise EdgekitError(f"calibration image {p} cannot be decoded: remove it or fix the file")
            self._images.append(fit_image(img, imgsz, self.resize)[0])
        self.hash = digest.hexdigest()[:16]
        self._pos = 0

    @classmethod
    def from_source(cls, source: str | Path, imgsz: int | tuple[int, int], images: int = DEFAULT_IMAGES,
                    split: str = "train", input_name: str = "images", exclude=(), hold_out: int = 0,
                    resize: str = "letterbox") -> "CalibrationReader":
        """Reader over ``images`` evenly chosen images of a folder or data.yaml split.

        ``exclude``: verification image paths, never calibrated on (compared by content);
        ``hold_out``: images to set aside for verification when there is no labelled split;
        ``resize``: the model's ``letterbox`` or ``stretch``, as inference resizes.
        """
        paths = calibration_paths(source, split)
        chosen, held, excluded = split_pool(paths, images, exclude, hold_out)
        return cls(chosen, imgsz, input_name, source, split if Path(source).is_file() else None,
                   available=len(paths), held_out=held, excluded=excluded, resize=resize)

    def __len__(self) -> int:
        return len(self._images)

    def tensor(self, k: int) -> np.ndarray:
        """Image ``k`` as the float model input: (1, 3, H, W) RGB in [0, 1]."""
        from edgekit.runtime.preprocess import to_tensor

        return to_tensor(self._images[k])

    def get_next(self) -> dict | None:
        if self._pos >= len(self._images):
            return None
        self._pos += 1
        return {self.input_name: self.tensor(self._pos - 1)}

    def rewind(self) -> None:
        self._pos = 0

    def __iter__(self):
        return (self.tensor(k) for k in range(len(self._images)))

    def info(self) -> dict:
        """What the manifest records: source, split, count, how chosen, content hash."""
        return {"source": self.source, "split": self.split, "images": len(self._images), "available": self.available,
                "selection": "evenly spaced over the sorted file list", "hash": self.hash,
                "excluded_verification_images": self.excluded, "held_out_for_verification": len(self.held_out),
                "preprocess": f"{self.resize} (same as inference)"}
