"""The video loop's decode of 8-bit YOLO maps through value tables: no dequantize, no sigmoid, no exp per frame.

An INT8 artifact's map holds one of 256 integers per value, so each output's dequantized value, its
sigmoid and its exp are three tables of 256 float32 values, computed once with the very float32
operations :func:`~edgekit.runtime.decode.decode_output` runs on the dequantized map (bit for bit the
same values). A frame is then:

1. the raw objectness of every cell (one gather from the maps laid end to end) compared with one
   integer threshold per cell: the exact integer form of "dequantized objectness over the decoder's
   cut *and* sigmoid(objectness) over ``conf``" (a detection's score, objectness x class probability,
   is at most its objectness, so the cells that fail can never be kept: fewer rows, same detections);
2. the passing cells' channels gathered in one call, their sigmoid and exp looked up in one call each;
3. :class:`~edgekit.runtime.decode.CandidateDecoder`'s formulas on those rows (same operations, same order).

About twenty numpy calls a frame instead of fifty: right after inference has evicted numpy from the
caches, the calls, not the arithmetic, are what post-processing costs.

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
    """Per-model constants of the table decode; :meth:`build` once, then per frame :meth:`flat` ... :meth:`lookup`."""

    index: np.ndarray  # (rows, 5+C) intp: where each dense row's channels sit in the maps laid end to end
    obj_index: np.ndarray  # (rows,) intp: index[:, 4], contiguous
    threshold: np.ndarray  # (rows,): a row may be kept iff its raw objectness is above this (the maps' dtype, or int16)
    offset: np.ndarray  # (rows,) intp: 256 x the row's output, the start of its output's tables
    sig: np.ndarray  # (256 x outputs,) float32: sigmoid of the dequantized value, by unsigned byte
    exp: np.ndarray  # (256 x outputs,) float32: exp of the dequantized value, by unsigned byte
    unsigned: bool  # the maps are uint8 (else int8)

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
        return cls(index, np.ascontiguousarray(index[:, 4]), threshold, np.concatenate(offset),
                   np.concatenate(sig).astype(np.float32), np.concatenate(exp).astype(np.float32), unsigned)

    @staticmethod
    def flat(outputs) -> np.ndarray:
        """The maps laid end to end (one small copy: a few thousand bytes)."""
        return outputs[0].reshape(-1) if len(outputs) == 1 else np.concatenate([o.reshape(-1) for o in outputs])

    def rows_passing(self, flat: np.ndarray) -> np.ndarray:
        """Dense row numbers, ascending, of the cells whose objectness may make a detection."""
        return np.flatnonzero(flat[self.obj_index] > self.threshold)

    def lookup(self, flat: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sigmoid of every channel (n, 5+C), exp of the w/h channels (n, 2)) of ``rows``, float32."""
        raw = flat[self.index[rows]]
        u = raw if self.unsigned else raw.view(np.uint8)
        at = u + self.offset[rows, None]
        return self.sig[at], self.exp[at[:, 2:4]]
