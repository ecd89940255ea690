"""The training engine: one epoch loop for every task (detection, classification...).

It owns what all tasks share, so they cannot drift apart: devices and DDP (torchrun, gloo),
AdamW with decay-free biases/norms, warm-up + cosine LR, EMA weights, validation of the
EMA every epoch, the fitness that picks ``best.pt`` (guarded), atomic
``weights/{best,last}.pt`` with every tensor on the CPU, ``results.json``/``.csv`` and
``--resume``. What differs per task comes from the hooks of
:class:`edgekit.train.task.TrainTask`.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.io import check_output_not_input
from edgekit.train.freeze import freeze, keep_frozen_eval
from edgekit.train.optim import ModelEMA, cosine_lr, optimizer_step, param_groups, warmup_iters
from edgekit.train.runs import check_resume, data_changed, load_history, resolve_out, restore_options, write_results
from edgekit.train.rng import restore_rng, rng_state
from edgekit.train.task import TrainTask

NO_BEST = -1.0  # below every real fitness (both tasks' fitness is in [0, 1]): the first epoch is best


def distributed(task: TrainTask) -> tuple[int, int]:
    """(rank, world size), initialising torch.distributed (gloo) under torchrun.

    A task that cannot run data-parallel is refused before any process group is created.

    Example:
        >>> from edgekit.train.detect import DetectionTask, TrainOptions
        >>> distributed(DetectionTask(TrainOptions("yolo-lite", "data.yaml")))  # a plain process, no torchrun
        (0, 1)
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not task.supports_ddp:
        raise EdgekitError(task.ddp_refusal or f"{task.name} training runs in one process: run it without torchrun")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    return (torch.distributed.get_rank() if world > 1 else 0), world


def pick_device(device: str, rank: int = 0, world: int = 1) -> torch.device:
    """``cuda[:i]`` or the CPU; under torchrun each rank takes its own GPU.

    Example:
        >>> pick_device("cpu")
        device(type='cpu')
    """
    if not device.startswith("cuda"):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise EdgekitError("--device cuda asked for, but torch sees no CUDA device: use --device cpu")
    if world == 1 and ":" in device:  # one process: the GPU asked for
        return torch.device(device)
    return torch.device(f"cuda:{rank % max(torch.cuda.device_count(), 1)}")


def guard_fitness(value) -> float:
    """A fitness the ``>`` comparison can use: a missing (older checkpoint) or non-finite one is ``NO_BEST``.

    Example:
        >>> guard_fitness(None), guard_fitness(float("nan")), guard_fitness(0.0), guard_fitness(0.31)
        (-1.0, -1.0, 0.0, 0.31)
    """
    if value is None:
        return NO_BEST
    value = float(value)
    return value if math.isfinite(value) else NO_BEST


