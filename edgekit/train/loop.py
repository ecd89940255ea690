"""The training loop behind :func:`edgekit.train.train` (setup, epochs, checkpoints, DDP)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.runtime.decode import anchors_in_pixels
from edgekit.train.trainer import (ModelEMA, TrainOptions, cosine_lr, data_hash, fit_anchors, fitness, load_history,
                                   next_run_dir, optimizer_step, param_groups, restore_options, save_best_last,
                                   warmup_iters, write_results)


def distributed() -> tuple[int, int]:
    """(rank, world size), initialising torch.distributed (gloo) under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    return (torch.distributed.get_rank() if world > 1 else 0), world


def resolve_out(opts: TrainOptions, rank: int, world: int) -> Path:
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
        obj = [str(next_run_dir(base)) if rank == 0 else None]
        torch.distributed.broadcast_object_list(obj, src=0)
        return Path(obj[0])
    return next_run_dir(base)


def build_model(opts: TrainOptions, ds, records):
    from edgekit.models import create_model

    if opts.weights:
        ck = read_weights(opts)
        if ck["model"] == opts.model:
            return init_from(opts, ds, ck)
    kwargs = dict(opts.model_kwargs)
    probe = create_model(opts.model, num_classes=ds.num_classes, imgsz=opts.imgsz, **kwargs)
    n_anchors = sum(len(g) for g in probe.head_spec["anchors"])
    anchors = fit_anchors(records, opts.imgsz, n_anchors, opts.seed) if opts.anchors == "kmeans" else None
    model = create_model(opts.model, num_classes=ds.num_classes, anchors=anchors, imgsz=opts.imgsz, **kwargs)
    kwargs["imgsz"] = opts.imgsz
    if model.head_spec["type"] == "yolo":
        # grid sensitivity: a cell may predict centres up to half a cell outside it, so the
        # loss can assign each box to neighbouring cells too (3x the positives)
        model.head_spec["scale_x_y"] = [2.0] * len(model.head_spec["strides"])
    if opts.weights:  # another model sharing layers (e.g. the backbone): transfer what fits
        n = load_fitting(model, ck["state_dict"])
        if n == 0:
            raise EdgekitError(f"--weights {opts.weights} ('{ck['model']}') shares no layer with '{opts.model}': "
                               f"start from scratch, or use a checkpoint of a model with the same backbone")
        if opts.progress:
            print(f"transferred {n} of {len(model.state_dict())} tensors from {opts.weights} ('{ck['model']}')")
    anchors_px = [a.tolist() for a in anchors_in_pixels(model.head_spec)]
    return model, kwargs, anchors_px


def read_weights(opts: TrainOptions) -> dict:
    """The ``--weights`` checkpoint, which must hold a detector."""
    from edgekit.models.checkpoint import read_checkpoint

    ck = read_checkpoint(opts.weights)
    if ck.get("task", "detect") != "detect":
        raise EdgekitError(f"--weights {opts.weights} holds a {ck.get('task')} model, not a detector: "
                           f"start from scratch, or give a detector checkpoint")
    return ck


def load_fitting(model: torch.nn.Module, state_dict: dict) -> int:
    """Load the tensors whose names and shapes match ``model``'s; returns how many."""
    own = model.state_dict()
    fits = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    return len(fits)


def init_from(opts: TrainOptions, ds, ck: dict):
    """Fine-tuning: the model, options and anchors of the ``--weights`` checkpoint ``ck``; a head
    whose class count differs from the data's is re-initialised (its shapes no longer fit)."""
    from edgekit.models import create_model

    kwargs = {**ck.get("model_kwargs", {}), "imgsz": opts.imgsz}
    model = create_model(opts.model, num_classes=ds.num_classes, anchors=ck["anchors"], **kwargs)
    model.head_spec["scale_x_y"] = list(ck["head_spec"].get("scale_x_y", model.head_spec["scale_x_y"]))
    load_fitting(model, ck["state_dict"])
    return model, kwargs, [a.tolist() for a in anchors_in_pixels(model.head_spec)]


def make_checkpoint(opts, kwargs, names, anchors_px, head_spec, ema, epoch, metrics, dhash) -> dict:
    """The checkpoint dict of one epoch (``save_best_last`` adds best_fitness and the optimizer)."""
    return {"model": opts.model, "model_kwargs": kwargs, "names": list(names), "imgsz": opts.imgsz, "anchors": anchors_px,
            "head_spec": head_spec, "state_dict": {k: v.detach().clone() for k, v in ema.ema.state_dict().items()},
            "epoch": epoch, "metrics": metrics, "data": {"source": str(opts.data), "train_hash": dhash},
            "train_options": asdict(opts), "edgekit_version": __version__, "ema_updates": ema.updates}


