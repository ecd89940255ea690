"""The ExecuTorch backend: exact fp32 against onnxruntime, batches, what it needs, one-line errors.

ExecuTorch's Python bindings link libtorch and take torch tensors: the backend imports torch
(and nothing else heavy: not the exporter, not torchao) and says so; with torch missing it is
"not installed", one line naming the extra. On the session's tiny exports (``fast_exports``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import backend_for, get_backend, open_backend

pytest.importorskip("executorch", reason="executorch is not installed (pip install \"edgekit[executorch]\")")


def _x(backend, seed=0):
    return np.random.default_rng(seed).random(backend.inputs[0].shape, dtype=np.float32)


def test_fp32_matches_onnxruntime_and_batches_split_per_image(fast_exports):
    et = open_backend(fast_exports["executorch"], threads=1)
    ort = open_backend(fast_exports["onnx"], threads=1)
    assert backend_for(fast_exports["executorch"]).name == "executorch"
    assert et.inputs[0].shape == ort.inputs[0].shape and et.inputs[0].dtype == "float32"
    x = _x(et)
    for a, b in zip(et.run([x]), ort.run([x])):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4
    two = np.concatenate([x, _x(et, 1)])
    batch = et.run([two])
    assert [o.shape[0] for o in batch] == [2] * len(et.outputs)
    for k, single in enumerate(et.run([two[1:]])):
        assert np.array_equal(batch[k][1:], single)


def test_int8_runs_close_to_fp32_and_describes_itself(fast_exports):
    fp32 = open_backend(fast_exports["executorch"], threads=1)
    int8 = open_backend(fast_exports["executorch-int8"], threads=1)
    x = _x(fp32)
    a, b = fp32.run([x])[0].ravel(), int8.run([x])[0].ravel()
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.98 and not np.array_equal(a, b)
    d = int8.describe()
    assert d["backend"] == "executorch" and d["threads"] == 1 and d["threadpool"].startswith("1 ")
    assert "torch" in d["needs"] and get_backend("executorch").host_imports == ("torch",)


def test_it_imports_torch_but_not_the_exporter_and_keeps_stdout_clean(fast_exports):
    code = ("import sys, numpy as np\nfrom edgekit.runtime.backends import open_backend\n"
            f"b = open_backend({str(fast_exports['executorch-int8'])!r}, threads=1)\n"
            "b.run([np.zeros(b.inputs[0].shape, np.float32)])\n"
            "import json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'torchao', 'onnx', 'tensorflow'}) + [m for m in sys.modules if m.startswith('executorch.exir')]))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-800:]
    assert json.loads(res.stdout) == ["torch"], res.stdout  # only line on stdout: ExecuTorch's logs go to stderr


def test_without_torch_it_is_not_installed(fast_exports):
    code = ("from edgekit.runtime.lean import block_imports\nblock_imports(['torch'])\n"
            "from edgekit.errors import EdgekitError\nfrom edgekit.runtime.backends import get_backend, open_backend\n"
            "assert not get_backend('executorch').is_available()\n"
            f"try:\n    open_backend({str(fast_exports['executorch'])!r})\n"
            "except EdgekitError as e:\n    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-800:]
    assert res.stdout.strip() == "backend 'executorch' is not installed: pip install \"edgekit[executorch]\""


def test_bad_inputs_are_one_line_errors(fast_exports, tmp_path):
    bad = tmp_path / "broken.pte"
    bad.write_bytes(b"\x00" * 64)
    pte = fast_exports["executorch"]
    for call, match in [(lambda: open_backend(bad), "ExecuTorch cannot open it"),
                        (lambda: open_backend(pte, delegate="npu"), "no delegate 'npu'"),
                        (lambda: open_backend(pte, device="gpu"), "use --device cpu"),
                        (lambda: open_backend(pte, precision="fp16"), "fixes its own precision"),
                        (lambda: open_backend(pte).run([np.zeros((1, 3, 8, 8), np.float32)]),
                         "input must have shape")]:
        with pytest.raises(EdgekitError, match=match) as err:
            call()
        assert "\n" not in str(err.value)
