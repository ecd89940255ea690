"""Training augmentation on letterboxed images: mosaic, random affine (scale/translate), flip, HSV.

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
    mosaic: float = 0.0      # probability of a mosaic (see mosaic()); off unless asked (`edgekit train --mosaic P`)


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
    return (out, *clip_boxes(nb, classes, (h, w), opts))


def clip_boxes(boxes: np.ndarray, classes: np.ndarray, hw: tuple[int, int], opts: AugmentOptions):
    """Boxes clipped to an image of ``hw``; those left too small or with too little of their area are dropped.

    Example:
        >>> boxes, classes = clip_boxes(np.array([[-5., 0., 5., 10.], [-9., 0., 1., 10.]]), np.array([0, 1]), (20, 20),
        ...                             AugmentOptions())
        >>> boxes.tolist(), classes.tolist()
        ([[0.0, 0.0, 5.0, 10.0]], [0])
    """
    h, w = hw
    nb = np.asarray(boxes, np.float32).copy()
    area0 = (nb[:, 2] - nb[:, 0]) * (nb[:, 3] - nb[:, 1])
    nb[:, [0, 2]] = nb[:, [0, 2]].clip(0, w)
    nb[:, [1, 3]] = nb[:, [1, 3]].clip(0, h)
    bw, bh = nb[:, 2] - nb[:, 0], nb[:, 3] - nb[:, 1]
    keep = (bw >= opts.min_size) & (bh >= opts.min_size) & (bw * bh >= opts.min_area_kept * np.maximum(area0, 1e-6))
    return nb[keep], classes[keep]


def mosaic(tiles: list[tuple[np.ndarray, np.ndarray, np.ndarray]], rng: np.random.Generator, opts: AugmentOptions):
    """Four fitted images (image, boxes, classes) tiled 2 x 2, and a random window of one image's size cut from it.

    Unlike YOLOv5's mosaic, the tiles are not shrunk: a window of the tiling shows parts of up to four scenes at
    the training scale, so small objects (a Fish4Knowledge fish is 14 x 11 pixels) stay as big as inference sees
    them, while backgrounds and object positions mix (the random affine that follows can still zoom out).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> tile = (np.zeros((32, 32, 3), np.uint8), np.array([[8., 8., 24., 24.]], np.float32), np.array([0]))
        >>> img, boxes, classes = mosaic([tile] * 4, rng, AugmentOptions())
        >>> img.shape, boxes.shape[1]
        ((32, 32, 3), 4)
    """
    h, w = tiles[0][0].shape[:2]
    canvas = np.empty((2 * h, 2 * w, 3), np.uint8)
    all_boxes, all_classes = [], []
    for k, (img, boxes, classes) in enumerate(tiles):
        oy, ox = (k // 2) * h, (k % 2) * w
        canvas[oy:oy + h, ox:ox + w] = img
        all_boxes.append(np.asarray(boxes, np.float32).reshape(-1, 4) + np.array([ox, oy, ox, oy], np.float32))
        all_classes.append(np.asarray(classes))
    # the window's top-left corner: anywhere that keeps the window inside the tiling (the tiles meet inside it
    # unless the corner is 0 or the far end)
    y0, x0 = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
    out = np.ascontiguousarray(canvas[y0:y0 + h, x0:x0 + w])
    boxes = np.concatenate(all_boxes) - np.array([x0, y0, x0, y0], np.float32)
    return (out, *clip_boxes(boxes, np.concatenate(all_classes), (h, w), opts))


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
