"""Export test fixtures: checkpoints of registered models at tiny sizes (random weights)."""

from __future__ import annotations

import pytest
from tests.export.export_helpers import make_checkpoint


@pytest.fixture()
def tiny_checkpoint(tmp_path):
    """Factory: ``tiny_checkpoint("yolo-lite", 64)`` -> path of a random-weight checkpoint."""
    def make(model: str, imgsz: int = 64, num_classes: int = 2):
        return make_checkpoint(tmp_path / f"{model}.pt", model, imgsz, num_classes)
    return make
