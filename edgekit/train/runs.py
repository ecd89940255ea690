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


# options about the machine, not the run: a resumed run takes them from the command line
MACHINE_OPTIONS = ("device", "workers", "threads", "bf16", "progress", "out", "resume")
# the command-line flag of an option whose flag is not --<name with dashes>
FLAGS = {"model_kwargs": "--width", "anchors": "--anchors"}


def resume_conflicts(opts, saved: dict) -> list[str]:
    """The options of ``opts`` that contradict the run being resumed, as ``--flag value (the run has value)``.

    An option left at its default takes the checkpoint's value; one set to something else must agree
    with the checkpoint: resuming with another ``--model``, ``--imgsz`` or ``--lr`` would silently mix
    two runs in one. ``--epochs`` may grow the run; ``--data`` is compared by content, after the data is
    read (:func:`data_changed`); the machine options (``--device``, ``--workers``, ``--threads``) are free.

    Example:
        >>> from dataclasses import asdict
        >>> from edgekit.train.detect import TrainOptions
        >>> saved = asdict(TrainOptions("yolo-lite", "d.yaml", imgsz=64, epochs=3))
        >>> resume_conflicts(TrainOptions("yolo-lite", "d.yaml", epochs=5, resume=True), saved)
        []
        >>> resume_conflicts(TrainOptions("tiny-yolov2", "d.yaml", imgsz=128, resume=True), saved)
        ['--model tiny-yolov2 (the run has yolo-lite)', '--imgsz 128 (the run has 64)']
    """
    defaults = type(opts)("_", "_")
    out = []
    for f in fields(opts):
        name = f.name
        if name in MACHINE_OPTIONS or name in ("epochs", "data") or name not in saved:
            continue
        value, was = asdict_or(getattr(opts, name)), saved[name]
        if name != "model" and value == asdict_or(getattr(defaults, name)):
            continue  # left at its default: the checkpoint's value is taken
        if value != was:
            flag = FLAGS.get(name, "--" + name.replace("_", "-"))
            shown = value.get("width", value) if name == "model_kwargs" and isinstance(value, dict) else value
            had = was.get("width", was) if name == "model_kwargs" and isinstance(was, dict) else was
            out.append(f"{flag} {shown} (the run has {had})")
    return out


def asdict_or(value):
    """``dataclasses.asdict`` for a dataclass, the value itself otherwise."""
    from dataclasses import asdict, is_dataclass

    return asdict(value) if is_dataclass(value) else value


def check_resume(opts, saved: dict, out: Path) -> None:
    """Refuse to resume ``out`` with options that contradict its checkpoint: one line naming them.

    Example:
        >>> from dataclasses import asdict
        >>> from edgekit.train.detect import TrainOptions
        >>> saved = asdict(TrainOptions("yolo-lite", "d.yaml", imgsz=64))
        >>> check_resume(TrainOptions("yolo-lite", "d.yaml", imgsz=128, resume=True), saved, Path("runs/x"))
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: --resume runs/x: --imgsz 128 (the run has 64) contradicts the checkpoint: drop the option to resume as trained, or start a new run with another --out
    """
    bad = resume_conflicts(opts, saved)
    if bad:
        raise EdgekitError(f"--resume {out}: {', '.join(bad)} contradict{'s' if len(bad) == 1 else ''} the checkpoint: "
                           "drop the option to resume as trained, or start a new run with another --out")


def data_changed(data: str, info: dict, saved: dict, out: Path) -> None:
    """Refuse to resume when the training data is not the data the checkpoint saw (by content hash).

    ``--data`` may name another path (a copied dataset): what counts is the images and labels.

    Example:
        >>> data_changed("d.yaml", {"train_hash": "ab"}, {"train_hash": "ab"}, Path("runs/x"))
        >>> data_changed("new.yaml", {"train_hash": "cd"}, {"source": "d.yaml", "train_hash": "ab"}, Path("runs/x"))
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: --resume runs/x: the training data of --data new.yaml is not the data the run was trained on (d.yaml; train split hash ab, now cd): resume with the original data, or start a new run with another --out
    """
    was, now = saved.get("train_hash"), info.get("train_hash")
    if was and now and was != now:
        raise EdgekitError(f"--resume {out}: the training data of --data {data} is not the data the run was trained on "
                           f"({saved.get('source', '?')}; train split hash {was}, now {now}): resume with the original "
                           "data, or start a new run with another --out")


def restore_options(cls, saved: dict, out: Path, epochs: int, progress: bool, given=None):
    """The options of a run being resumed: as saved (augmentation included), ``epochs`` if larger.

    With ``given`` (the options on the command line), its machine options (device, workers, threads)
    and its ``data`` path win: the checkpoint's data hash decides whether that data is the same
    (:func:`data_changed`). Keys that ``cls`` no longer has (a checkpoint of an older edgekit) are
    dropped rather than making the run impossible to resume.

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
    if given is not None:
        kept.update({k: getattr(given, k) for k in ("device", "workers", "threads", "data") if k in known})
    return cls(**{**kept, "resume": True, "epochs": max(epochs, saved["epochs"]), "out": str(out), "progress": progress})
