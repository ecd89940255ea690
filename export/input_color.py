"""``--input-color BGR``: OpenCV's channel order folded into a ``.tflite``'s first convolution.

edgekit's models are trained on RGB; a camera frame from OpenCV is BGR, so every frame costs a
colour-swap pass before inference (on a Cortex-A53 as much as a tenth of the frame's pre-processing).
Reversing the first convolution's input channels makes the artifact take BGR as it comes: the
same products, summed in another order, and no extra op in the graph. An INT8 first convolution sums
integers, so the outputs are the RGB artifact's bit for bit; a float one (``--keep-float``) rounds its sums
in another order, which can move an output by one quantization step (the shipped Yolo-Fastest 320 artifact:
test mAP50 0.5935 against 0.5950 RGB, benchmarks/results/
export-yolo-fastest-1.1-f4k-320-tflite-int8-first25-float-u8-bgr.json). The manifest then says
``"color": "BGR"`` and the runtime skips the swap. Export verification (parity, mAP) runs through
that manifest, so a fold that went wrong fails the export like any other conversion error.

Only ops that treat the three channels alike may lie between the graph input and that convolution:
(DE)QUANTIZE with one scale for the tensor, and PAD/PADV2 that pad no channels.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.export.tflite_graph import is_const, op_names
from edgekit.runtime.preprocess import COLORS

_CHANNEL_BLIND = {"QUANTIZE", "DEQUANTIZE", "PAD", "PADV2"}
_DTYPES = {0: np.float32, 1: np.float16, 9: np.int8, 3: np.uint8}  # TensorType: FLOAT32, FLOAT16, INT8, UINT8


def check_color(color: str) -> str:
    """The colour order asked for, upper-cased, or one clear error.

    Example:
        >>> check_color("bgr")
        'BGR'
    """
    c = str(color).upper()
    if c not in COLORS:
        raise EdgekitError(f"--input-color {color}: choose RGB (the model's own order) or BGR (OpenCV's, one pass less "
                           "per frame)")
    return c


def fold_bgr(tflite: bytes) -> bytes:
    """The ``.tflite`` with its first convolution's input channels reversed: it then takes BGR images.

    Raises one clear error where the input does not reach a ``CONV_2D`` through channel-blind ops only.

    Example:
        >>> bgr = fold_bgr(Path("m-tflite-int8.tflite").read_bytes())  # doctest: +SKIP
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    sg, names = model.subgraphs[0], op_names(model)[0]
    consumers: dict[int, list[int]] = {}
    for k, op in enumerate(sg.operators):
        for t in op.inputs:
            consumers.setdefault(t, []).append(k)
    if len(sg.inputs) != 1:
        raise EdgekitError(f"--input-color BGR: the model has {len(sg.inputs)} inputs, not one image: export it RGB")
    tensor, path = sg.inputs[0], []
    while True:
        users = consumers.get(tensor, [])
        if len(users) != 1:
            raise _refuse(path, f"its {'input' if not path else path[-1]} feeds {len(users)} ops")
        op, kind = sg.operators[users[0]], names[users[0]]
        path.append(kind)
        if kind == "CONV_2D" and op.inputs[0] == tensor:
            _reverse_input_channels(model, sg, op.inputs[1])
            return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
        if kind not in _CHANNEL_BLIND or op.inputs[0] != tensor or not _blind(model, sg, op, kind):
            raise _refuse(path, f"{kind} may treat the channels apart")
        tensor = op.outputs[0]


def _refuse(path: list[str], why: str) -> EdgekitError:
    ops = " -> ".join(["input", *path])
    return EdgekitError(f"--input-color BGR needs the input to reach a convolution directly ({ops}: {why}): "
                        "export this model RGB")


def _blind(model, sg, op, kind: str) -> bool:
    """True when this op does the same to each channel: per-tensor (de)quantization, no padding of channels."""
    if kind in ("QUANTIZE", "DEQUANTIZE"):
        q = sg.tensors[op.inputs[0]].quantization if kind == "DEQUANTIZE" else sg.tensors[op.outputs[0]].quantization
        return q is None or q.scale is None or len(q.scale) <= 1
    pads = _const(model, sg.tensors[op.inputs[1]])
    if pads is None or pads.size != 8 or np.any(pads.reshape(4, 2)[3] != 0):
        return False
    if kind == "PAD" or len(op.inputs) < 3:
        return True
    value = _const(model, sg.tensors[op.inputs[2]])  # PADV2's pad value: one for every channel
    return value is not None and value.size == 1


def _const(model, tensor) -> np.ndarray | None:
    """A stored tensor's values, flat (None for an activation or a type this module does not read)."""
    dtype = {2: np.int32, 4: np.int64}.get(tensor.type, _DTYPES.get(tensor.type))
    if dtype is None or not is_const(model, tensor):
        return None
    return np.frombuffer(bytes(bytearray(model.buffers[tensor.buffer].data)), dtype)


def _reverse_input_channels(model, sg, filter_index: int) -> None:
    """Reverse the last (input-channel) axis of an OHWI filter."""
    from ai_edge_litert import schema_py_generated as fb

    t = sg.tensors[filter_index]
    w = _const(model, t)
    if w is None or len(t.shape) != 4 or int(t.shape[3]) != 3:
        raise EdgekitError("--input-color BGR: the first convolution does not take 3 channels from a stored filter: "
                           "export this model RGB")
    flipped = w.reshape([int(d) for d in t.shape])[..., ::-1]
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale) > 1 and q.quantizedDimension == 3:
        q.scale = np.asarray(q.scale)[::-1].copy()  # per input channel (unusual): the scales travel with them
        if q.zeroPoint is not None and len(q.zeroPoint) > 1:
            q.zeroPoint = np.asarray(q.zeroPoint)[::-1].copy()
    data = np.frombuffer(np.ascontiguousarray(flipped).tobytes(), np.uint8)
    if sum(x.buffer == t.buffer for g in model.subgraphs for x in g.tensors) == 1:
        model.buffers[t.buffer].data = data
    else:  # a buffer another tensor shares stays as it is
        buf = fb.BufferT()
        buf.data = data
        model.buffers.append(buf)
        t.buffer = len(model.buffers) - 1