def run_training(opts: TrainOptions) -> dict:
    from tqdm import tqdm

    from edgekit.data import load_dataset
    from edgekit.models.checkpoint import read_checkpoint
    from edgekit.train.loader import DetectionTrainSet, collate
    from edgekit.train.loss import YoloLoss
    from edgekit.validate import validate

    rank, world = distributed()
    if opts.threads:
        # process-wide; on a small host, threads + loader workers must not exceed the cores
        torch.set_num_threads(opts.threads)
    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        raise EdgekitError("--device cuda asked for, but torch sees no CUDA device: use --device cpu")
    device = torch.device(f"cuda:{rank % max(torch.cuda.device_count(), 1)}" if opts.device.startswith("cuda") else "cpu")
    torch.manual_seed(opts.seed + rank)
    ds = load_dataset(opts.data)
    train_recs = [r for r in ds.split("train") if r.valid_mask().any() or len(r.classes) == 0]
    if opts.max_train_images:
        train_recs = train_recs[:opts.max_train_images]
    val_recs = ds.split("val")
    out = resolve_out(opts, rank, world)
    resume = read_checkpoint(out / "weights" / "last.pt") if opts.resume else None
    if resume is not None:
        opts = restore_options(TrainOptions, resume["train_options"], out, opts.epochs, opts.progress)
    model, kwargs, anchors_px = (build_model(opts, ds, train_recs) if resume is None else (None, None, None))
    if resume is not None:
        from edgekit.models.checkpoint import model_from_checkpoint

        model = model_from_checkpoint(resume).train()
        kwargs, anchors_px = resume["model_kwargs"], resume["anchors"]
    # channels-last: oneDNN's depthwise and 1x1 convolutions are faster in this layout on CPU
    # (benchmarks/train_step_speed.py -> results/train-step-speed.json)
    model = model.to(device, memory_format=torch.channels_last)
    head_spec = model.head_spec
    loss_fn = YoloLoss(head_spec)
    ema = ModelEMA(model, updates=resume["ema_updates"] if resume else 0)
    optimizer = torch.optim.AdamW(param_groups(model, opts.weight_decay), lr=opts.lr, betas=(0.937, 0.999))
    start_epoch, best, history = 0, -1.0, []
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        start_epoch, best = resume["epoch"] + 1, resume["best_fitness"] or -1.0
        history = load_history(out, start_epoch)
    train_set = DetectionTrainSet(train_recs, opts.imgsz, augment=opts.augment, seed=opts.seed)
    sampler = torch.utils.data.distributed.DistributedSampler(train_set, seed=opts.seed) if world > 1 else None
    loader = DataLoader(train_set, batch_size=opts.batch, shuffle=sampler is None, sampler=sampler,
                        num_workers=opts.workers, collate_fn=collate, drop_last=len(train_set) > opts.batch,
                        generator=torch.Generator().manual_seed(opts.seed))
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    nb = len(loader)
    total_iters = max(opts.epochs * nb, 1)
    warmup = warmup_iters(opts.warmup_epochs, nb, total_iters)

    def lr_at(it: int) -> float:
        return cosine_lr(it, total_iters, warmup, opts.lr)

    dhash = data_hash(train_recs)
    if rank == 0:
        (out / "weights").mkdir(parents=True, exist_ok=True)
    summary = {}
    for epoch in range(start_epoch, opts.epochs):
        t0 = time.time()
        model.train()
        train_set.epoch = epoch
        if sampler is not None:
            sampler.set_epoch(epoch)
        sums = {"box": 0.0, "obj": 0.0, "cls": 0.0}
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{opts.epochs}", disable=not (opts.progress and rank == 0), leave=False)
        for i, (x, targets) in enumerate(bar):
            for g in optimizer.param_groups:
                g["lr"] = lr_at(epoch * nb + i)
            loss, parts = loss_fn(net(x.to(device, memory_format=torch.channels_last)), targets)
            optimizer_step(model, optimizer, ema, loss, epoch, "check the labels with `edgekit data check`")
            for k in sums:
                sums[k] += parts[k]
            bar.set_postfix({k: f"{v / (i + 1):.4f}" for k, v in sums.items()})
        if rank != 0:
            continue
        metrics = validate(ema.ema, val_recs, ds.names, opts.imgsz, device=str(device))
        fit = fitness(metrics)
        row = {"epoch": epoch + 1, **{f"loss_{k}": round(v / max(nb, 1), 5) for k, v in sums.items()},
               "map50": round(metrics["map50"], 5), "map50_95": round(metrics["map50_95"], 5),
               "lr": round(lr_at(epoch * nb + nb - 1), 7), "epoch_s": round(time.time() - t0, 1)}
        history.append(row)
        write_results(out, history)
        ck = make_checkpoint(opts, kwargs, ds.names, anchors_px, head_spec, ema, epoch,
                             {"val": {"map50": metrics["map50"], "map50_95": metrics["map50_95"]}}, dhash)
        best = save_best_last(out, ck, fit, best, optimizer)
        if opts.progress:
            print(f"epoch {epoch + 1}/{opts.epochs}  loss box {row['loss_box']:.4f} obj {row['loss_obj']:.4f} "
                  f"cls {row['loss_cls']:.4f}  val mAP50 {row['map50']:.4f} mAP50-95 {row['map50_95']:.4f}  {row['epoch_s']:.0f}s",
                  flush=True)
        summary = {"out": str(out), "best": str(out / "weights" / "best.pt"), "last": str(out / "weights" / "last.pt"),
                   "epochs": epoch + 1, "val": row}
    if world > 1:
        torch.distributed.barrier()
    return summary
