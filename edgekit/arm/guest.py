"""The emulated board's side of ``verify --arm``: runs inside the aarch64 userland, from the board install.

Started by :func:`edgekit.arm.run.run_guest` as ``python3.11 -m edgekit.arm.guest JOB.json`` with
only the lean install (``edgekit[<extra>]``) on the path, so it imports numpy and
``edgekit.runtime``, nothing else of edgekit, as a Raspberry Pi would. The job names the
artifact, the letterboxed images (``.npz``) and what to measure; the answer is written
beside it: raw float maps per image (``.npz``) and a JSON of what the runtime really did.

With ``count`` it brackets ``count`` calls of the backend with a ``getppid()`` syscall on each
side: the marker the instruction-count plugin (``plugin/insn_count.c``) switches on.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import sys

import numpy as np

# what a board never needs: the lean install must not even contain them
HOST_ONLY = ("torch", "tensorflow", "onnx", "nncf", "litert_torch", "ai_edge_quantizer", "openvino.tools.mo")


def importable(names=HOST_ONLY) -> list[str]:
    """The host-only packages this Python could import (empty on a lean install)."""
    found = []
    for name in names:
        try:
            if importlib.util.find_spec(name) is not None:
                found.append(name)
        except (ImportError, ValueError):  # a parent package absent (openvino.tools without openvino)
            pass
    return found


def native_precision(backend: str) -> str | None:
    """The compute precision the runtime would choose by itself on this CPU (edgekit pins fp32 unless asked)."""
    try:
        if backend == "openvino":
            import openvino as ov

            value = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
            return {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}.get(getattr(value, "get_type_name", lambda: str(value))())
        if backend == "ncnn":
            import ncnn

            return "fp16" if ncnn.cpu_support_arm_asimdhp() else "fp32"
    except Exception:  # a probe: never fail the run for it
        return None
    return None


def main(job_path: str) -> int:
    from edgekit.runtime import load

    job = json.loads(open(job_path).read())
    precision = job.get("precision")
    if precision == "native":  # what the runtime would pick itself on this core, pinned explicitly
        precision = native_precision(job.get("backend")) or "fp32"
    model = load(job["artifact"], backend=job.get("backend"), threads=job.get("threads", 1), precision=precision)
    runner = model.runner
    images = np.load(job["images"])
    outs = {}
    for k in range(len(images.files)):
        maps = runner.run_tensor(runner.tensor(images[f"img{k}"]))
        for j, m in enumerate(maps):
            outs[f"img{k}_out{j}"] = m
    np.savez(job["out"] + ".npz", **outs)
    result = {"describe": runner.describe(), "native_precision": native_precision(runner.backend.name),
              "machine": os.uname().machine, "python": sys.version.split()[0],
              "host_only_importable": importable()}
    if job.get("predict"):  # what `edgekit predict` does, through the public API
        result["predict"] = json.loads(model.predict(job["predict"]).to_json())
    if job.get("count"):
        x = runner.tensor(images["img0"])
        for _ in range(2):  # warm: first-run allocations and kernel choices are not an inference
            runner.backend.run([x])
        gc.collect()
        gc.disable()  # a collection landing inside the bracket would be counted as inference
        os.getppid()  # start marker
        for _ in range(job["count"]):
            runner.backend.run([x])
        os.getppid()  # stop marker
        gc.enable()
        result["counted_runs"] = job["count"]
    with open(job["out"] + ".json", "w") as f:
        json.dump(result, f, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
