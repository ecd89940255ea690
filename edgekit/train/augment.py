"""Training augmentation on letterboxed images: random affine (scale/translate), flip, HSV.

Works on HxWx3 BGR uint8 images and (N, 4) xyxy pixel boxes; numpy + OpenCV only, so it
runs in data-loader workers without touching torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentOptions:
    """Augmentation strengths (0 turns one off). Defaults follow YOLOv5's 'scratch-low' hyps."""

    scale: float = 0.5       # random zoom in [1 - scale, 1 + scale]
    translate: float = 0.1   # random shift, fraction of the image size
    fliplr: float = 0.5      # probability of a horizontal flip
    hsv_h: float = 0.015     # hue gain
    hsv_s: float = 0.7       # saturation gain
    hsv_v: float = 0.4       # value gain
    min_size: float = 2.0    # boxes smaller than this (pixels) after augmentation are dropped
    min_area_kept: float = 0.2  # boxes that lost more than 80 % of their area to the border are dropped


def random_affine(img: np.ndarray, boxes: np.ndarray, classes: np.ndarray, rng: np.random.Generator,
                  opts: AugmentOptions, border: int = 114):
    """Zoom and shift about the image centre; boxes follow and are clipped or dropped.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> img = np.zeros((64, 64, 3), np.uint8)
        >>> out, b, c = random_affine(img, np.array([[20., 20., 40., 40.]]), np.array([0]), rng, AugmentOptions())
        >>> out.shape, b.shape[1]
        ((64, 64, 3), 4)
    """
    import cv2

    h, w = img.shape[:2]
    s = rng.uniform(1 - opts.scale, 1 + opts.scale)
    tx = rng.uniform(-opts.translate, opts.translate) * w
    ty = rng.uniform(-opts.translate, opts.translate) * h
    m = np.array([[s, 0, (1 - s) * w / 2 + tx], [0, s, (1 - s) * h / 2 + ty]], np.float32)
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(border,) * 3)
    if len(boxes) == 0:
        return out, boxes, classes
    nb = boxes * s + np.array([m[0, 2], m[1, 2], m[0, 2], m[1, 2]], np.float32)
    area0 = (nb[:, 2] - nb[:, 0]) * (nb[:, 3] - nb[:, 1])
    nb[:, [0, 2]] = nb[:, [0, 2]].clip(0, w)
    nb[:, [1, 3]] = nb[:, [1, 3]].clip(0, h)
    bw, bh = nb[:, 2] - nb[:, 0], nb[:, 3] - nb[:, 1]
    keep = (bw >= opts.min_size) & (bh >= opts.min_size) & (bw * bh >= opts.min_area_kept * np.maximum(area0, 1e-6))
    return out, nb[keep].astype(np.float32), classes[keep]


def hsv_jitter(img: np.ndarray, rng: np.random.Generator, opts: AugmentOptions) -> np.ndarray:
    """Random hue/saturation/value gains through lookup tables (YOLOv5's augment_hsv)."""
    import cv2

    if not (opts.hsv_h or opts.hsv_s or opts.hsv_v):
        return img
    r = rng.uniform(-1, 1, 3) * [opts.hsv_h, opts.hsv_s, opts.hsv_v] + 1
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * r[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def fliplr(img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror the image and its boxes left-right.

    Example:
        >>> _, b = fliplr(np.zeros((4, 10, 3), np.uint8), np.array([[1., 0., 3., 2.]]))
        >>> b.tolist()
        [[7.0, 0.0, 9.0, 2.0]]
    """
    w = img.shape[1]
    b = boxes.copy()
    b[:, [0, 2]] = w - boxes[:, [2, 0]]
    return np.ascontiguousarray(img[:, ::-1]), b


def augment(img: np.ndarray, boxes: np.ndarray, classes: np.ndarray, rng: np.random.Generator,
            opts: AugmentOptions):
    """All of the above on a letterboxed image; returns (image, boxes, classes)."""
    if opts.scale or opts.translate:
        img, boxes, classes = random_affine(img, boxes, classes, rng, opts)
    img = hsv_jitter(img, rng, opts)
    if opts.fliplr and rng.random() < opts.fliplr:
        img, boxes = fliplr(img, boxes)
    return img, boxes, classes
