"""RKNN backend: a ``.rknn`` run on a Rockchip NPU by rknn-toolkit-lite2 (``rknnlite.api.RKNNLite``).

**Board only.** rknn-toolkit-lite2 ships aarch64 wheels only (2.5.0: CPython 3.7-3.12,
manylinux2014), and it is a thin layer over the NPU runtime, ``/usr/lib/librknnrt.so``, and the
kernel's ``rknpu`` driver, which come with the board's Rockchip image, not from pip. So here, on
x86-64, opening a ``.rknn`` is one error naming what is missing; on an aarch64 board without the
NPU runtime, ``init_runtime`` fails and the error names ``librknnrt.so`` and the driver. On the
host, ``edgekit export`` verifies ``.rknn`` files in rknn-toolkit2's x86 simulator instead
(:mod:`edgekit.export.rknn`), which checks accuracy and is never a speed.

The model takes uint8 NHWC RGB pixels (the ``.rknn`` divides by 255 itself) and returns float32
NCHW maps. rknn-toolkit-lite2 has no call that lists a model's tensors before running it, so
the shapes come from the sidecar manifest ``<file>.rknn.json`` that ``edgekit export`` writes
(the ``.rknn`` has no slot edgekit fills after verification).

``threads`` does not apply (the NPU runs the model); ``device`` picks NPU cores on an RK3588:
``npu`` (auto), ``npu0``, ``npu1``, ``npu2``, ``npu0_1``, ``npu0_1_2``.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import Backend, TensorInfo, register_backend

NPU_RUNTIME = "/usr/lib/librknnrt.so"
# what rknn-toolkit-lite2 2.5.0 looks for before it starts: the runtime library, the NPU's device node, the SoC name
NPU_FILES = (NPU_RUNTIME, "/dev/dri/renderD129", "/proc/device-tree/compatible")
# device name -> RKNNLite core mask (RKNNLite.NPU_CORE_* values)
CORES = {"npu": 0, "npu0": 1, "npu1": 2, "npu2": 4, "npu0_1": 3, "npu0_1_2": 7}


def _sidecar(path: Path) -> dict:
    side = Path(str(path) + ".json")
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError):
        raise EdgekitError(f"{path}: no readable manifest {side.name} beside it (RKNN models carry none inside): "
                           "copy it with the .rknn, or re-export with `edgekit export --target rknn-int8`") from None


@register_backend
class RknnBackend(Backend):
    """Run an RKNN ``.rknn`` (fp16 or INT8) on a Rockchip NPU with rknn-toolkit-lite2.

    Args:
        path: the ``.rknn`` (its manifest ``<file>.rknn.json`` beside it).
        threads: unused (the NPU runs it); recorded as None.
        delegate: unused; must be None or ``rknn``.
        device: NPU cores (:data:`CORES`), default ``npu`` (the runtime picks).
        precision: unused (the file fixes its precision); must be None.
        fallback: unused (there is no CPU path in rknn-toolkit-lite2).

    Example:
        >>> b = RknnBackend("model.rknn")  # doctest: +SKIP
        >>> [o.shape for o in b.run([np.zeros(b.inputs[0].shape, np.uint8)])]  # doctest: +SKIP
        [(1, 18, 40, 40), (1, 18, 20, 20)]
    """

    name = "rknn"
    suffixes = (".rknn",)
    extra = "rknn"
    packages = (("rknnlite", "rknn-toolkit-lite2"),)

    @classmethod
    def install_hint(cls) -> str:
        """Where a ``.rknn`` runs, and what bench and verify do with it on an x86 host."""
        return (f'pip install "edgekit[{cls.extra}]" on the Rockchip board (rknn-toolkit-lite2: aarch64 only; it also '
                f"needs the board's NPU runtime {NPU_RUNTIME} and rknpu driver); on an x86 host a .rknn runs only in "
                "rknn-toolkit2's simulator during `edgekit export`, which checks accuracy and is not a speed")

    def __init__(self, path, threads: int | None = None, delegate: str | None = None, device: str | None = None,
                 precision: str | None = None, fallback: bool = False):
        self.import_interpreter()  # one clear error when rknn-toolkit-lite2 is absent (every x86 host)
        if delegate and delegate.lower() != "rknn":
            raise EdgekitError(f"RKNN has no delegate '{delegate}': drop --delegate (the .rknn runs on the NPU)")
        if precision:
            raise EdgekitError("an RKNN model fixes its own precision at export: drop --precision")
        core = (device or "npu").lower()
        if core not in CORES:
            raise EdgekitError(f"unknown RKNN device '{device}': use one of {', '.join(CORES)}")
        self.path, self.threads, self.warnings, self.device = Path(path), None, [], core
        man = _sidecar(self.path)
        inp = man.get("input") or {}
        quant = tuple(inp["quant"]) if inp.get("quant") else None
        self.inputs = [TensorInfo(inp.get("name", "input"), tuple(inp.get("shape", ())), inp.get("dtype", "uint8"), quant)]
        self.outputs = [TensorInfo(o.get("name", f"output{k}"), tuple(o.get("shape", ())), "float32")
                        for k, o in enumerate(man.get("outputs") or [])]
        from rknnlite.api import RKNNLite

        from edgekit.runtime.mnn_backend import native_output

        with native_output() as said:  # its log lines (and the C runtime's) stay off stdout
            self.rknn = RKNNLite(verbose=False)
            loaded = self.rknn.load_rknn(str(self.path))
            started = self.rknn.init_runtime(core_mask=CORES[core]) if loaded == 0 else -1
        if loaded != 0:
            raise EdgekitError(f"{self.path}: rknn-toolkit-lite2 cannot read it ({_last(said)}): re-export it with edgekit")
        if started != 0:
            absent = [p for p in NPU_FILES if not os.path.exists(p)]
            where = ("this is not an aarch64 board" if platform.machine() != "aarch64" else
                     f"missing here: {', '.join(absent)}" if absent else "is the rknpu driver loaded (dmesg | grep -i rknpu)?")
            raise EdgekitError(f"{self.path}: the RKNN NPU runtime did not start ({_last(said)}): it needs a Rockchip "
                               f"NPU with {NPU_RUNTIME} and the rknpu driver; {where}")

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = np.ascontiguousarray(inputs[0], dtype=np.uint8)
        want = self.inputs[0].shape
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(want[1:]):
            raise EdgekitError(f"RKNN input must have shape (N, {', '.join(map(str, want[1:]))}), got {x.shape}")
        per_image = []
        for img in x:  # the model's batch is 1
            outs = self.rknn.inference(inputs=[np.ascontiguousarray(img[None])], data_format="nhwc")
            if outs is None:
                raise EdgekitError(f"{self.path}: the NPU run failed (rknn-toolkit-lite2 returned nothing): "
                                   "check `dmesg` for rknpu errors")
            per_image.append([np.asarray(o, dtype=np.float32) for o in outs])
        return per_image[0] if len(per_image) == 1 else [np.concatenate([r[k] for r in per_image])
                                                         for k in range(len(per_image[0]))]

    def details(self) -> dict:
        return {"device": self.device, "delegate": "rknn (Rockchip NPU)", "runtime": NPU_RUNTIME}

    def __del__(self):
        rknn = getattr(self, "rknn", None)
        if rknn is not None:
            try:
                rknn.release()
            except Exception:  # at interpreter exit the runtime may be gone already
                pass


def _last(said: list[str]) -> str:
    """What the runtime said went wrong, on one line: its error lines (``E ...``, ``!!! ...``), else its last lines.

    Example:
        >>> _last(["!!! some files are missing\\nE Catch exception when init runtime!\\nE Traceback (most recent call last):\\n"])
        '!!! some files are missing | E Catch exception when init runtime!'
    """
    lines = [ln.strip() for ln in (said[0] if said else "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("!!!") or (ln.startswith("E ") and "Traceback" not in ln)]
    return " | ".join(errors[:3] or lines[-3:])[-300:] or "no message"
