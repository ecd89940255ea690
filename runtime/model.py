"""The base of every runtime model: image input handling and the ``predict`` contract.

A runtime model (``Detector``, ``Classifier``, a foreign SSD, a YAML-described ONNX, raw
mode) implements ``predict_one(image, **options)`` for one BGR image and ``describe()``;
this base turns paths, single images and batches into BGR uint8 arrays and returns one
result per image. numpy only at module level; OpenCV is imported when a path is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError

# the image files edgekit reads everywhere (datasets, calibration, predict, video folders): one list
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: str | Path) -> np.ndarray:
    """A BGR uint8 image from a file; one clear error when it is missing or not an image.

    Example:
        >>> read_image("no-such.jpg")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        edgekit.errors.EdgekitError: no-such.jpg does not exist: give the path to an image file
    """
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"{path} does not exist: give the path to an image file")
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
        raise EdgekitError(f"an image must be HxWx3 BGR (or gray HxW), got an array of shape {img.shape}")
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
