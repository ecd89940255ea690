"""Run in a fresh interpreter by the lean-runtime tests: load + predict with host packages blocked.

    python lean_probe.py ARTIFACT IMAGE [BACKEND]

A meta-path finder makes ``import torch`` (and tensorflow, onnx, nncf, the converters) raise
ImportError, so an accidental import fails loudly instead of passing unseen; at the end the
probe prints JSON with the result and the heavy modules present in ``sys.modules``.
"""

import json
import sys

BLOCKED = ("torch", "tensorflow", "onnx", "nncf", "litert_torch", "ai_edge_quantizer", "torchvision", "jax",
           "onnxslim", "pnnx")


class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"lean runtime must not import {name}")
        return None


sys.meta_path.insert(0, Block())

from edgekit.runtime import load  # noqa: E402

art, image = sys.argv[1], sys.argv[2]
model = load(art, backend=sys.argv[3] if len(sys.argv) > 3 else None, threads=1)
res = model.predict(image)
print(json.dumps({"task": model.task, "backend": model.describe()["backend"], "n": len(res) if model.task == "detect" else 1,
                  "heavy": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
