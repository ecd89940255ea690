"""Run in a fresh interpreter by the lean-runtime tests: load + predict with host packages blocked.

    python lean_probe.py ARTIFACT IMAGE [BACKEND]

:func:`edgekit.runtime.lean.block_imports` makes ``import torch`` (and tensorflow, onnx, nncf,
the converters) raise ImportError, so an accidental import fails loudly instead of passing
unseen; at the end the probe prints JSON with the result and the host packages present in
``sys.modules`` (checked too, in case one got in before the block).
"""

import json
import sys

from edgekit.runtime.lean import block_imports, loaded

block_imports()

from edgekit.runtime import load  # noqa: E402

art, image = sys.argv[1], sys.argv[2]
model = load(art, backend=sys.argv[3] if len(sys.argv) > 3 else None, threads=1)
res = model.predict(image)
print(json.dumps({"task": model.task, "backend": model.describe()["backend"], "n": len(res) if model.task == "detect" else 1,
                  "heavy": loaded()}))
