"""Decoding of YOLO (v3-style) and region (v2-style) head maps, in numpy (device side).

One implementation serves the torch model, every exported artifact and the board. The
inputs are the raw maps a detector returns, each ``(N, A*(5+C), H, W)``; ``head_spec``
(see ``edgekit.models.detector``) says how to read them:

* ``region`` (YOLOv2): x = (i + sigmoid(tx)) / W, w = exp(tw) * anchor_grid / W,
  objectness sigmoid, classes softmax.
* ``yolo`` (YOLOv3/v4): x = (i + sigmoid(tx) * s - (s - 1) / 2) / W with s = scale_x_y,
  w = exp(tw) * anchor_px / net_w, objectness and classes sigmoid. With ``new_coords``
  (Scaled-YOLOv4) the map is already through a sigmoid and w = (2 tw)^2 * anchor_px.

These are Darknet's formulas (and OpenCV's ``Region`` layer's), so a Darknet model gives
Darknet's boxes. Rows are ordered per output, then grid row, column, anchor (OpenCV's
order). Coordinates are in input pixels; undoing a letterbox is the caller's step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .boxes import cxcywh_to_xyxy, nms, nms_corners_in_opencv
from .int8_decode import BoxTables, Int8Tables, spec_rows


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # written as tanh so large negative logits do not overflow exp
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _cells(out: np.ndarray, n_anchors: int, num_classes: int) -> np.ndarray:
    """(N, A*(5+C), H, W) -> (N, H, W, A, 5+C) float32."""
    out = np.asarray(out, dtype=np.float32)
    if out.ndim != 4 or out.shape[1] != n_anchors * (5 + num_classes):
        raise ValueError(f"head map of shape {out.shape} does not hold {n_anchors} anchors x (5 + {num_classes})")
    n, _, h, w = out.shape
    return out.reshape(n, n_anchors, 5 + num_classes, h, w).transpose(0, 3, 4, 1, 2)


def _input_size(outputs: Sequence[np.ndarray], head_spec: dict, imgsz) -> tuple[float, float]:
    if imgsz is not None:
        return (float(imgsz), float(imgsz)) if np.isscalar(imgsz) else (float(imgsz[0]), float(imgsz[1]))
    s, out = head_spec["strides"][0], outputs[0]
    return float(out.shape[2] * s), float(out.shape[3] * s)


def decode_output(out: np.ndarray, head_spec: dict, k: int, in_hw: tuple[float, float]) -> np.ndarray:
    """Decode output ``k`` into rows (cx, cy, w, h, obj, class probs), pixels: (N, H*W*A, 5+C).

    Args:
        out: raw map (N, A*(5+C), H, W).
        head_spec: the model's head_spec.
        k: index of this output in ``head_spec``.
        in_hw: input (height, width) in pixels.

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]],
        ...         "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
        >>> decode_output(np.zeros((1, 6, 1, 1)), spec, 0, (32, 32))[0, 0].tolist()
        [16.0, 16.0, 10.0, 20.0, 0.5, 0.5]
    """
    anchors = np.asarray(head_spec["anchors"][k], dtype=np.float32).reshape(-1, 2)
    nc = head_spec["num_classes"]
    p = _cells(out, len(anchors), nc)
    n, gh, gw = p.shape[:3]
    gx = np.arange(gw, dtype=np.float32)[None, None, :, None]
    gy = np.arange(gh, dtype=np.float32)[None, :, None, None]
    return _decode_cells(p, gx, gy, anchors, head_spec, k, (gh, gw), in_hw).reshape(n, -1, 5 + nc)


def _decode_cells(p: np.ndarray, gx, gy, anchors, head_spec: dict, k: int, grid_hw, in_hw) -> np.ndarray:
    """The decoding formulas on cells ``p`` (..., 5+C), whose grid columns/rows/anchors broadcast from
    ``gx``, ``gy`` and ``anchors``: all cells of a map (:func:`decode_output`) or a few (:func:`decode_candidates`)."""
    kind = head_spec["type"]
    gh, gw = grid_hw
    in_h, in_w = in_hw
    rows = np.empty_like(p)
    if kind == "region":
        sx, sy = _sigmoid(p[..., 0]), _sigmoid(p[..., 1])
        scale_wh = np.array([in_w / gw, in_h / gh], np.float32)  # anchors are in grid cells
        wh = np.exp(p[..., 2:4]) * anchors * scale_wh
        rows[..., 4] = _sigmoid(p[..., 4])
        rows[..., 5:] = _softmax(p[..., 5:])
    elif kind == "yolo":
        s = float(head_spec.get("scale_x_y", [1.0] * (k + 1))[k])
        new = bool(head_spec.get("new_coords", 0))
        xy = p[..., 0:2] if new else _sigmoid(p[..., 0:2])
        sx, sy = (xy[..., 0] * s - 0.5 * (s - 1), xy[..., 1] * s - 0.5 * (s - 1))
        twh = p[..., 2:4]
        wh = (4.0 * twh * twh if new else np.exp(twh)) * anchors
        rows[..., 4:] = p[..., 4:] if new else _sigmoid(p[..., 4:])
    else:
        raise ValueError(f"unknown head type {kind!r}: expected 'region' or 'yolo'")
    rows[..., 0] = (gx + sx) / gw * in_w
    rows[..., 1] = (gy + sy) / gh * in_h
    rows[..., 2:4] = wh
    return rows


def dequantize(arr: np.ndarray, quant) -> np.ndarray:
    """An integer tensor as float32: ``(q - zero_point) * scale``, computed in float32 (None: as it is).

    Example:
        >>> dequantize(np.array([-128, 0, 127], np.int8), (0.5, -128)).tolist()
        [0.0, 64.0, 127.5]
    """
    arr = np.asarray(arr)
    if quant is not None and arr.dtype.kind in "iu":
        scale, zero = quant
        arr = (arr.astype(np.float32) - zero) * scale
    return arr.astype(np.float32, copy=False)


def decode_candidates(outputs: Sequence[np.ndarray], head_spec: dict, conf: float, imgsz=None,
                      quant: Sequence | None = None) -> np.ndarray:
    """The decoded rows of one image whose objectness may pass ``conf``, as :func:`decode_dense` gives them.

    Most cells of a detector's maps are empty: thresholding the raw objectness first (sigmoid is
    monotonic, so ``sigmoid(t) > conf`` is ``t > logit(conf)``; a small margin keeps the borderline
    cells for :func:`select`'s exact test) decodes a few dozen rows instead of thousands. Same
    formulas, same row order as the dense decode, so :func:`select` keeps the same detections.

    ``quant``: one ``(scale, zero_point)`` or None per output, for integer maps as an INT8 artifact
    returns them: the objectness is thresholded in the integer domain and only the cells that pass are
    dequantized (``(q - zero_point) * scale`` in float32, as :func:`dequantize` does to a whole map),
    so the rows are those of dequantizing everything first, without converting thousands of values.

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]],
        ...         "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
        >>> out = np.full((1, 6, 2, 2), -5.0, np.float32); out[0, :4, 1, 0] = 0; out[0, 4:, 1, 0] = 5
        >>> decode_candidates([out], spec, conf=0.25).astype(np.float64).round(2).tolist()
        [[16.0, 48.0, 10.0, 20.0, 0.99, 0.99]]
    """
    return candidate_decoder(head_spec, imgsz)(outputs, conf, quant)


class _Plan(NamedTuple):
    key: tuple
    table: np.ndarray  # per cell: CandidateDecoder's columns
    levels: tuple  # per output: (anchors, cells per anchor, first row in table, threshold mode, threshold, to float32)
    cut: float  # the threshold on the dequantized objectness
    in_hw: tuple
    in_wh: np.ndarray  # (input width, input height) as float32
    int8: Int8Tables | None = None  # 8-bit YOLO maps: detect() through value tables (see int8_decode)
    boxes: BoxTables | None = None  # with int8: each cell's (cx, cy, w, h) by its raw values


_CMP, _ALL, _NONE = range(3)  # a level's objectness test: compare to its threshold, every cell passes, none does


def _level_test(dtype: np.dtype, qcut: float) -> tuple[int, object, bool]:
    """(mode, threshold, to float32) of one map's objectness test ``value > qcut``, in the map's own dtype.

    An 8/16-bit integer map is compared as integers (``q > qcut`` with ``qcut`` a whole number is ``q > int(qcut)``):
    no conversion of the map; any other map is compared as float32, as the table of all cells used to be.
    """
    if dtype.kind in "iu" and dtype.itemsize <= 2:
        if qcut == -np.inf:
            return _ALL, None, False
        info = np.iinfo(dtype)
        if qcut < info.min:
            return _ALL, None, False
        if qcut >= info.max:
            return _NONE, None, False
        return _CMP, dtype.type(int(qcut)), False
    if qcut == -np.inf:
        return _ALL, None, dtype != np.float32
    return _CMP, np.float32(qcut), dtype != np.float32


_DECODERS: dict = {}  # (head spec, imgsz) -> CandidateDecoder, for callers that pass a spec each call


def candidate_decoder(head_spec: dict, imgsz=None) -> CandidateDecoder:
    """The :class:`CandidateDecoder` of a head spec, made once (a few models at most are alive at a time).

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]]}
        >>> candidate_decoder(spec) is candidate_decoder(dict(spec))
        True
    """
    key = (repr(head_spec), repr(imgsz))
    dec = _DECODERS.get(key)
    if dec is None:
        if len(_DECODERS) >= 16:
            _DECODERS.clear()
        dec = _DECODERS[key] = CandidateDecoder(head_spec, imgsz)
    return dec


class CandidateDecoder:
    """:func:`decode_candidates` for one model, its per-cell constants built once: what the video loop runs per frame.

    All maps' cells go into one table (one row a cell, in the dense decode's order); each cell's grid
    column and row, anchor, ``scale_x_y``, grid size and quantization sit in a second table built on the
    first call (and again when the maps' shapes, dtypes or quantization change). A frame is then a
    threshold on the objectness column, one gather of the few rows that pass, and the decoding formulas
    of :func:`decode_output` on those rows only: a few dozen numpy calls whatever the number of outputs.
    The values are those of decoding the dequantized maps output by output (same float32 operations in
    the same order; the scalars of the per-output path are float32 columns here, as numpy casts them).

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]],
        ...         "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
        >>> out = np.full((1, 6, 2, 2), -5.0, np.float32); out[0, :4, 1, 0] = 0; out[0, 4:, 1, 0] = 5
        >>> CandidateDecoder(spec)([out], conf=0.25).astype(np.float64).round(2).tolist()
        [[16.0, 48.0, 10.0, 20.0, 0.99, 0.99]]
    """

    # columns of the per-cell table, x and y side by side: one numpy call decodes both
    GX, GY, S, S_Y, S_OFF, S_OFF_Y, GW, GH, AW, AH, ZERO, SCALE, QCUT = range(13)

    def __init__(self, head_spec: dict, imgsz=None):
        kind = head_spec["type"]
        if kind not in ("yolo", "region"):
            raise ValueError(f"unknown head type {kind!r}: expected 'region' or 'yolo'")
        self.spec, self.imgsz = head_spec, imgsz
        self.kind, self.nc = kind, int(head_spec["num_classes"])
        self.new = kind == "yolo" and bool(head_spec.get("new_coords", 0))  # maps already through a sigmoid
        self.anchors = [np.asarray(a, dtype=np.float32).reshape(-1, 2) for a in head_spec["anchors"]]
        self._plan: _Plan | None = None

    def _cut(self, conf: float) -> float:
        # sigmoid is monotonic: sigmoid(t) > conf is t > logit(conf); the margin keeps borderline cells for
        # select()'s exact test
        return conf - 1e-6 if self.new else float(np.log(conf / (1.0 - conf))) - 1e-4

    def _build(self, outputs, conf: float, quant, key) -> _Plan:
        in_h, in_w = _input_size(outputs, self.spec, self.imgsz)
        cut = self._cut(conf)
        cols, levels, first = [], [], 0
        for k, out in enumerate(outputs):
            a = self.anchors[k]
            if out.ndim != 4 or out.shape[0] != 1 or out.shape[1] != len(a) * (5 + self.nc):
                raise ValueError(f"head map of shape {out.shape} does not hold {len(a)} anchors x (5 + {self.nc})")
            gh, gw = out.shape[2:]
            gy, gx, ia = (v.ravel() for v in np.meshgrid(np.arange(gh), np.arange(gw), np.arange(len(a)), indexing="ij"))
            s = float(self.spec.get("scale_x_y", [1.0] * (k + 1))[k]) if self.kind == "yolo" else 1.0
            q = quant[k] if quant is not None and out.dtype.kind in "iu" else None
            scale, zero = (float(q[0]), float(q[1])) if q is not None else (1.0, 0.0)
            if q is None:
                qcut = cut
            elif scale > 0:  # every integer whose dequantized value can pass, with a step of margin for rounding
                qcut = float(np.floor(cut / scale + zero) - 1)
            else:
                qcut = -np.inf
            t = np.empty((len(gx), 13), np.float64)
            t[:, self.GX], t[:, self.GY], t[:, self.AW], t[:, self.AH] = gx, gy, a[ia, 0], a[ia, 1]
            t[:, self.S], t[:, self.S_Y], t[:, self.S_OFF], t[:, self.S_OFF_Y] = s, s, 0.5 * (s - 1), 0.5 * (s - 1)
            t[:, self.GW], t[:, self.GH] = gw, gh
            t[:, self.ZERO], t[:, self.SCALE], t[:, self.QCUT] = zero, scale, qcut
            cols.append(t)
            # the test on the float32 table's own threshold value (a whole number for an integer map)
            levels.append((len(a), gh * gw, first, *_level_test(out.dtype, float(np.float32(qcut)))))
            first += len(gx)
        # float32, as numpy casts each Python scalar of the per-output formulas against a float32 map
        table = np.concatenate(cols).astype(np.float32)
        in_wh = np.array([in_w, in_h], np.float32)  # as a Python float is cast against float32 values
        int8 = None
        if self.kind == "yolo" and not self.new and 0 < conf < 1:
            int8 = Int8Tables.build(outputs, quant, spec_rows(self.spec, outputs), cut, conf, _sigmoid)
        boxes = None
        if int8 is not None:
            boxes = BoxTables.build(int8, table[:, self.GX:self.GY + 1], table[:, self.S:self.S_Y + 1],
                                    table[:, self.S_OFF:self.S_OFF_Y + 1], table[:, self.GW:self.GH + 1],
                                    table[:, self.AW:self.AH + 1], in_wh)
        return _Plan(key, table, tuple(levels), cut, (in_h, in_w), in_wh, int8, boxes)

    def __call__(self, outputs: Sequence[np.ndarray], conf: float, quant: Sequence | None = None) -> np.ndarray:
        """Decoded rows (cx, cy, w, h, obj, class probs) of the cells of one image that may pass ``conf``."""
        outputs, plan = self._plan_of(outputs, conf, quant)
        p, t = self._candidates(outputs, plan)
        sure = p[:, 4] > plan.cut  # the float path's own test, on the few rows the integer test kept
        if not sure.all():
            p, t = p[sure], t[sure]
        cxy, wh, obj, probs = self._parts(p, t, plan)
        return np.concatenate([cxy, wh, obj, probs], axis=1)

    def _plan_of(self, outputs: Sequence[np.ndarray], conf: float, quant) -> tuple[list[np.ndarray], _Plan]:
        if len(outputs) != len(self.anchors):
            raise ValueError(f"{len(outputs)} outputs, head_spec describes {len(self.anchors)}")
        outputs = [np.asarray(o) for o in outputs]
        key = (tuple([(o.shape, o.dtype) for o in outputs]), conf, None if quant is None else tuple(quant))
        plan = self._plan
        if plan is None or plan.key != key:  # a new plan object, never one changed in place: threads may share it
            plan = self._plan = self._build(outputs, conf, quant, key)
        return outputs, plan

    def _candidates(self, outputs: list[np.ndarray], plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
        """(dequantized rows, their per-cell table rows) of the cells whose objectness may pass the plan's ``conf``."""
        width = 5 + self.nc
        # each map's objectness channel tested in the map's own units (integers for an INT8 map), and only the
        # cells that pass gathered, in the dense decode's row order (output, grid row, column, anchor): the
        # thousands of empty cells are never converted nor transposed
        picks, raws = [], []
        for o, (n_a, n_hw, first, mode, thr, to_f32) in zip(outputs, plan.levels):
            if mode == _NONE:
                continue
            m = o.reshape(n_a, width, n_hw)  # (anchor, channel, cell): a view of the (1, A*(5+C), H, W) map
            if to_f32:
                m = m.astype(np.float32)
            hit = np.arange(n_a * n_hw) if mode == _ALL else (m[:, 4] > thr).T.ravel().nonzero()[0]  # cell-major
            if hit.size:
                cell, anchor = np.divmod(hit, n_a)
                raws.append(m[anchor, :, cell])
                picks.append(hit + first if first else hit)
        if not picks:  # many video frames: nothing near the threshold
            return np.zeros((0, width), np.float32), plan.table[:0]
        pick, raw = (picks[0], raws[0]) if len(picks) == 1 else (np.concatenate(picks), np.concatenate(raws))
        t = plan.table[pick]
        # dequantized as dequantize() does: (q - zero point) * scale in float32
        return (raw.astype(np.float32, copy=False) - t[:, self.ZERO, None]) * t[:, self.SCALE, None], t

    def _parts(self, p: np.ndarray, t: np.ndarray, plan: _Plan) -> tuple[np.ndarray, ...]:
        """(centres, sizes, objectness, class probabilities) of rows ``p``: (n, 2), (n, 2), (n, 1), (n, C)."""
        # decode_output's formulas (see _decode_cells), x and y (w and h) two columns at once, each scalar a
        # column of t: the same float32 operations in the same order, per element
        gwh = t[:, self.GW:self.GH + 1]
        if self.kind == "region":
            in_h, in_w = plan.in_hw
            sig = _sigmoid(p)
            sxy = sig[:, 0:2]
            scale_wh = (np.array([in_w, in_h]) / gwh.astype(np.float64)).astype(np.float32)  # anchors are in grid cells
            wh = np.exp(p[:, 2:4]) * t[:, self.AW:self.AH + 1] * scale_wh
            probs = _softmax(p[:, 5:])
        else:
            sig = p if self.new else _sigmoid(p)
            sxy = sig[:, 0:2] * t[:, self.S:self.S_Y + 1] - t[:, self.S_OFF:self.S_OFF_Y + 1]
            twh = p[:, 2:4]
            wh = (4.0 * twh * twh if self.new else np.exp(twh)) * t[:, self.AW:self.AH + 1]
            probs = sig[:, 5:]
        cxy = (t[:, self.GX:self.GY + 1] + sxy) / gwh * plan.in_wh
        return cxy, wh, sig[:, 4:5], probs

    def detect(self, outputs: Sequence[np.ndarray], conf: float, iou: float | None = 0.45, max_det: int = 300,
               quant: Sequence | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``select(self(outputs, conf, quant), conf, iou, max_det)`` in a third fewer numpy calls: the video loop's.

        The rows are never assembled: every test of :meth:`__call__` and :func:`select` (the raw objectness
        margin, objectness > ``conf``, best class score > ``conf``) is one mask over the candidates, and only
        the boxes that pass are turned into corners and go to NMS. Same values, same order (tested).

        Example:
            >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]]}
            >>> out = np.full((1, 6, 2, 2), -5.0, np.float32); out[0, :4, 1, 0] = 0; out[0, 4:, 1, 0] = 5
            >>> boxes, scores, classes = CandidateDecoder(spec).detect([out], conf=0.25)
            >>> boxes.tolist(), classes.tolist()
            ([[11.0, 38.0, 21.0, 58.0]], [0])
        """
        outputs, plan = self._plan_of(outputs, conf, quant)
        if plan.int8 is not None:
            return self._detect_int8(outputs, plan, conf, iou, max_det)
        p, t = self._candidates(outputs, plan)
        if not len(p):
            return _no_detections()
        cxy, wh, obj, probs = self._parts(p, t, plan)
        sure = p[:, 4] > plan.cut
        if self.new:  # class probabilities straight from the map may exceed 1; else score <= objectness already
            sure &= obj[:, 0] > conf
        return _select_nms(cxy, wh, obj, probs, sure, conf, iou, max_det)

    def _detect_int8(self, outputs, plan: _Plan, conf: float, iou, max_det: int):
        """:meth:`detect` on 8-bit YOLO maps: the cells that may be kept found by one integer test, their box read
        from :class:`~edgekit.runtime.int8_decode.BoxTables` and their objectness and class sigmoids from
        :class:`~edgekit.runtime.int8_decode.Int8Tables`: the values of :meth:`_parts`' formulas, bit for bit, in
        a dozen numpy calls (right after inference has evicted numpy from the caches, each call costs microseconds)."""
        tab = plan.int8
        flat = tab.flat(outputs)
        rows = tab.rows_passing(flat)
        if not rows.size:  # most video frames: nothing in them
            return _no_detections()
        raw = flat[tab.index[rows]]
        u = raw if tab.unsigned else raw.view(np.uint8)
        cxy_half = plan.boxes.values[u[:, :4] + plan.boxes.base[rows]]
        sig = tab.sig[u[:, 4:]] if tab.shared else tab.sig[u[:, 4:] + tab.offset[rows, None]]
        # the objectness tests are in the table's integer threshold
        scores_all = sig[:, :1] * sig[:, 1:]
        cls = scores_all.argmax(1)
        scores = scores_all.max(1)
        keep = (scores > conf).nonzero()[0]
        if not keep.size:
            return _no_detections()
        if keep.size < len(scores):
            cxy_half, scores, cls = cxy_half[keep], scores[keep], cls[keep]
        cxy, half = cxy_half[:, :2], cxy_half[:, 2:]  # cxcywh_to_xyxy's operations (the halves come tabled)
        x1y1, x2y2 = cxy - half, cxy + half
        boxes = np.concatenate([x1y1, x2y2], axis=1)
        if iou is not None and len(scores) > 1 and max_det >= 1:
            # every coordinate is within the tables' bound: one constant class shift keeps classes apart
            order = nms_corners_in_opencv(x1y1, x2y2, scores, cls, plan.boxes.bound, self.nc, iou, max_det)
            if order is not None:
                return boxes[order], scores[order], cls[order]
        return _nms_order(boxes, scores, cls, iou, max_det)


def _select_nms(cxy, wh, obj, probs, sure, conf: float, iou, max_det: int):
    """:meth:`CandidateDecoder.detect`'s end, as :func:`select`: objectness x class probability, best class;
    the rows over ``conf`` (and ``sure``, the caller's own tests, when given) to corners and NMS."""
    scores_all = obj * probs
    cls = scores_all.argmax(1)
    scores = scores_all.max(1)
    keep = scores > conf if sure is None else sure & (scores > conf)
    keep = keep.nonzero()[0]
    if not keep.size:
        return _no_detections()
    if keep.size < len(scores):
        cxy, wh, scores, cls = cxy[keep], wh[keep], scores[keep], cls[keep]
    half = wh / 2  # cxcywh_to_xyxy's operations
    return _nms_order(np.concatenate([cxy - half, cxy + half], axis=1), scores, cls, iou, max_det)


def _no_detections() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)


