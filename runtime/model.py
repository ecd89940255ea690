"""The base of every runtime model: image input handling and the ``predict`` contract.

A runtime model (``Detector``, ``Classifier``, a foreign SSD, a YAML-described ONNX, raw
mode) implements ``predict_one(image, **options)`` for one BGR image and ``describe()``;
this base turns paths, single images and batches into BGR uint8 arrays and returns one
result per image. numpy only at module level; OpenCV is imported when a path is read.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, ImageTooLargeError

# the image files edgekit reads everywhere (datasets, calibration, predict, video folders): one list
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


# pixels one image may have (width x height): a 661-byte PNG can declare 20000x20000 (1.2 GB decoded as BGR),
# which kills a 1 GB board; 50 MP is a 8660x5774 photo, larger than any camera edgekit models see
DEFAULT_MAX_PIXELS = 50_000_000
MAX_PIXELS_ENV = "EDGEKIT_MAX_PIXELS"
_PIL_LIMIT = threading.Lock()  # Pillow's limit is a module global: readers in threads take turns switching it off


def max_pixels() -> int:
    """The pixel limit of one image: ``$EDGEKIT_MAX_PIXELS`` when set (0 = no limit), else 50 MP.

    Example:
        >>> max_pixels()  # doctest: +SKIP
        50000000
    """
    import os

    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        value = -1
    if value < 0:
        raise EdgekitError(f"{MAX_PIXELS_ENV}={text!r} is not a pixel count: set a whole number such as 100000000 "
                           "(0 = no limit), or unset it")
    return value


def pixel_limit_error(path, width: int, height: int, limit: int | None = None) -> str | None:
    """The one-line reason an image of ``width`` x ``height`` is refused, or None when it is within the limit.

    Example:
        >>> pixel_limit_error("bomb.png", 20000, 20000, limit=50_000_000)
        'bomb.png is 20000x20000 pixels (400 MP), over the limit of 50 MP: downscale it, or raise the limit with EDGEKIT_MAX_PIXELS=400000000'
        >>> pixel_limit_error("ok.jpg", 640, 480) is None
        True
    """
    limit = max_pixels() if limit is None else limit
    if not limit or width * height <= limit:
        return None
    return (f"{path} is {width}x{height} pixels ({width * height / 1e6:.0f} MP), over the limit of {limit / 1e6:g} MP: "
            f"downscale it, or raise the limit with {MAX_PIXELS_ENV}={width * height}")


def image_header(path: str | Path, limit: int | None = None) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels; refused over the pixel limit.

    The header is read by Pillow (imported here, not at module level: the device side is numpy-only
    there); Pillow's own decompression-bomb check is replaced by edgekit's limit and its one-line error.
    EXIF-rotated images (orientation 5-8) report the rotated size, as OpenCV decodes them.

    Raises:
        EdgekitError: missing file or not an image; ImageTooLargeError (an EdgekitError): over the pixel limit.

    Example:
        >>> image_header("no-such.png")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        edgekit.errors.EdgekitError: no-such.png does not exist: give the path to an image file
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"{path} does not exist: give the path to an image file")
    limit = max_pixels() if limit is None else limit
    try:
        with _PIL_LIMIT, warnings.catch_warnings():
            saved = Image.MAX_IMAGE_PIXELS
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None  # the size is judged below, by edgekit's limit, with its message
            try:
                with Image.open(path) as im:
                    w, h = int(im.width), int(im.height)
                    try:
                        rotated = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
                    except Exception:  # a broken EXIF block does not make the pixels unreadable
                        rotated = False
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise EdgekitError(f"{path} is not a readable image ({reason}): give a .jpg/.png/.bmp file") from None
    if rotated:
        w, h = h, w
    if w <= 0 or h <= 0:
        raise EdgekitError(f"{path} declares an empty image ({w}x{h}): give an image with pixels")
    reason = pixel_limit_error(path, w, h, limit)
    if reason:
        raise ImageTooLargeError(reason)
    return w, h


def read_image(path: str | Path, limit: int | None = None) -> np.ndarray:
    """A BGR uint8 image from a file; one clear error when it is missing, not an image, or too large.

    Every image edgekit reads from a file (datasets, training, calibration, predict, video folders)
    comes through here: the header is checked against the pixel limit (:func:`max_pixels`) *before*
    anything is decoded, so a decompression bomb costs a few bytes of reading, not gigabytes.

    Example:
        >>> read_image("no-such.jpg")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        edgekit.errors.EdgekitError: no-such.jpg does not exist: give the path to an image file
    """
    path = Path(path)
    image_header(path, limit)
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise EdgekitError(f"{path} is not an image OpenCV can decode: give a .jpg/.png/.bmp file")
    return img


def as_bgr(image) -> np.ndarray:
    """One image (path, HxW gray, HxWx3 BGR, HxWx4 BGRA) as a contiguous HxWx3 uint8 BGR array.

    uint16 images (16-bit PNG/TIFF, machine-vision cameras) are scaled to 8 bits, not clipped;
    floats in [0, 1] are scaled by 255.

    Example:
        >>> as_bgr(np.full((2, 2, 3), 65535, np.uint16))[0, 0].tolist()
        [255, 255, 255]
        >>> as_bgr(np.zeros((0, 4, 3), np.uint8))
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: an empty image (shape (0, 4, 3)): give an image with pixels
    """
    if isinstance(image, (str, Path)):
        return read_image(image)
    img = np.asarray(image)
    if img.size == 0:
        raise EdgekitError(f"an empty image (shape {img.shape}): give an image with pixels")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise EdgekitError(f"an image array of shape {img.shape}: give HxWx3 BGR, HxWx4 BGRA or HxW grey")
    if img.dtype != np.uint8:
        if img.dtype.kind == "f" and img.size and float(img.max()) <= 1.0:
            img = img * 255.0
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def as_batch(image_or_batch) -> tuple[list[np.ndarray], bool]:
    """(list of BGR images, whether the input was a batch): a list/tuple or an NxHxWx3 array is a batch.

    Example:
        >>> imgs, batch = as_batch(np.zeros((2, 8, 8, 3), np.uint8))
        >>> len(imgs), batch
        (2, True)
    """
    if isinstance(image_or_batch, (list, tuple)):
        return [as_bgr(i) for i in image_or_batch], True
    if isinstance(image_or_batch, np.ndarray) and image_or_batch.ndim == 4:
        return [as_bgr(i) for i in image_or_batch], True
    return [as_bgr(image_or_batch)], False


class RuntimeModel:
    """Base of the models ``edgekit.runtime.load`` returns.

    Subclasses set ``task`` ("detect", "classify" or "raw") and ``names``, and implement
    :meth:`predict_one` and :meth:`describe`.
    """

    task = "raw"
    names: list[str] = []

    def predict_one(self, image: np.ndarray, **options):
        raise NotImplementedError

    def predict(self, image_or_batch, **options):
        """Run on an image (path or BGR array) or a batch (list, or NxHxWx3): one result per image.

        Example:
            >>> det = load("fish-tflite-int8.tflite")  # doctest: +SKIP
            >>> det.predict("fish.jpg", conf=0.3).to_json()  # doctest: +SKIP
        """
        images, batch = as_batch(image_or_batch)
        results = [self.predict_one(img, **options) for img in images]
        return results if batch else results[0]

    __call__ = predict

    def describe(self) -> dict:
        raise NotImplementedError
