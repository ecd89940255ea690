"""The video loop's decode of 8-bit YOLO maps through value tables: no dequantize, no sigmoid, no exp per frame.

An INT8 artifact's map holds one of 256 integers per value, so each output's dequantized value, its
sigmoid and its exp are three tables of 256 float32 values, computed once with the very float32
operations :func:`~edgekit.runtime.decode.decode_output` runs on the dequantized map (bit for bit the
same values). A frame is then:

1. the raw objectness of every cell (one gather from the maps laid end to end) compared with one
   integer threshold per cell: the exact integer form of "dequantized objectness over the decoder's
   cut *and* sigmoid(objectness) over ``conf``" (a detection's score, objectness x class probability,
   is at most its objectness, so the cells that fail can never be kept: fewer rows, same detections);
2. the passing cells' channels gathered in one call; their box (cx, cy, w, h) read in one call from
   :class:`BoxTables` (the decoder's centre and size formulas tabled per grid column, row and anchor),
   their objectness and class sigmoids in one call from the sigmoid table;
3. scores, the score test and the corners as :class:`~edgekit.runtime.decode.CandidateDecoder` does them.

About a dozen numpy calls a frame before NMS instead of fifty: right after inference has evicted numpy from
the caches, the calls, not the arithmetic, are what post-processing costs.

Example:
    >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]]}
    >>> maps = [np.full((1, 6, 1, 2), -128, np.int8)]; maps[0][0, :, 0, 1] = [0, 0, 0, 0, 100, 100]
    >>> t = Int8Tables.build(maps, [(0.05, 0)], spec_rows(spec, maps), cut=-1.1, conf=0.25, sigmoid=lambda x: 1 / (1 + np.exp(-x)))
    >>> t.rows_passing(t.flat(maps)).tolist()
    [1]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def spec_rows(head_spec: dict, outputs) -> list[tuple[int, int, int]]:
    """Per output: (anchors, channels per anchor, cells): the (1, A*(5+C), H, W) layout of each map."""
    width = 5 + int(head_spec["num_classes"])
    out = []
    for k, o in enumerate(outputs):
        n_a = len(np.asarray(head_spec["anchors"][k]).reshape(-1, 2))
        out.append((n_a, width, int(o.shape[2]) * int(o.shape[3])))
    return out


class Int8Tables(NamedTuple):
    """Per-model constants of the table decode: :meth:`build` once, then per frame :meth:`flat` and :meth:`rows_passing`."""

    index: np.ndarray  # (rows, 5+C) intp: where each dense row's channels sit in the maps laid end to end
    obj_index: np.ndarray  # (rows,) intp: index[:, 4], contiguous
    threshold: np.ndarray  # (rows,): a row may be kept iff its raw objectness is above this (the maps' dtype, or int16)
    offset: np.ndarray  # (rows,) intp: 256 x the row's output, the start of its output's tables
    sig: np.ndarray  # (256 x outputs,) float32: sigmoid of the dequantized value, by unsigned byte
    exp: np.ndarray  # (256 x outputs,) float32: exp of the dequantized value, by unsigned byte
    unsigned: bool  # the maps are uint8 (else int8)
    shared: bool = False  # every output has the same quantization, so the same tables: no per-row offset to add

    @classmethod
    def build(cls, outputs, quant, layout, cut: float, conf: float, sigmoid) -> Int8Tables | None:
        """The tables of these maps (one (scale, zero point) each, as ``quant``), or None when they do not apply:
        not all 8-bit of one signedness with a positive scale, or a sigmoid whose table is not monotonic."""
        dtypes = {np.dtype(o.dtype) for o in outputs}
        if len(dtypes) != 1 or dtypes.pop() not in (np.dtype(np.int8), np.dtype(np.uint8)) or quant is None:
            return None
        unsigned = outputs[0].dtype == np.uint8
        q = np.arange(256) if unsigned else np.arange(256).astype(np.uint8).view(np.int8).astype(np.int64)
        index, threshold, offset, sig, exp = [], [], [], [], []
        base = 0
        for k, ((n_a, width, n_hw), qk) in enumerate(zip(layout, quant)):
            if qk is None or not float(qk[0]) > 0:
                return None
            # the dequantization of CandidateDecoder: (q - zero point) * scale, both float32 table columns
            v = (q.astype(np.float32) - np.float32(float(qk[1]))) * np.float32(float(qk[0]))
            s = sigmoid(v)
            # keep a row iff its value passes the float test on the dequantized objectness and its sigmoid is over
            # conf (numpy compares a float32 array with a Python float as float32, as the float path does)
            ok = (v > cut) & (s > conf)
            order = np.argsort(q, kind="stable")  # by integer value
            passing = ok[order]
            if passing.any() and not passing[passing.argmax():].all():
                return None  # not monotonic in the integer: a threshold would change the result
            below = q[order][~passing]
            thr = int(below.max()) if below.size else int(q.min()) - 1
            cells, anchors = np.divmod(np.arange(n_a * n_hw), n_a)  # dense row order: cell, then anchor
            chans = np.arange(width)
            index.append(base + (anchors[:, None] * width + chans[None, :]) * n_hw + cells[:, None])
            threshold.append(np.full(n_a * n_hw, thr, np.int16))
            offset.append(np.full(n_a * n_hw, 256 * k, np.intp))
            sig.append(s)
            exp.append(np.exp(v))
            base += n_a * width * n_hw
        index = np.concatenate(index).astype(np.intp)
        threshold = np.concatenate(threshold)
        info = np.iinfo(outputs[0].dtype)
        if threshold.min() >= info.min:  # in the maps' own dtype: the comparison then casts nothing
            threshold = threshold.astype(outputs[0].dtype)
        # one (scale, zero point) for all outputs (a converter's usual output quantization): each output's
        # tables are the same, so a lookup in the first output's reads the same values and skips two numpy calls
        shared = len({(float(qk[0]), float(qk[1])) for qk in quant}) == 1
        return cls(index, np.ascontiguousarray(index[:, 4]), threshold, np.concatenate(offset),
                   np.concatenate(sig).astype(np.float32), np.concatenate(exp).astype(np.float32), unsigned, shared)

    @staticmethod
    def flat(outputs) -> np.ndarray:
        """The maps laid end to end (one small copy: a few thousand bytes)."""
        return outputs[0].reshape(-1) if len(outputs) == 1 else np.concatenate(outputs, axis=None)

    def rows_passing(self, flat: np.ndarray) -> np.ndarray:
        """Dense row numbers, ascending, of the cells whose objectness may make a detection."""
        return (flat[self.obj_index] > self.threshold).nonzero()[0]


class BoxTables(NamedTuple):
    """A box's centre and size straight from its four 8-bit values: one lookup instead of a dozen numpy calls.

    A row's ``cx`` is ``((gx + (sigmoid(v) * s - off)) / gw) * in_w`` of its raw x value ``v``, with ``gx``, ``s``,
    ``off``, ``gw`` constant per grid column and output: so 256 values per (output, column) cover every
    frame, computed once with the very float32 operations :class:`~edgekit.runtime.decode.CandidateDecoder` runs
    per frame (bit for bit the same values); ``cy`` likewise per grid row, the half sizes ``w / 2`` and ``h / 2``
    (``exp(v) * anchor / 2``, the corners' halves) per anchor. A frame then reads a row's (cx, cy, w/2, h/2) with
    one gather at ``base[row] + byte``.

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]]}
        >>> maps = [np.zeros((1, 6, 1, 2), np.int8)]
        >>> tab = Int8Tables.build(maps, [(0.05, 0)], spec_rows(spec, maps), cut=-1.1, conf=0.25,
        ...                        sigmoid=lambda x: 1 / (1 + np.exp(-x)))
        >>> one = np.ones((2, 2), np.float32)
        >>> cells = np.array([[0, 0], [1, 0]], np.float32)  # grid (column, row) of the two rows
        >>> box = BoxTables.build(tab, cells, one, 0 * one, np.array([[2, 1]] * 2, np.float32),
        ...                       np.array([[10, 20]] * 2, np.float32), np.float32([64, 32]))
        >>> box.values[box.base[1] + np.zeros(4, np.intp)].tolist()  # row 1, all four raw values 0
        [48.0, 16.0, 5.0, 10.0]
    """

    values: np.ndarray  # float32: blocks of 256, by unsigned byte (cx per column, cy per row, w/2 and h/2 per anchor)
    base: np.ndarray  # (rows, 4) intp: where each row's cx, cy, w/2 and h/2 blocks start in ``values``
    bound: float  # every corner cx -/+ w/2 of these tables lies within [-bound, bound] (inf: not finite)

    @classmethod
    def build(cls, tables: Int8Tables, gxy, s, off, gwh, awh, in_wh) -> BoxTables:
        """The blocks of these rows: each argument (rows, 2) float32 x/y (or w/h) columns, ``in_wh`` (2,) float32.

        ``gxy``: grid column and row; ``s``, ``off``: scale_x_y and its offset ``(s - 1) / 2``; ``gwh``: grid size;
        ``awh``: the anchor in input pixels; ``in_wh``: the input size."""
        level = tables.offset // 256
        sig = tables.sig.reshape(-1, 256)
        ex = tables.exp.reshape(-1, 256)
        blocks, base = [], np.empty((len(level), 4), np.intp)
        for j in range(2):  # centres: one block per (output, grid column or row, scale, grid size)
            keys, inverse = np.unique(np.column_stack([level, gxy[:, j], s[:, j], off[:, j], gwh[:, j]]), axis=0,
                                      return_inverse=True)
            base[:, j] = 256 * (len(blocks) + inverse.ravel())
            for k, g, sk, ok, gk in keys:
                sxy = sig[int(k)] * np.float32(sk) - np.float32(ok)
                blocks.append((np.float32(g) + sxy) / np.float32(gk) * in_wh[j])
        centres = np.concatenate(blocks)
        for j in range(2):  # half sizes: one block per (output, anchor side)
            keys, inverse = np.unique(np.column_stack([level, awh[:, j]]), axis=0, return_inverse=True)
            base[:, 2 + j] = 256 * (len(blocks) + inverse.ravel())
            for k, a in keys:
                blocks.append(ex[int(k)] * np.float32(a) / np.float32(2))  # (w) / 2: the corners' float32 operations
        values = np.concatenate(blocks).astype(np.float32, copy=False)
        with np.errstate(over="ignore", invalid="ignore"):
            bound = float(np.abs(centres).max()) + float(values[len(centres):].max()) if values.size else 0.0
        return cls(values, base, bound if np.isfinite(values).all() and np.isfinite(bound) else float("inf"))
