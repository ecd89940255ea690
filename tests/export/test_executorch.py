"""ExecuTorch exports: an XNNPACK-delegated .pte in fp32, and PT2E INT8 calibrated on the reader.

The round trip of both targets (export -> parity gate -> load -> predict) is the registry-driven
``test_every_target.py`` on the session's ``fast_exports``; here: what is particular to ExecuTorch.
The whole graph must go to XNNPACK (nothing left to the slow portable kernels), the INT8 file must
hold int8 weights and record its calibration, a detector's output ranges must be clipped like
every other INT8 target's, and bad calls must be one clear line that leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.export.targets import TARGETS
from tests.export.export_helpers import TINY_CALIB

pytest.importorskip("executorch", reason="executorch is not installed (pip install \"edgekit[export]\")")


def test_targets_are_registered_with_their_backend():
    assert TARGETS["executorch"].precision == "fp32" and TARGETS["executorch-int8"].precision == "int8"
    for name in ("executorch", "executorch-int8"):
        t = TARGETS[name]
        assert t.backend == "executorch" and t.suffix == ".pte" and t.companions == ()
        assert not t.from_onnx and t.extra == "export" and "executorch" in t.needs


def test_artifacts_are_fully_delegated_and_int8_records_its_calibration(fast_exports):
    from edgekit.runtime.runner import read_manifest

    fp32, int8 = fast_exports["executorch"], fast_exports["executorch-int8"]
    for art in (fp32, int8):
        conv = read_manifest(art)["conversion"]
        assert conv["converter"].startswith("executorch ")
        assert conv["delegation"]["delegate_calls"] >= 1 and conv["delegation"]["not_delegated"] == {}
    man = read_manifest(int8)
    q = man["conversion"]["quantization"]
    assert man["precision"] == "int8" and man["calibration"]["images"] == q["images"] == TINY_CALIB
    assert "XNNPACKQuantizer" in q["tool"] and q["output_clip"] == pytest.approx(9.2)
    # parity compares the clipped logits (what decodes) because the conversion says it clipped
    assert man["conversion"]["output_clip"] == man["verification"]["parity"]["output_clip"] == pytest.approx(9.2)
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size  # int8 weights: about a quarter
    # the .pte has no metadata slot: the sidecar carries the manifest, and nothing else lies beside it
    assert sorted(p.name for p in int8.parent.glob(int8.stem + "*")) == [int8.name, int8.name + ".json"]


def _logit_net():
    """A module whose single output spans about [-30, 30]: wider than the detection logit clip."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            with torch.no_grad():
                self.conv.weight.fill_(0.0)
                self.conv.weight[:, :, 1, 1] = torch.tensor([[20.0, 0, 0], [-20.0, 0, 0], [0, 10, 0], [0, 0, -10]])
                self.conv.bias.copy_(torch.tensor([-10.0, 10.0, 0.0, 0.0]))

        def forward(self, x):
            return (self.conv(x),)

    return Net().eval()


def _output_scale(program) -> float:
    """The scale of the dequantize that feeds the program's (single) output."""
    out = next(n for n in program.graph.nodes if n.op == "output")
    deq = out.args[0][0]
    assert "dequantize" in str(deq.target), deq.target
    return float(deq.args[1])


def test_output_clip_narrows_the_output_quantization(sample_yaml):
    import torch

    from edgekit.export.calibration import CalibrationReader
    from edgekit.export.executorch import _example, quantize_pt2e

    reader = CalibrationReader.from_source(sample_yaml, imgsz=32, images=4)
    x = torch.from_numpy(reader.tensor(0).astype(np.float32))
    with torch.no_grad():
        assert float(_logit_net()(x)[0].abs().max()) > 9.2  # the case the clip is for
    scales, peaks = {}, {}
    for clip in (None, 9.2):
        program, n = quantize_pt2e(_logit_net(), _example(32), reader, clip)
        assert n == (0 if clip is None else 1)
        scales[clip] = _output_scale(program)
        with torch.no_grad():
            peaks[clip] = float(program.module()(x)[0].abs().max())
    assert scales[9.2] == pytest.approx(2 * 9.2 / 255, rel=1e-3)  # int8: 255 steps over [-9.2, 9.2]
    assert scales[None] > 1.05 * scales[9.2] and peaks[None] > 9.2
    assert peaks[9.2] <= 9.2 + scales[9.2]  # saturates at the clipped range


def test_bad_calls_are_one_line_and_leave_nothing(tmp_path):
    from edgekit.export.executorch import torch2executorch
    from edgekit.models import create_model

    model = create_model("yolo-lite", num_classes=2, imgsz=64).eval()
    out = tmp_path / "m.pte"
    for call, match in [(lambda: torch2executorch(model, 64, out, precision="int8"), "calibration images"),
                        (lambda: torch2executorch(model, 64, tmp_path / "m.bin"), r"\.pte file"),
                        (lambda: torch2executorch(model, 64, out, precision="fp16"), "precision must be"),
                        (lambda: torch2executorch(model.train(), 64, out), "training mode")]:
        with pytest.raises(EdgekitError, match=match) as err:
            call()
        assert "\n" not in str(err.value)
    assert list(Path(tmp_path).iterdir()) == []
