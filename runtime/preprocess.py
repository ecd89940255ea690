"""Preprocessing written once: letterbox or stretch, its inverse for boxes, and tensor layout/dtype.

Training, validation, INT8 calibration and every runtime backend call these functions, so
the pixels a model was calibrated on are the pixels it sees on the board. numpy only at
module level; OpenCV is imported inside :func:`letterbox` (the device may lack it until used).

Two resize modes (:data:`RESIZE_MODES`), a property of the model carried by its checkpoint and
manifest (``preprocess.resize``): ``letterbox`` (edgekit's families; aspect ratio kept, grey
pads) and ``stretch`` (Darknet's default unless its cfg says ``letterbox=1``, and OpenCV DNN's
``blobFromImage(..., crop=False)``: each axis scaled to the input on its own, no padding). Both
are described by one :class:`Letterbox` geometry, so every box mapping handles both.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted to the input: ``new_x = old_x * scale + pad_x``, ``new_y = old_y * scale_y + pad_y``.

    Attributes:
        scale: resize factor of x (and of y when ``scale_y`` is None: a letterbox).
        pad_x, pad_y: padding added on the left and top, in pixels of the new image.
        src_w, src_h: original image size.
        dst_w, dst_h: letterboxed image size.
        scale_y: resize factor of y when it differs from x (a stretch), else None.
    """

    scale: float
    pad_x: float
    pad_y: float
    src_w: int
    src_h: int
    dst_w: int
    dst_h: int
    scale_y: float | None = None

    @property
    def scales(self) -> tuple[float, float]:
        """(x, y) resize factors."""
        return self.scale, self.scale if self.scale_y is None else self.scale_y

    @property
    def resized_wh(self) -> tuple[int, int]:
        """(width, height) of the resized image inside the pads (at least one pixel each)."""
        sx, sy = self.scales
        return max(1, int(round(self.src_w * sx))), max(1, int(round(self.src_h * sy)))

    def to_dict(self) -> dict:
        return asdict(self)


RESIZE_MODES = ("letterbox", "stretch")
COLORS = ("RGB", "BGR")  # a model's channel order: RGB (edgekit's models) or BGR (OpenCV's, e.g. --input-color BGR)


