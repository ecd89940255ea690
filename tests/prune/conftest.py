"""Tiny checkpoints (64 px, the sample's classes) for the pruning tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, sample_yaml):
    """``tiny_checkpoint(model)``: path of a random, realistically scaled 64-px checkpoint of ``model``."""
    from edgekit.data import load_dataset
    from tests.export.export_helpers import make_checkpoint

    names = load_dataset(sample_yaml).names
    made = {}

    def make(model: str):
        if model not in made:
            made[model] = make_checkpoint(tmp_path_factory.mktemp("prune-src") / f"{model}.pt", model, 64, names=names)
        return made[model]

    return make


def prune_options(weights, data, out, **kw):
    """Fast options: one step, one fine-tuning epoch on 16 images, no export or latency."""
    from edgekit.prune import PruneOptions

    base = dict(ratio=0.5, steps=1, finetune_epochs=1, batch=8, workers=0, max_train_images=16, measure=False,
                progress=False, out=str(out))
    return PruneOptions(str(weights), str(data), **{**base, **kw})
