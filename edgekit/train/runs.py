"""The run folder of a training run: where it goes, its per-epoch results, and resuming its options.

A run folder holds ``weights/{best,last}.pt`` and ``results.json``/``results.csv`` (one row
per epoch); every task's run has this shape, so ``--resume`` and the reports read any of them.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import fields
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.train.augment import AugmentOptions


def next_run_dir(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3``... whichever does not exist yet.

    Example:
        >>> import tempfile
        >>> base = Path(tempfile.mkdtemp()) / "yolo-lite"
        >>> next_run_dir(base).name, (base.mkdir() or next_run_dir(base).name)
        ('yolo-lite', 'yolo-lite-2')
    """
    if not base.exists():
        return base
    k = 2
    while base.with_name(f"{base.name}-{k}").exists():
        k += 1
    return base.with_name(f"{base.name}-{k}")


def resolve_out(opts, rank: int = 0, world: int = 1) -> Path:
    """The run folder of ``opts`` (any task's options: ``out``, ``model``, ``resume``).

    ``--out`` as given (refused when it already holds a run and ``--resume`` is not set);
    otherwise ``runs/train/<model>[-N]``, or with ``--resume`` the newest run of the model.
    Under torchrun rank 0 picks the folder and broadcasts it, so every rank writes to one.

    Example:
        >>> from types import SimpleNamespace
        >>> resolve_out(SimpleNamespace(out="/tmp/never-trained", model="yolo-lite", resume=False)).name
        'never-trained'
    """
    if opts.out:
        out = Path(opts.out)
        if (out / "weights" / "last.pt").exists() and not opts.resume:
            raise EdgekitError(f"{out} already holds a training run: pass --resume to continue it, or choose another --out")
        return out
    base = Path("runs") / "train" / opts.model
    if opts.resume:
        runs = sorted(Path("runs/train").glob(f"{opts.model}*/weights/last.pt"), key=os.path.getmtime)
        if not runs:
            raise EdgekitError(f"no run of {opts.model} to resume under runs/train: give --out")
        return runs[-1].parents[1]
    if world > 1:  # every rank must agree on one folder
        import torch.distributed

        obj = [str(next_run_dir(base)) if rank == 0 else None]
        torch.distributed.broadcast_object_list(obj, src=0)
        return Path(obj[0])
    return next_run_dir(base)


def write_results(out: Path, history: list[dict]) -> None:
    """results.json and results.csv, one row per epoch, written atomically.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); write_results(d, [{"epoch": 1, "map50": 0.5}])
        >>> (d / "results.csv").read_text().splitlines()
        ['epoch,map50', '1,0.5']
    """
    from edgekit.io import atomic_write_text

    atomic_write_text(out / "results.json", json.dumps(history, indent=1))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history[0]), extrasaction="ignore")
    w.writeheader()
    w.writerows(history)
    atomic_write_text(out / "results.csv", buf.getvalue())


def load_history(out: Path, start_epoch: int) -> list[dict]:
    """The per-epoch rows a resumed run already wrote (rows past its checkpoint are dropped).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); write_results(d, [{"epoch": 1}, {"epoch": 2}])
        >>> load_history(d, 1)
        [{'epoch': 1}]
    """
    path = out / "results.json"
    return json.loads(path.read_text())[:start_epoch] if path.exists() else []


def restore_options(cls, saved: dict, out: Path, epochs: int, progress: bool):
    """The options of a run being resumed: as saved (augmentation included), ``epochs`` if larger.

    Keys that ``cls`` no longer has (a checkpoint of an older edgekit) are dropped rather than
    making the run impossible to resume.

    Example:
        >>> from dataclasses import asdict
        >>> from edgekit.train.detect import TrainOptions
        >>> saved = asdict(TrainOptions("yolo-lite", "d.yaml", epochs=3))
        >>> restore_options(TrainOptions, saved, Path("runs/x"), epochs=5, progress=False).epochs
        5
    """
    known = {f.name for f in fields(cls)}
    kept = {k: v for k, v in saved.items() if k in known}
    if isinstance(kept.get("augment"), dict):
        kept["augment"] = AugmentOptions(**kept["augment"])
    return cls(**{**kept, "resume": True, "epochs": max(epochs, saved["epochs"]), "out": str(out), "progress": progress})