def _nms_order(boxes: np.ndarray, scores: np.ndarray, cls: np.ndarray, iou: float | None,
               max_det: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """select()'s last step: xyxy boxes, scores and classes of the candidates that pass, best first, after NMS."""
    if len(scores) == 1 and max_det >= 1:  # one box: nothing to order or suppress (often, in a video)
        return boxes, scores.astype(np.float32, copy=False), cls.astype(np.int64, copy=False)
    order = nms(boxes, scores, cls, iou, max_det) if iou is not None else np.argsort(-scores, kind="stable")[:max_det]
    return boxes[order], scores[order].astype(np.float32, copy=False), cls[order].astype(np.int64, copy=False)


def decode_dense(outputs: Sequence[np.ndarray], head_spec: dict, imgsz=None) -> np.ndarray:
    """All decoded rows (cx, cy, w, h, obj, class probs) of all outputs: (N, R, 5+C).

    Args:
        outputs: raw maps, in ``head_spec`` order.
        head_spec: the model's head_spec.
        imgsz: input size (int or (h, w)); default grid size x stride of the first output.

    Returns:
        float32 rows, boxes in input pixels; class probs are not multiplied by obj.

    Example:
        >>> spec = {"type": "region", "num_classes": 2, "strides": [32], "anchors": [[[1.0, 2.0]]],
        ...         "anchor_units": "grid", "scale_x_y": [1.0], "new_coords": 0}
        >>> decode_dense([np.zeros((1, 7, 2, 2))], spec)[0, 3].tolist()
        [48.0, 48.0, 32.0, 64.0, 0.5, 0.5, 0.5]
    """
    if len(outputs) != len(head_spec["anchors"]):
        raise ValueError(f"{len(outputs)} outputs, head_spec describes {len(head_spec['anchors'])}")
    in_hw = _input_size(outputs, head_spec, imgsz)
    return np.concatenate([decode_output(o, head_spec, k, in_hw) for k, o in enumerate(outputs)], axis=1)


def select(rows: np.ndarray, conf: float = 0.25, iou: float | None = 0.45, max_det: int = 300,
           multi_label: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Threshold and NMS for one image's dense rows (R, 5+C).

    Score = objectness x class probability (Darknet's). Class-aware NMS.

    Returns:
        boxes (K, 4) xyxy float32, scores (K,) float32, class_ids (K,) int64, best first.

    Example:
        >>> r = np.array([[10, 10, 4, 4, 0.9, 0.1, 0.9], [10, 10, 4, 4, 0.1, 0.9, 0.1]], np.float32)
        >>> b, s, c = select(r)
        >>> b.tolist(), [round(float(v), 2) for v in s], c.tolist()
        ([[8.0, 8.0, 12.0, 12.0]], [0.81], [1])
    """
    rows = rows[rows[:, 4] > conf]  # score <= obj: cheap first cut, most cells are empty
    scores_all = rows[:, 4:5] * rows[:, 5:]
    if multi_label:
        i, j = np.nonzero(scores_all > conf)
        boxes, scores, cls = rows[i, :4], scores_all[i, j], j
    else:
        cls = scores_all.argmax(1) if len(rows) else np.zeros(0, np.int64)
        scores = scores_all.max(1) if len(rows) else np.zeros(0, rows.dtype)  # the value at argmax
        keep = scores > conf
        boxes, scores, cls = rows[keep, :4], scores[keep], cls[keep]
    if not len(boxes):  # most frames of a video have nothing to suppress
        return _no_detections()
    return _nms_order(cxcywh_to_xyxy(boxes).astype(np.float32), scores, cls, iou, max_det)


def decode_yolo_outputs(outputs: Sequence[np.ndarray], head_spec: dict, conf: float = 0.25,
                        iou: float | None = 0.45, imgsz=None, max_det: int = 300,
                        multi_label: bool = False, quant: Sequence | None = None,
                        decoder: CandidateDecoder | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections of one image from its raw head maps: decode, threshold, class-aware NMS.

    Args:
        outputs: raw maps (1, A*(5+C), H, W), in ``head_spec`` order (numpy or anything
            ``np.asarray`` takes); for batches use :func:`decode_batch`.
        head_spec: the model's head_spec.
        conf: minimum objectness x class probability.
        iou: NMS IoU threshold; None skips NMS (greedy NMS is idempotent, so running it
            again later changes nothing).
        imgsz: input size (int or (h, w)); default grid size x stride.
        max_det: most detections.
        multi_label: one detection per class above ``conf`` (Darknet's way) instead of
            the best class only.
        quant: one ``(scale, zero_point)`` or None per output when the maps are the integers an
            INT8 artifact returns: only the cells that may pass are dequantized (same detections).
        decoder: the :class:`CandidateDecoder` of ``head_spec`` (a video loop keeps its own; by default
            the one :func:`candidate_decoder` keeps).

    Returns:
        boxes (K, 4) xyxy in input pixels (float32), scores (K,) float32, class_ids (K,)
        int64, best first.

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]],
        ...         "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
        >>> out = np.full((1, 6, 1, 1), 5.0); out[0, :4] = 0
        >>> boxes, scores, ids = decode_yolo_outputs([out], spec)
        >>> boxes.tolist(), ids.tolist()
        ([[11.0, 6.0, 21.0, 26.0]], [0])
    """
    outputs = [np.asarray(o) for o in outputs]
    if outputs and outputs[0].shape[0] != 1:
        raise ValueError(f"decode_yolo_outputs takes one image, got a batch of {outputs[0].shape[0]}: use decode_batch")
    if 0 < conf < 1 and outputs:  # sparse: only the cells that may pass (same result as the dense decode)
        decoder = decoder or candidate_decoder(head_spec, imgsz)
        if not multi_label:  # the usual call: the fused decode + select
            return decoder.detect(outputs, conf, iou, max_det, quant)
        return select(decoder(outputs, conf, quant), conf, iou, max_det, multi_label)
    if quant is not None:
        outputs = [dequantize(o, q) for o, q in zip(outputs, quant)]
    return decode_batch(outputs, head_spec, conf, iou, imgsz, max_det, multi_label)[0]


def decode_batch(outputs: Sequence[np.ndarray], head_spec: dict, conf: float = 0.25,
                 iou: float | None = 0.45, imgsz=None, max_det: int = 300,
                 multi_label: bool = False) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`decode_yolo_outputs` for a batch: one (boxes, scores, class_ids) per image.

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]],
        ...         "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
        >>> [len(b) for b, s, c in decode_batch([np.zeros((3, 6, 1, 1))], spec, conf=0.2)]
        [1, 1, 1]
    """
    rows = decode_dense([np.asarray(o) for o in outputs], head_spec, imgsz)
    return [select(r, conf, iou, max_det, multi_label) for r in rows]


def anchors_in_pixels(head_spec: dict) -> list[np.ndarray]:
    """Each output's anchors as (A, 2) input pixels at ``head_spec['imgsz']`` (grid x stride for region).

    Example:
        >>> anchors_in_pixels({"anchors": [[[1.0, 2.0]]], "anchor_units": "grid", "strides": [32]})[0].tolist()
        [[32.0, 64.0]]
    """
    out = []
    for group, s in zip(head_spec["anchors"], head_spec["strides"]):
        a = np.asarray(group, dtype=np.float32).reshape(-1, 2)
        out.append(a * s if head_spec.get("anchor_units") == "grid" else a)
    return out
