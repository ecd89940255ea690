"""Pruned channel counts: stored as JSON-able data, re-applied to a freshly built model."""

from __future__ import annotations

import json

import pytest
import torch

from edgekit.errors import EdgekitError
from edgekit.models import create_model
from edgekit.models.channels import apply_channel_counts, channel_counts
from edgekit.prune import prune_model


@pytest.mark.parametrize("name", ["mobilenetv2_050-yolo-p3", "tiny-yolov3", "yolo-lite"])
def test_counts_rebuild_the_pruned_model(name):
    model = create_model(name, num_classes=3, imgsz=64).eval()
    prune_model(model, 64, ratio=0.5)
    counts = channel_counts(model, create_model(name, num_classes=3, imgsz=64))
    assert counts and json.loads(json.dumps(counts)) == counts  # JSON-able: loads with weights_only=True
    rebuilt = apply_channel_counts(create_model(name, num_classes=3, imgsz=64), counts).eval()
    rebuilt.load_state_dict(model.state_dict())  # strict: every shape fits
    x = torch.rand(1, 3, 64, 64)
    for a, b in zip(model(x), rebuilt(x)):
        torch.testing.assert_close(a, b)


def test_counts_of_another_model_are_refused():
    with pytest.raises(EdgekitError, match="does not have"):
        apply_channel_counts(create_model("yolo-lite", num_classes=3), {"neck.nothing": [3, 8, 1]})
    with pytest.raises(EdgekitError, match="groups"):
        apply_channel_counts(create_model("yolo-lite", num_classes=3), {"backbone.layers.0.conv": [3, 8, 2]})
