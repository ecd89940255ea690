"""Graph features: torch tracing and ONNX reading agree, fusion, op kinds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgekit.estimate.layers import summarize
from edgekit.estimate.onnx_graph import onnx_layers
from edgekit.estimate.reference_nets import reference_net
from edgekit.estimate.torch_graph import torch_layers
from edgekit.models import count_macs


@pytest.mark.parametrize("name, size, macs_m", [("mobilenet_v1", 224, 569), ("mobilenet_ssd", 300, 1148),
                                                ("nanodet_m", 320, 342), ("ssdlite_mobilenet_v2", 320, 804),
                                                ("yolov2_voc", 416, 14680)])
def test_reference_nets_have_their_published_size(name, size, macs_m):
    net = reference_net(name)
    layers = torch_layers(net, size)
    assert round(summarize(layers)["macs"] / 1e6) == macs_m == round(count_macs(net, size) / 1e6)


def test_onnx_graph_gives_the_same_layers_as_torch(tmp_path):
    net = reference_net("nanodet_m")
    path = tmp_path / "nanodet.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 320, 320), str(path), dynamo=False, opset_version=17)
    from_onnx, info = onnx_layers(path)
    from_torch = torch_layers(net, 320)
    assert info["precision"] == "fp32" and info["imgsz"] == (320, 320)
    assert [(x.kind, x.macs, x.weights, x.outputs) for x in from_onnx] == [(x.kind, x.macs, x.weights, x.outputs)
                                                                          for x in from_torch]


def test_activations_and_batch_norm_fuse_into_the_convolution_but_residual_adds_do_not():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(16, 16, 3, padding=1)
            self.bn = nn.BatchNorm2d(16)

        def forward(self, x):
            y = self.conv(x)
            return x + y * torch.sigmoid(self.bn(y))

    kinds = [x.kind for x in torch_layers(Block().eval(), 8, in_channels=16)]
    # SiLU-like gating on the conv output fuses; adding the block input is a real element-wise pass
    assert kinds == ["conv3x3s1", "elementwise"]


def test_op_kinds_of_a_depthwise_separable_block():
    net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.Conv2d(32, 32, 3, 1, 1, groups=32), nn.Conv2d(32, 64, 1),
                        nn.MaxPool2d(2), nn.Upsample(scale_factor=2))
    assert [x.kind for x in torch_layers(net.eval(), 32)] == ["conv", "depthwise", "pointwise", "pool", "memory"]
