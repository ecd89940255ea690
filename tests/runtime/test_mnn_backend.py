"""The MNN backend: exact fp32 against onnxruntime, batches, a clean stdout, one-line errors.

MNN prints a banner and session notes from C on stdout, and its wheel cannot hand tensors to
numpy 2; the backend moves tensors through host-buffer views and keeps the prints off stdout,
which these tests hold it to on the session's tiny exports (``fast_exports``).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import backend_for, open_backend

pytest.importorskip("MNN")


def _x(backend, seed=0):
    return np.random.default_rng(seed).random(backend.inputs[0].shape, dtype=np.float32)


def test_fp32_matches_onnxruntime_and_batches_split_per_image(fast_exports):
    mnn = open_backend(fast_exports["mnn"], threads=1)
    ort = open_backend(fast_exports["onnx"], threads=1)
    assert backend_for(fast_exports["mnn"]).name == "mnn" and mnn.describe()["precision"] == "fp32"
    x = _x(mnn)
    for a, b in zip(mnn.run([x]), ort.run([x])):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4
    two = np.concatenate([x, _x(mnn, 1)])
    batch = mnn.run([two])
    assert [o.shape[0] for o in batch] == [2] * len(mnn.outputs)
    for k, single in enumerate(mnn.run([two[1:]])):
        assert np.array_equal(batch[k][1:], single)


def test_opening_and_running_keep_stdout_clean(fast_exports):
    code = ("import numpy as np\nfrom edgekit.runtime.backends import open_backend\n"
            f"b = open_backend({str(fast_exports['mnn-int8'])!r}, threads=1)\n"
            "b.run([np.zeros(b.inputs[0].shape, np.float32)])\nprint('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout == "ok\n", (res.stdout, res.stderr[-800:])


def test_bad_inputs_are_one_line_errors(fast_exports, tmp_path):
    bad = tmp_path / "broken.mnn"
    bad.write_bytes(b"\x00" * 64)
    for call, match in [(lambda: open_backend(bad), "MNN cannot open it"),
                        (lambda: open_backend(fast_exports["mnn"], precision="int4"), "unknown MNN precision"),
                        (lambda: open_backend(fast_exports["mnn"], device="vulkan"), "CPU builds"),
                        (lambda: open_backend(fast_exports["mnn"], delegate="npu"), "no delegate"),
                        (lambda: open_backend(fast_exports["mnn"]).run([np.zeros((1, 3, 8, 8), np.float32)]),
                         "input must have shape")]:
        with pytest.raises(EdgekitError, match=match) as err:
            call()
        assert "\n" not in str(err.value)
