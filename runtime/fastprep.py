"""Letterbox (or stretch) + tensor in one go with reused buffers: the per-frame preprocessing of the video loop.

:class:`FramePrep` gives exactly what :func:`~edgekit.runtime.preprocess.fit_image` followed by
:func:`~edgekit.runtime.preprocess.to_tensor` give (same pixels, bit for bit: the same OpenCV
resize, the same pad value, the same value table), but for a stream of frames of one size it
keeps the padded canvas between calls: the resize writes straight into the canvas (no
``copyMakeBorder`` copy), the pads are written once, the colour swap runs in place on the image's
part only (grey pads read the same in RGB and BGR), and the usual INT8 input (scale 1/255, zero
point -128) is the pixel with its top bit flipped, viewed as int8, instead of a table lookup; in NHWC it
is written straight into the new tensor (resize into a kept buffer, colour swap into the tensor's
image part, flip in place, pads set), one pass less over the tensor. The returned tensor is a new
array each call (a caller may keep it), unless ``reuse=True``: then (usual INT8 or plain uint8 NHWC input) it is the
calling thread's kept tensor, whose pads were written when it was made, overwritten by that thread's
next call (for a caller that hands it to the interpreter at once: no allocation, no pad writes per
frame). OpenCV is imported on first use.

Example:
    >>> prep = FramePrep((320, 320), "NHWC", "int8", quant=(1 / 255, -128))
    >>> x, lb = prep(np.zeros((202, 360, 3), np.uint8))
    >>> x.shape, x.dtype.name, lb.pad_y
    ((1, 320, 320, 3), 'int8', 70.0)
"""

from __future__ import annotations

import threading

import numpy as np

from edgekit.runtime.preprocess import (Letterbox, check_resize, cv2_lut, fit_image, resize_params, to_tensor,
                                        value_table)