def check_resize(mode: str) -> str:
    """``mode`` when it is one of :data:`RESIZE_MODES`, else ValueError naming them.

    Example:
        >>> check_resize("stretch")
        'stretch'
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    return mode


def letterbox_params(src_hw: tuple[int, int], size: int | tuple[int, int], stride: int = 32,
                     auto: bool = False, scaleup: bool = True) -> Letterbox:
    """Compute the letterbox of an image of ``src_hw`` into ``size`` (int or (h, w)).

    With ``auto`` the output is the smallest stride multiple that holds the resized image
    (rectangular inference); otherwise it is exactly ``size``. Padding is split evenly
    between the two sides, as Ultralytics and Darknet's letterbox do.

    Example:
        >>> lb = letterbox_params((202, 360), 320)
        >>> round(lb.scale, 4), lb.pad_x, lb.pad_y, (lb.dst_h, lb.dst_w)
        (0.8889, 0.0, 70.0, (320, 320))
    """
    src_h, src_w = int(src_hw[0]), int(src_hw[1])
    if src_h <= 0 or src_w <= 0:
        raise ValueError(f"letterbox: empty image of size {src_w}x{src_h}")
    dst_h, dst_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    scale = min(dst_h / src_h, dst_w / src_w)
    if not scaleup:
        scale = min(scale, 1.0)
    # at least one pixel: a 1-pixel-high strip scaled by 0.5 must not round to an empty image (found by tests/fuzz)
    new_w, new_h = max(1, int(round(src_w * scale))), max(1, int(round(src_h * scale)))
    if auto:
        dst_w = int(np.ceil(new_w / stride) * stride)
        dst_h = int(np.ceil(new_h / stride) * stride)
    pad_x, pad_y = (dst_w - new_w) / 2, (dst_h - new_h) / 2
    # integer left/top pads, the odd pixel goes right/bottom
    return Letterbox(scale, float(int(round(pad_x - 0.1))), float(int(round(pad_y - 0.1))), src_w, src_h, dst_w, dst_h)


def stretch_params(src_hw: tuple[int, int], size: int | tuple[int, int]) -> Letterbox:
    """The stretch of an image of ``src_hw`` onto ``size`` (int or (h, w)): x and y scaled apart, no pads.

    Darknet's resize without ``letterbox=1`` and OpenCV DNN's ``blobFromImage(crop=False)``.

    Example:
        >>> lb = stretch_params((202, 360), 320)
        >>> lb.scales == (320 / 360, 320 / 202), lb.pad_x, lb.pad_y, lb.resized_wh
        (True, 0.0, 0.0, (320, 320))
    """
    src_h, src_w = int(src_hw[0]), int(src_hw[1])
    if src_h <= 0 or src_w <= 0:
        raise ValueError(f"stretch: empty image of size {src_w}x{src_h}")
    dst_h, dst_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return Letterbox(dst_w / src_w, 0.0, 0.0, src_w, src_h, dst_w, dst_h, scale_y=dst_h / src_h)


def resize_params(src_hw: tuple[int, int], size: int | tuple[int, int], resize: str = "letterbox") -> Letterbox:
    """:func:`letterbox_params` or :func:`stretch_params`, as ``resize`` says.

    Example:
        >>> resize_params((100, 200), 64, "stretch").scales
        (0.32, 0.64)
    """
    if check_resize(resize) == "stretch":
        return stretch_params(src_hw, size)
    return letterbox_params(src_hw, size)


def fit_image(image: np.ndarray, size: int | tuple[int, int], resize: str = "letterbox",
              color: int = 114) -> tuple[np.ndarray, Letterbox]:
    """The image fitted to the model input by its resize mode: :func:`letterbox`, or a plain stretch.

    Example:
        >>> out, lb = fit_image(np.zeros((202, 360, 3), np.uint8), (160, 320), "stretch")
        >>> out.shape, lb.pad_y, lb.scales == (320 / 360, 160 / 202)
        ((160, 320, 3), 0.0, True)
    """
    if check_resize(resize) == "letterbox":
        return letterbox(image, size, color=color)
    import cv2

    lb = stretch_params(image.shape[:2], size)
    if (lb.dst_w, lb.dst_h) != (lb.src_w, lb.src_h):
        # bilinear, as OpenCV DNN's blobFromImage resizes (Darknet's own resize_image is bilinear too)
        image = cv2.resize(image, (lb.dst_w, lb.dst_h), interpolation=cv2.INTER_LINEAR)
    return image, lb


def letterbox(image: np.ndarray, size: int | tuple[int, int], stride: int = 32, auto: bool = False,
              scaleup: bool = True, color: int = 114) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to ``size``; returns the image and its :class:`Letterbox`.

    Example:
        >>> img = np.zeros((202, 360, 3), np.uint8)
        >>> out, lb = letterbox(img, 320)
        >>> out.shape, lb.pad_y
        ((320, 320, 3), 70.0)
    """
    import cv2

    lb = letterbox_params(image.shape[:2], size, stride, auto, scaleup)
    new_w, new_h = lb.resized_wh
    if (new_w, new_h) != (lb.src_w, lb.src_h):
        # bilinear both ways: cheap on a Cortex-A core, and what the model was trained on
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    left, top = int(lb.pad_x), int(lb.pad_y)
    right, bottom = lb.dst_w - new_w - left, lb.dst_h - new_h - top
    if left or top or right or bottom:
        value = (color,) * (image.shape[2] if image.ndim == 3 else 1)
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)
    return image, lb


