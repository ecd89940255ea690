"""The random state of a training run, saved in ``last.pt`` and restored by ``--resume``.

A resumed run must continue as the uninterrupted one would have: the same shuffling, the same
augmentation draws, the same dropout. That state lives in torch's global generator, numpy's and
Python's global generators, and the DataLoader's and sampler's own generators; all of it is kept
as tensors and plain lists, so the checkpoint still loads with ``weights_only=True``.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def _generators(loader, sampler) -> dict:
    gens = {"loader": getattr(loader, "generator", None), "sampler": getattr(sampler, "generator", None)}
    return {k: g for k, g in gens.items() if isinstance(g, torch.Generator)}


def rng_state(loader=None, sampler=None) -> dict:
    """Every generator's state, as tensors, ints and lists (``weights_only``-loadable).

    Example:
        >>> s = rng_state(); sorted(s)
        ['generators', 'numpy', 'python', 'torch']
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": {"version": version, "internal": list(internal), "gauss": gauss},
            "generators": {k: g.get_state() for k, g in _generators(loader, sampler).items()}}


def restore_rng(state: dict | None, loader=None, sampler=None) -> bool:
    """Put back what :func:`rng_state` saved; False (and nothing changed) for a checkpoint without it.

    Example:
        >>> s = rng_state(); a = torch.rand(1); _ = restore_rng(s); bool(torch.rand(1) == a)
        True
    """
    if not state:
        return False
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    gens = _generators(loader, sampler)
    for name, st in state.get("generators", {}).items():
        if name in gens:
            gens[name].set_state(st)
    return True