class FramePrep:
    """Callable ``image -> (tensor, Letterbox)`` for one model input contract.

    Args:
        size: (height, width) of the model input.
        layout, dtype, quant, mean, std, rgb: as :func:`~edgekit.runtime.preprocess.to_tensor`.
        pad_value: the letterbox's pad colour.
        resize: ``letterbox`` or ``stretch`` (the model's mode: a stretch has no pads, the canvas is the image).
    """

    def __init__(self, size, layout: str = "NCHW", dtype: str = "float32", quant=None,
                 mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), rgb: bool = True, pad_value: int = 114,
                 resize: str = "letterbox"):
        self.size = (int(size[0]), int(size[1])) if not np.isscalar(size) else (int(size), int(size))
        self.resize = check_resize(resize)
        self.layout, self.dtype, self.quant, self.rgb, self.pad = layout, dtype, quant, bool(rgb), int(pad_value)
        self.mean, self.std = tuple(mean), tuple(std)
        self._key = None
        self._table = None
        self._flip = False
        self._lock = threading.Lock()  # the buffers are shared: one frame at a time
        self._kept = threading.local()  # reuse=True: per thread, (source shape, tensor with its pads written)
        if not (dtype == "uint8" and quant is None):
            table = value_table(dtype, mean, std, quant)
            self._table = cv2_lut(table)
            v = np.arange(256)
            # the usual INT8 input (scale 1/255, zero point -128, no mean/std) is the pixel minus 128: the
            # top bit flipped, a tenth of a table lookup's time; an identity table is a plain copy
            if dtype == "int8" and np.array_equal(table.astype(np.int64), np.repeat((v - 128)[:, None], 3, 1)):
                self._table, self._flip = None, True
            elif dtype == "uint8" and np.array_equal(table.astype(np.int64), np.repeat(v[:, None], 3, 1)):
                self._table, quant = None, None
        self._plain = dtype == "uint8" and quant is None

    def _buffers(self, src_hw) -> None:
        lb = resize_params(src_hw, self.size, self.resize)
        new_w, new_h = lb.resized_wh  # as fit_image()
        self.canvas = np.full((lb.dst_h, lb.dst_w, 3), self.pad, np.uint8)
        top, left = int(lb.pad_y), int(lb.pad_x)
        self.roi = self.canvas[top:top + new_h, left:left + new_w]
        self.new_wh = (new_w, new_h)
        self.lb = lb
        self._key = tuple(src_hw)
        # the INT8 (and plain uint8) NHWC path writes each tensor in place: the image part from a kept resize buffer, then the pads
        self.scratch = np.empty((new_h, new_w, 3), np.uint8)
        self.part = (slice(top, top + new_h), slice(left, left + new_w))
        self.part_rows = left == 0 and new_w == lb.dst_w  # the image part is whole rows: one contiguous block
        bottom, right = top + new_h, left + new_w
        self.pads = []  # (rows, columns) of each non-empty pad band
        if top > 0:
            self.pads.append((slice(0, top), slice(None)))
        if bottom < lb.dst_h:
            self.pads.append((slice(bottom, lb.dst_h), slice(None)))
        if left > 0:
            self.pads.append((slice(top, bottom), slice(0, left)))
        if right < lb.dst_w:
            self.pads.append((slice(top, bottom), slice(right, lb.dst_w)))

    def _into_roi(self, out: np.ndarray) -> None:
        if out is not self.roi and not np.shares_memory(out, self.canvas):  # a binding that reallocated
            self.roi[...] = out

    def __call__(self, image: np.ndarray, reuse: bool = False) -> tuple[np.ndarray, Letterbox]:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or (
                self._table is None and not self._plain and not self._flip):
            img, lb = fit_image(image, self.size, self.resize, self.pad)  # anything unusual: the reference path
            return to_tensor(img, self.layout, self.dtype, self.rgb, self.mean, self.std, self.quant), lb
        with self._lock:
            return self._fast(image, reuse)

    def _fast(self, image: np.ndarray, reuse: bool = False) -> tuple[np.ndarray, Letterbox]:
        import cv2

        if self._key != image.shape[:2]:
            self._buffers(image.shape[:2])
        if (self._flip or self._plain) and self.layout == "NHWC":
            return self._direct_nhwc(image, cv2, reuse)
        # the canvas holds RGB where the image is; the pads are grey (the same value in every channel), so only
        # the image's part is swapped, in place: one pass over 56 % of a 16:9 frame's canvas instead of all of it
        if self.new_wh == (image.shape[1], image.shape[0]):
            if self.rgb:
                self._into_roi(cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=self.roi))
            else:
                self.roi[...] = image
        else:
            self._into_roi(cv2.resize(image, self.new_wh, dst=self.roi, interpolation=cv2.INTER_LINEAR))
            if self.rgb:
                self._into_roi(cv2.cvtColor(self.roi, cv2.COLOR_BGR2RGB, dst=self.roi))
        src = self.canvas
        if self._flip:
            x = np.bitwise_xor(src, np.uint8(0x80)).view(np.int8)
        else:
            x = src.copy() if self._plain else cv2.LUT(src, self._table)
        x = x.reshape(self.canvas.shape)
        if self.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        elif self.layout != "NHWC":
            raise ValueError(f"layout must be NCHW or NHWC, got {self.layout}")
        return np.ascontiguousarray(x[None]), self.lb

    def _direct_nhwc(self, image: np.ndarray, cv2, reuse: bool = False) -> tuple[np.ndarray, Letterbox]:
        """The usual INT8 input (or a plain uint8 one), written straight into a new tensor: the resize into the kept
        buffer, the colour swap from there into the tensor's image part (a BGR model's resize writes that part
        itself), the top-bit flip in place there (INT8 only), the pads set to the (flipped) pad value. One pass
        less over the tensor than flipping a whole canvas into a new array, and the pads are written, not read (the
        same values, bit for bit). ``reuse``: into this thread's kept tensor, whose pads are already there (written
        once per frame size)."""
        kept = getattr(self._kept, "tensor", None) if reuse else None
        fresh = kept is None or kept[0] != self._key
        out = np.empty((1, *self.canvas.shape), np.int8 if self._flip else np.uint8) if fresh else kept[1]
        if reuse and fresh:
            self._kept.tensor = (self._key, out)
        u = out.view(np.uint8)[0]
        part = u[self.part]
        resize = self.new_wh != (image.shape[1], image.shape[0])
        if resize and not self.rgb and self.part_rows:  # a BGR model: resized straight into the tensor, no copy after
            res = cv2.resize(image, self.new_wh, dst=part, interpolation=cv2.INTER_LINEAR)
            if not np.shares_memory(res, part):  # a binding that reallocated
                part[...] = res
        else:
            src = cv2.resize(image, self.new_wh, dst=self.scratch, interpolation=cv2.INTER_LINEAR) if resize else image
            if self.rgb:
                res = cv2.cvtColor(src, cv2.COLOR_BGR2RGB, dst=part)
                if res is not part:  # a binding that reallocated
                    part[...] = res
            else:
                part[...] = src
        if self._flip:
            np.bitwise_xor(part, np.uint8(0x80), out=part)
        for rows, cols in self.pads if fresh else ():
            u[rows, cols] = self.pad ^ 0x80 if self._flip else self.pad
        return out, self.lb