def cpu_copy(obj):
    """``obj`` with every tensor detached and copied to the CPU (dicts, lists and tuples walked).

    A checkpoint must not hold CUDA tensors: loading it would need that GPU, and the copy
    must not alias the live weights that keep training.

    Example:
        >>> w = torch.ones(2)
        >>> c = cpu_copy({"state": {0: [w]}}); w += 1; c["state"][0][0]
        tensor([1., 1.])
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj


def save_best_last(out: Path, ck: dict, fit: float, best: float, optimizer, rng: dict | None = None,
                   model: torch.nn.Module | None = None) -> float:
    """Write ``last.pt`` (with the optimizer) and, when ``fit`` beats ``best``, ``best.pt``; returns the new best.

    Both files are written atomically by :func:`edgekit.models.checkpoint.save_checkpoint`.
    A run whose ``best.pt`` is missing (e.g. deleted before ``--resume``) gets one again.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()); (out / "weights").mkdir()
        >>> opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
        >>> save_best_last(out, {"epoch": 0}, 0.4, NO_BEST, opt), save_best_last(out, {"epoch": 1}, 0.3, 0.4, opt)
        (0.4, 0.4)
        >>> sorted(p.name for p in (out / "weights").iterdir())
        ['best.pt', 'last.pt']
    """
    from edgekit.models.checkpoint import save_checkpoint

    weights = out / "weights"
    if fit > best or not (weights / "best.pt").exists():
        best = max(fit, best)
        save_checkpoint(weights / "best.pt", {**ck, "best_fitness": best})
    # last.pt also holds the random state and the raw (not averaged) weights: a resumed run computes
    # exactly what the uninterrupted one would have
    save_checkpoint(weights / "last.pt", {**ck, "best_fitness": best, "optimizer": cpu_copy(optimizer.state_dict()),
                                          **({"rng": rng} if rng else {}),
                                          **({"train_state_dict": cpu_copy(model.state_dict())} if model else {})})
    return best


def make_checkpoint(task: TrainTask, model: torch.nn.Module, ema: ModelEMA, epoch: int, metrics: dict) -> dict:
    """The checkpoint of one epoch: the keys every task shares plus the task's extras.

    ``save_best_last`` adds ``best_fitness`` and, in ``last.pt``, the optimizer.

    Example:
        >>> ck = make_checkpoint(task, model, ema, epoch, metrics)  # doctest: +SKIP
        >>> ck["state_dict"]["head.0.weight"].device  # doctest: +SKIP
        device(type='cpu')
    """
    opts = task.opts
    return {"model": opts.model, "model_kwargs": task.model_kwargs, "names": list(task.names), "imgsz": opts.imgsz,
            "head_spec": dict(model.head_spec), "state_dict": cpu_copy(ema.ema.state_dict()), "epoch": epoch,
            "data": dict(task.data_info), "train_options": asdict(opts), "edgekit_version": __version__,
            "ema_updates": ema.updates, **task.checkpoint_extras(metrics)}


def loader_errors(batches):
    """The batches of a DataLoader; an EdgekitError raised in a loader worker comes back as its own one line.

    torch re-raises a worker's exception with the worker's traceback in the message; the user's
    problem (an image over the pixel limit, an unreadable file) is the last line of it.
    """
    try:
        yield from batches
    except EdgekitError as exc:
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        if len(lines) > 1:
            raise type(exc)(lines[-1].split("Error: ", 1)[-1]) from None
        raise


def _start(task: TrainTask, rank: int, world: int):
    """Run folder, the resume checkpoint (options restored from it), data and model."""
    from edgekit.models import list_models, model_task
    from edgekit.models.checkpoint import read_checkpoint

    opts = task.opts
    kind = model_task(opts.model)
    if kind != task.name:
        raise EdgekitError(f"model '{opts.model}' is a {kind} model, not a {task.name} one: train it with --task {kind}, "
                           f"or pick a {task.name} model ({', '.join(list_models(task=task.name))})")
    out = resolve_out(opts, rank, world)
    resume = read_checkpoint(out / "weights" / "last.pt", resume=True) if opts.resume else None
    if resume is not None:
        saved = resume.get("task", "detect")  # checkpoints older than the task key are detectors
        if saved != task.name:
            raise EdgekitError(f"{out} holds a {saved} run: resume it with --task {saved}")
        check_resume(opts, resume["train_options"], out)  # contradicting options: refused, never mixed in
        task.opts = opts = restore_options(type(opts), resume["train_options"], out, opts.epochs, opts.progress, opts)
    torch.manual_seed(opts.seed + rank)  # before the model is built: its initial weights follow the seed
    task.load_data()
    if resume is not None and list(task.names) != list(resume["names"]):
        raise EdgekitError(f"{opts.data} now has classes {list(task.names)}, the run was trained on "
                           f"{list(resume['names'])}: restore the dataset or start a new run")
    if resume is not None:
        data_changed(opts.data, task.data_info, resume.get("data") or {}, out)
    check_output_not_input(out, task.input_paths(), contains_ok=True)  # adds weights/ and results.* only
    return out, resume, task.build_model(resume)


def run(task: TrainTask) -> dict:
    """Train with the hooks of ``task``; returns the summary (paths, epochs done, the last results row).

    A resumed run that had already reached its epochs trains nothing and returns the same
    summary as when it finished. Under torchrun, ranks other than 0 return ``{}``.

    Example:
        >>> from edgekit.data import sample_data_yaml
        >>> from edgekit.train.detect import DetectionTask, TrainOptions
        >>> run(DetectionTask(TrainOptions("yolo-lite", str(sample_data_yaml()), imgsz=64, epochs=1)))  # doctest: +SKIP
        {'out': 'runs/train/yolo-lite', 'best': 'runs/train/yolo-lite/weights/best.pt', ..., 'epochs': 1, 'val': {...}}
    """
    from tqdm import tqdm

    rank, world = distributed(task)
    if task.opts.threads:
        # process-wide; on a small host, threads + loader workers must not exceed the cores
        torch.set_num_threads(task.opts.threads)
    device = pick_device(task.opts.device, rank, world)
    out, resume, model = _start(task, rank, world)
    opts = task.opts
    # channels-last: oneDNN's depthwise and 1x1 convolutions are faster in this layout on CPU
    # (benchmarks/train_step_speed.py -> results/train-step-speed.json)
    model = model.to(device, memory_format=torch.channels_last) if task.channels_last else model.to(device)
    loss_fn = task.get_loss(model)
    frozen = freeze(model, getattr(opts, "freeze", None))  # before the optimizer: it takes the trainable ones only
    if getattr(opts, "qat", False):  # before the EMA copy; the hooks act in training steps only (edgekit.train.qat)
        from edgekit.train.qat import attach

        frozen = frozen + attach(model)  # its batch norms keep their statistics, like frozen layers'
    ema = ModelEMA(model, updates=resume["ema_updates"] if resume else 0)
    if resume is not None and "train_state_dict" in resume:
        # the checkpoint's state_dict is the EMA; training goes on from the raw weights it averaged
        model.load_state_dict(resume["train_state_dict"])
    optimizer = torch.optim.AdamW(param_groups(model, opts.weight_decay), lr=opts.lr, betas=task.betas)
    start_epoch, best, history = 0, NO_BEST, []
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        start_epoch, best = resume["epoch"] + 1, guard_fitness(resume.get("best_fitness"))
        history = load_history(out, start_epoch)
    train_set = task.get_dataset()
    sampler = (torch.utils.data.distributed.DistributedSampler(train_set, seed=opts.seed) if world > 1
               else task.get_sampler())
    loader = DataLoader(train_set, batch_size=opts.batch, shuffle=sampler is None, sampler=sampler,
                        num_workers=opts.workers, collate_fn=task.collate_fn, drop_last=len(train_set) > opts.batch,
                        generator=torch.Generator().manual_seed(opts.seed))
    if resume is not None and world == 1:
        restore_rng(resume.get("rng"), loader, sampler)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    nb = len(loader)
    total_iters = max(opts.epochs * nb, 1)
    warmup = warmup_iters(opts.warmup_epochs, nb, total_iters)
    if rank == 0:
        (out / "weights").mkdir(parents=True, exist_ok=True)
    # a run resumed after its last epoch trains nothing: its summary is the one it finished with
    summary = {"out": str(out), "best": str(out / "weights" / "best.pt"), "last": str(out / "weights" / "last.pt"),
               "epochs": start_epoch, "val": history[-1] if history else None}
    for epoch in range(start_epoch, opts.epochs):
        t0 = time.time()
        model.train()
        keep_frozen_eval(frozen)
        if hasattr(train_set, "epoch"):  # per-epoch augmentation streams
            train_set.epoch = epoch
        if world > 1:
            sampler.set_epoch(epoch)
        sums: dict[str, float] = {}
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{opts.epochs}", disable=not (opts.progress and rank == 0), leave=False)
        for i, batch in enumerate(loader_errors(bar)):
            for g in optimizer.param_groups:
                g["lr"] = cosine_lr(epoch * nb + i, total_iters, warmup, opts.lr)
            # bf16 autocast: convolutions and matmuls in bf16 (fp32 accumulation), the rest fp32;
            # 1.4-1.6x per step on an AVX-512 BF16 CPU (benchmarks/results/train-step-speed.json)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(getattr(opts, "bf16", False))):
                loss, stats = loss_fn(net, batch, device)
            optimizer_step(model, optimizer, ema, loss, epoch, task.nan_hint)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix({k: f"{v:.4f}" for k, v in task.train_columns(sums, i + 1).items()})
        if rank != 0:  # rank 0 validates and writes; the others go on to the next epoch
            continue
        metrics = task.evaluate(ema.ema, device)
        row = {"epoch": epoch + 1, **task.train_columns(sums, nb), **task.val_columns(metrics),
               "lr": round(cosine_lr(epoch * nb + nb - 1, total_iters, warmup, opts.lr), 7),
               "epoch_s": round(time.time() - t0, 1)}
        history.append(row)
        write_results(out, history)
        best = save_best_last(out, make_checkpoint(task, model, ema, epoch, metrics),
                              guard_fitness(task.fitness(metrics)), best, optimizer,
                              rng_state(loader, sampler) if world == 1 else None, model)
        if opts.progress:
            print(f"epoch {epoch + 1}/{opts.epochs}  {task.epoch_line(row)}  {row['epoch_s']:.0f}s", flush=True)
        summary.update(epochs=epoch + 1, val=row)
    if world > 1:
        torch.distributed.barrier()
    return summary if rank == 0 else {}