def boxes_to_letterbox(boxes: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Map xyxy boxes from original-image pixels into letterboxed (or stretched) pixels.

    Example:
        >>> lb = Letterbox(0.5, 0.0, 10.0, 200, 100, 100, 70)
        >>> boxes_to_letterbox(np.array([[0., 0., 200., 100.]]), lb).tolist()
        [[0.0, 10.0, 100.0, 60.0]]
    """
    sx, sy = lb.scales
    b = np.asarray(boxes, np.float32).reshape(-1, 4) * np.array([sx, sy, sx, sy], np.float32)
    return b + np.array([lb.pad_x, lb.pad_y, lb.pad_x, lb.pad_y], np.float32)


def boxes_from_letterbox(boxes: np.ndarray, lb: Letterbox, clip: bool = True) -> np.ndarray:
    """Map xyxy boxes from letterboxed (or stretched) pixels back to original-image pixels (the inverse).

    Example:
        >>> lb = Letterbox(0.5, 0.0, 10.0, 200, 100, 100, 70)
        >>> boxes_from_letterbox(np.array([[0., 10., 100., 60.]]), lb).tolist()
        [[0.0, 0.0, 200.0, 100.0]]
        >>> boxes_from_letterbox(np.array([[0., 0., 32., 32.]]), stretch_params((100, 200), 64)).tolist()
        [[0.0, 0.0, 100.0, 50.0]]
    """
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(b):  # many video frames: nothing to map
        return b
    pads, hi, scales = _letterbox_consts(lb)
    b = (b - pads) / scales
    if clip:  # clipped in place (np.clip's values, without its per-call cost)
        np.minimum(np.maximum(b, 0, out=b), hi, out=b)
    return b


_LB_CONSTS: tuple = (None, None)  # (letterbox, its constants): a video's frames share one Letterbox object


def _letterbox_consts(lb: Letterbox) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pads, image size, scales) of ``lb`` as float32 x1/y1/x2/y2 rows, kept for the letterbox of the last call."""
    global _LB_CONSTS
    last, consts = _LB_CONSTS
    if last is not lb:
        sx, sy = lb.scales
        consts = (np.array([lb.pad_x, lb.pad_y, lb.pad_x, lb.pad_y], np.float32),
                  np.array([lb.src_w, lb.src_h, lb.src_w, lb.src_h], np.float32),
                  np.array([sx, sy, sx, sy], np.float32))
        _LB_CONSTS = (lb, consts)
    return consts


def to_tensor(image: np.ndarray, layout: str = "NCHW", dtype: str = "float32", rgb: bool = True,
              mean: tuple[float, ...] = (0.0, 0.0, 0.0), std: tuple[float, ...] = (255.0, 255.0, 255.0),
              quant: tuple[float, int] | None = None) -> np.ndarray:
    """Turn a letterboxed HxWx3 BGR uint8 image into a batch-of-one model input.

    ``float32``: ``(pixel - mean) / std`` (default: [0, 1]). ``uint8``: raw pixels.
    ``int8``/``uint8`` with ``quant=(scale, zero_point)``: the float input quantized as
    the model's input tensor expects (``q = round(x / scale) + zero_point``).

    Example:
        >>> x = to_tensor(np.full((4, 4, 3), 255, np.uint8))
        >>> x.shape, float(x.max())
        ((1, 3, 4, 4), 1.0)
        >>> to_tensor(np.full((2, 2, 3), 255, np.uint8), "NHWC", "int8", quant=(1 / 255, -128)).max()
        np.int8(127)
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    x = image[..., ::-1] if rgb else image
    if dtype == "uint8" and quant is None:
        out = np.ascontiguousarray(x)
    elif image.dtype == np.uint8:
        # every output value is a function of one uint8 pixel: a 256-entry table computed with the
        # float formula below gives the same values bit for bit, in one pass instead of five
        # (4.7 -> 0.2 ms for a 320x320 int8 input on an x86 core)
        out = _apply_lut(image, rgb, value_table(dtype, mean, std, quant))
    else:
        x = (x.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        if quant is not None:
            scale, zero = quant
            info = np.iinfo(np.dtype(dtype))
            x = np.clip(np.round(x / scale) + zero, info.min, info.max)
        out = x.astype(dtype)
    if layout == "NCHW":
        out = out.transpose(2, 0, 1)
    elif layout != "NHWC":
        raise ValueError(f"layout must be NCHW or NHWC, got {layout}")
    return np.ascontiguousarray(out[None])


def value_table(dtype: str, mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), quant=None) -> np.ndarray:
    """:func:`to_tensor`'s float formula applied to the 256 pixel values: ``(256, 3)`` of ``dtype`` (cached).

    Example:
        >>> value_table("int8", quant=(1 / 255, -128))[[0, 255], 0].tolist()
        [-128, 127]
    """
    def as3(v) -> tuple:
        return tuple(np.broadcast_to(np.asarray(v, np.float32), (3,)).tolist())

    return _value_table(dtype, as3(mean), as3(std), None if quant is None else (float(quant[0]), int(quant[1])))


def cv2_lut(table: np.ndarray) -> np.ndarray | None:
    """``table`` in the shape ``cv2.LUT`` takes (one channel when all three agree), or None for a dtype it cannot."""
    if table.dtype not in (np.uint8, np.int8, np.int16, np.uint16, np.int32, np.float32, np.float64):
        return None
    return table[:, 0].reshape(1, 256) if bool((table == table[:, :1]).all()) else table.reshape(1, 256, 3)


@functools.lru_cache(maxsize=32)
def _value_table(dtype: str, mean: tuple, std: tuple, quant: tuple | None) -> np.ndarray:
    """:func:`to_tensor`'s float formula applied to the 256 pixel values: ``(256, 3)`` of ``dtype``."""
    v = np.arange(256, dtype=np.uint8)[:, None].repeat(3, axis=1)
    x = (v.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    if quant is not None:
        scale, zero = quant
        info = np.iinfo(np.dtype(dtype))
        x = np.clip(np.round(x / scale) + zero, info.min, info.max)
    return np.ascontiguousarray(x.astype(dtype))


def _apply_lut(image: np.ndarray, rgb: bool, table: np.ndarray) -> np.ndarray:
    """``table[pixel, channel]`` for each pixel of an HxWx3 uint8 BGR image, channels reversed first
    when ``rgb`` (OpenCV's cvtColor and LUT where it can: numpy's copy of a reversed view is slower)."""
    try:
        import cv2
    except ImportError:
        cv2 = None
    lut = cv2_lut(table)
    if cv2 is not None and lut is not None:
        x = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if rgb else np.ascontiguousarray(image)
        return cv2.LUT(x, lut).reshape(x.shape)
    x = image[..., ::-1] if rgb else image
    if bool((table == table[:, :1]).all()):
        return np.take(table[:, 0], x)
    return np.take_along_axis(table, x.reshape(-1, 3).astype(np.intp), axis=0).reshape(x.shape)


def preprocess(image: np.ndarray, size: int | tuple[int, int], layout: str = "NCHW", dtype: str = "float32",
               rgb: bool = True, quant: tuple[float, int] | None = None, color: int = 114,
               resize: str = "letterbox") -> tuple[np.ndarray, Letterbox]:
    """Letterbox (or stretch, by ``resize``) + :func:`to_tensor` in one call: what every backend does before inference.

    Example:
        >>> x, lb = preprocess(np.zeros((202, 360, 3), np.uint8), 320)
        >>> x.shape, x.dtype.name
        ((1, 3, 320, 320), 'float32')
    """
    img, lb = fit_image(image, size, resize, color)
    return to_tensor(img, layout, dtype, rgb, quant=quant), lb
