"""The RKNN converter and x86 simulator, run inside rknn-toolkit2's own environment (not edgekit's).

rknn-toolkit2 pins numpy, onnx, protobuf and torch below what edgekit runs, so it lives in a venv
of its own (``edgekit rknn setup``, :mod:`edgekit.export.rknn_env`) and :mod:`edgekit.export.rknn`
starts this file there as a child process: ``<toolkit python> rknn_child.py``. It imports the
standard library, numpy and ``rknn.api`` only (edgekit is not installed in that venv).

One child converts one model and then serves its simulator, because the simulator runs only a
model built in the same session (``load_rknn`` + ``init_runtime()`` with no target is refused
on an x86 host). Everything the toolkit prints (its logs, progress bars, C++ output) goes to the
child's stderr, which the parent keeps in a log file; stdout carries only the protocol:

- parent -> child, first line: the job as JSON (``onnx``, ``out``, ``platform``, ``quantize``,
  ``dataset``, ``algorithm``, ``imgsz``, ``mean``, ``std``);
- child -> parent: ``{"ok": true, "toolkit": ..., "outputs": [{"shape", "dtype"}, ...]}`` once
  the ``.rknn`` is written and the simulator is up, or ``{"ok": false, "error": ...}``;
- then per request ``{"op": "run", "shape": [...], "dtype": "uint8"}`` + the raw bytes of the
  input -> ``{"ok": true, "outputs": [...]}`` + the raw bytes of each output; ``{"op": "close"}``
  (or the end of stdin) ends the child.

Example (what the parent does)::

    <toolkit python> rknn_child.py < job.json   # then requests on the same stdin
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np


def _check(ret, step: str) -> None:
    # the toolkit's calls return 0 on success and -1 after logging the reason (on stderr: the log)
    if ret != 0:
        raise RuntimeError(f"rknn-toolkit2 {step} failed (returned {ret}); its log says why")


def build(job: dict):
    """Convert ``job['onnx']`` to ``job['out']`` and start the simulator; (RKNN object, output descriptions)."""
    from importlib.metadata import version

    from rknn.api import RKNN

    rknn = RKNN(verbose=bool(job.get("verbose")))
    # mean 0 / std 255 inside the model: the NPU takes the letterboxed RGB pixels (uint8 NHWC) as they are
    _check(rknn.config(mean_values=[job["mean"]], std_values=[job["std"]], target_platform=job["platform"],
                       quantized_dtype="w8a8", quantized_algorithm=job["algorithm"], quantized_method="channel",
                       float_dtype="float16"), "config")
    _check(rknn.load_onnx(model=job["onnx"]), "load_onnx")
    _check(rknn.build(do_quantization=bool(job["quantize"]), dataset=job.get("dataset")), "build")
    _check(rknn.export_rknn(job["out"]), "export_rknn")
    _check(rknn.init_runtime(), "init_runtime (the x86 simulator: no target)")
    h, w = job["imgsz"]
    outs = rknn.inference(inputs=[np.zeros((1, h, w, 3), np.uint8)], data_format="nhwc")
    if outs is None:
        raise RuntimeError("the simulator ran no inference on a blank image; its log says why")
    return rknn, {"ok": True, "toolkit": version("rknn-toolkit2"),
                  "outputs": [{"shape": list(np.shape(o)), "dtype": str(np.asarray(o).dtype)} for o in outs]}


def _reply(out, head: dict, payloads=()) -> None:
    out.write((json.dumps(head) + "\n").encode())
    for p in payloads:
        out.write(p)
    out.flush()


def serve(rknn, stdin, out) -> None:
    """Answer ``run`` requests until ``close`` or the end of stdin."""
    while True:
        line = stdin.readline()
        if not line:
            return
        req = json.loads(line)
        if req.get("op") != "run":
            return
        dtype, shape = np.dtype(req["dtype"]), tuple(int(d) for d in req["shape"])
        raw = stdin.read(int(np.prod(shape)) * dtype.itemsize)
        x = np.frombuffer(raw, dtype).reshape(shape)
        outs = rknn.inference(inputs=[x], data_format="nhwc")
        if outs is None:
            _reply(out, {"ok": False, "error": "the simulator's inference failed; its log says why"})
            continue
        arrays = [np.ascontiguousarray(o, dtype=np.float32) for o in outs]
        _reply(out, {"ok": True, "outputs": [{"shape": list(a.shape), "dtype": "float32"} for a in arrays]},
               [a.tobytes() for a in arrays])


def main() -> int:
    out = os.fdopen(os.dup(1), "wb")  # the protocol's own descriptor
    os.dup2(2, 1)  # what the toolkit prints on stdout (Python or C) joins its log on stderr
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    line = stdin.readline()
    if not line:
        return 1
    try:
        rknn, head = build(json.loads(line))
    except Exception as exc:  # the toolkit's own errors: the parent shows this line and the log's tail
        traceback.print_exc()
        # the toolkit wraps its errors in a ValueError holding a whole traceback: its last line says what
        said = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        _reply(out, {"ok": False, "error": said[-1] if said else type(exc).__name__})
        return 1
    _reply(out, head)
    try:
        serve(rknn, stdin, out)
    finally:
        rknn.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
