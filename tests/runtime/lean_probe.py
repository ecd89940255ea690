"""Run in a fresh interpreter by the lean-runtime tests: load + predict with host packages blocked.

    python lean_probe.py ARTIFACT IMAGE [BACKEND]

:func:`edgekit.runtime.lean.block_imports` makes ``import torch`` (and tensorflow, onnx, nncf,
the converters) raise ImportError, so an accidental import fails loudly instead of passing
unseen; at the end the probe prints JSON with the result and the host packages present in
``sys.modules`` (checked too, in case one got in before the block). A backend that declares
``host_imports`` (ExecuTorch: torch) gets those through, and only those.
"""

import json
import sys

from edgekit.runtime.backends import get_backend
from edgekit.runtime.lean import HOST_PACKAGES, block_imports, loaded

backend = sys.argv[3] if len(sys.argv) > 3 else None
# a backend whose interpreter itself imports a host package declares it (ExecuTorch's bindings link
# libtorch): that one is let through, every other stays blocked, and "heavy" reports what came in
allowed = get_backend(backend).host_imports if backend else ()
block_imports([n for n in HOST_PACKAGES if n not in allowed])

from edgekit.runtime import load  # noqa: E402

art, image = sys.argv[1], sys.argv[2]
model = load(art, backend=backend, threads=1)
res = model.predict(image)
print(json.dumps({"task": model.task, "backend": model.describe()["backend"], "n": len(res) if model.task == "detect" else 1,
                  "heavy": loaded()}))
