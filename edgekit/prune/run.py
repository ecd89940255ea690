"""``prune()``: K steps of channel pruning, each followed by fine-tuning, then the pruned checkpoint.

Layout of ``--out`` (every file written atomically; a run stopped at any point resumes from it)::

    out/step<k>/pruned.pt        the model right after step k's pruning (a normal checkpoint)
    out/step<k>/finetune/        its fine-tuning (the engine's run folder: weights/best.pt, results.json)
    out/step<k>/done.json        the step's record (MACs, params, val mAP)
    out/pruned.pt                the result: the last step's best, with the run's record under "prune"
    out/prune_report.json/.html  before/after figures and the mAP-vs-MACs curve
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.prune.options import PruneOptions


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def registry_model(ck: dict):
    """The checkpoint's model as the registry builds it (unpruned, random weights): the reference for channel counts.

    Example:
        >>> registry_model(read_checkpoint("pruned.pt")).head.convs[0].in_channels  # doctest: +SKIP
        128
    """
    from edgekit.models import create_model

    return create_model(ck["model"], num_classes=len(ck["names"]), anchors=ck["anchors"], **ck.get("model_kwargs", {}))


def pruned_checkpoint(ck: dict, model, reference, record: dict) -> dict:
    """A normal edgekit checkpoint of ``model`` (pruned from ``ck``'s): the channel counts go under ``"pruned"``.

    Example:
        >>> save_checkpoint("p.pt", pruned_checkpoint(ck, model, registry_model(ck), {"step": 1}))  # doctest: +SKIP
    """
    from edgekit.models.channels import channel_counts
    from edgekit.train.engine import cpu_copy

    keep = {k: v for k, v in ck.items() if k not in ("optimizer", "ema_updates", "best_fitness", "state_dict", "format")}
    return {**keep, "state_dict": cpu_copy(model.state_dict()), "pruned": channel_counts(model, reference),
            "prune": record}


def _read_detector(path: str) -> dict:
    from edgekit.train.detect import read_weights

    if not str(path).endswith(".pt"):
        raise EdgekitError(f"--weights {path} is neither an edgekit checkpoint (.pt) nor a Darknet .cfg: "
                           "give the best.pt of `edgekit train`, or a .cfg (with --darknet-weights)")
    return read_weights(path)


def _check_data(opts: PruneOptions, ck: dict) -> None:
    from edgekit.data import load_dataset

    names = load_dataset(opts.data).names
    if list(names) != list(ck["names"]):
        raise EdgekitError(f"{opts.data} has classes {list(names)} but {opts.weights} was trained on {list(ck['names'])}: "
                           "prune with the data the model was trained on")


def _validate(model, data: str, imgsz: int) -> dict:
    """Val-split mAP of ``model`` (a checkpoint without recorded metrics)."""
    from edgekit.data import load_dataset
    from edgekit.validate import validate

    ds = load_dataset(data)
    return validate(model, ds.split("val"), ds.names, imgsz)


class _Stepper:
    """Prunes ``model`` one step at a time toward the run's target (ratio, MACs or latency)."""

    def __init__(self, opts: PruneOptions, model, imgsz: int, macs0: int, log: Callable[[str], None]):
        from edgekit.prune.importance import make_importance
        from edgekit.prune.protect import protected_layers

        self.opts, self.imgsz, self.macs0, self.log = opts, imgsz, macs0, log
        protected_layers(model, opts.ignore)  # bad --ignore patterns fail before any work
        make_importance(opts.importance, model)  # bn-scale on a BN-free model fails here
        self.target_macs = opts.target_macs
        if opts.target_macs is not None and opts.target_macs >= macs0:
            raise EdgekitError(f"--target-macs {opts.target_macs:,} is not below the model's {macs0:,} MACs: "
                               "give a smaller budget")
        self._grads = None

    def step(self, model, k: int, steps: int) -> None:
        from edgekit.prune.importance import make_importance
        from edgekit.prune.protect import protected_layers
        from edgekit.prune.schedule import prune_by_ratio, prune_to_macs, step_ratio

        ignored = protected_layers(model, self.opts.ignore)
        importance = make_importance(self.opts.importance, model)
        refresh = self._taylor_refresh(model) if self.opts.importance == "taylor" else None
        if self.target_macs is None:
            if refresh:
                refresh()
            prune_by_ratio(model, self.imgsz, importance, ignored, step_ratio(self.opts.ratio, steps, k),
                           self.opts.round_to)
        else:  # a geometric MAC schedule: every step removes the same fraction of what is left
            target = int(self.macs0 * (self.target_macs / self.macs0) ** (min(k, steps) / steps))
            prune_to_macs(model, self.imgsz, importance, ignored, target, self.opts.round_to, before_each=refresh)

    def _taylor_refresh(self, model):
        """A callable filling ``model``'s gradients with the loss of a few training batches."""
        from itertools import islice

        from torch.utils.data import DataLoader

        from edgekit.data import load_dataset
        from edgekit.prune.importance import accumulate_gradients
        from edgekit.train.loader import DetectionTrainSet, collate
        from edgekit.train.loss import YoloLoss

        if self._grads is None:
            recs = [r for r in load_dataset(self.opts.data).split("train") if r.valid_mask().any()]
            # the model's own resize (a Darknet-cfg-trained checkpoint may stretch), as it was trained
            self._grads = DataLoader(DetectionTrainSet(recs[:64], self.imgsz, seed=self.opts.seed,
                                                       resize=getattr(model, "resize", "letterbox")),
                                     batch_size=8, shuffle=False, collate_fn=collate)
        yolo = YoloLoss(model.head_spec)

        def loss_fn(net, batch):
            x, targets = batch
            return yolo(net(x), targets)

        return lambda: accumulate_gradients(model, loss_fn, islice(self._grads, 4))


def prune(opts: PruneOptions, log: Callable[[str], None] = _stderr) -> dict:
    """Prune ``opts.weights`` over K steps with fine-tuning; write ``out/pruned.pt`` and the report.

    Returns:
        The report dict in the ``benchmarks/results/prune-<model>.json`` schema: ``model``, ``ratio``,
        ``before``/``after`` (params, macs, map50, map50_95, latency_ms per target), ``steps``
        (macs, map50 after each step's fine-tuning), plus ``out`` and the paths written.

    Example:
        >>> r = prune(PruneOptions("best.pt", "data.yaml", ratio=0.3, steps=2, measure=False))  # doctest: +SKIP
        >>> r["after"]["macs"] < r["before"]["macs"]  # doctest: +SKIP
        True
    """
    from edgekit.models.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint
    from edgekit.prune.measure import latency_of, measure_before_after
    from edgekit.prune.report import write_report
    from edgekit.prune.schedule import figures, prunable_channels
    from edgekit.prune.protect import protected_layers

    opts.check()
    if str(opts.weights).lower().endswith(".cfg"):
        from edgekit.prune.darknet_run import prune_darknet

        return prune_darknet(opts, log)
    ck = _read_detector(opts.weights)
    _check_data(opts, ck)
    imgsz = opts.imgsz or ck["imgsz"]
    if not isinstance(imgsz, int):  # a [h, w] checkpoint (trained with --imgsz WxH)
        from edgekit.input_size import size_text

        raise EdgekitError(f"{opts.weights} has a rectangular input {size_text(imgsz)}: pruning takes square "
                           "inputs for now; prune a square checkpoint, then fine-tune it with --imgsz WxH")
    out = Path(opts.out or Path("runs") / "prune" / ck["model"])
    model = model_from_checkpoint(ck)
    reference = registry_model(ck)
    before = figures(model, imgsz)
    channels0 = prunable_channels(model, protected_layers(model, opts.ignore))
    stepper = _Stepper(opts, model, imgsz, before["macs"], log)  # bad options fail here, before anything is written
    out.mkdir(parents=True, exist_ok=True)
    val0 = (ck.get("metrics") or {}).get("val") or _validate(model, opts.data, imgsz)
    steps = [{"step": 0, **before, "channels": channels0, "ratio": 0.0, "map50": val0.get("map50"),
              "map50_95": val0.get("map50_95")}]
    log(f"prune {ck['model']}: {before['params']:,} params, {before['macs']:,} MACs at {imgsz} px")

    planned = opts.steps
    latency_what = f"estimated {opts.board} latency" if opts.board else "onnx latency"  # measured on this host
    if opts.mode == "target_latency":  # MACs in proportion to latency; corrected after the planned steps
        lat0 = latency_of(opts.weights, opts, out / "latency" / "step0", imgsz, log)
        stepper.target_macs = int(before["macs"] * min(opts.target_latency_ms / lat0, 0.95))
        log(f"{latency_what} {lat0:.2f} ms: aiming at {stepper.target_macs:,} MACs for {opts.target_latency_ms} ms")
    k, best = 0, Path(opts.weights)
    while k < planned:
        k += 1
        step_dir = out / f"step{k}"
        done = step_dir / "done.json"
        if done.exists():  # resumed: this step and its fine-tuning finished before
            record = json.loads(done.read_text())
            best = Path(record["weights"])
            model = model_from_checkpoint(read_checkpoint(best))
        else:
            record, best = _one_step(opts, ck, model, reference, stepper, step_dir, k, planned, imgsz, channels0, log)
            model = model_from_checkpoint(read_checkpoint(best))
            (step_dir / "done.json").write_text(json.dumps(record, indent=2))
        steps.append(record)
        log(f"step {k}: {record['macs']:,} MACs ({record['macs'] / before['macs']:.0%}), val mAP50 {record['map50']}")
        if k == planned and opts.mode == "target_latency":  # the last step's latency is always recorded
            lat = latency_of(best, opts, out / "latency" / f"step{k}", imgsz, log)
            log(f"step {k}: {latency_what} {lat:.2f} ms (target {opts.target_latency_ms} ms)")
            record["latency_ms_estimated" if opts.board else "latency_ms_onnx"] = lat
            if lat > opts.target_latency_ms and k < 2 * opts.steps:
                stepper.target_macs = int(record["macs"] * min(opts.target_latency_ms / lat, 0.95))
                planned += 1
            elif lat > opts.target_latency_ms:
                log(f"the target {opts.target_latency_ms} ms was not reached in {k} steps: ask again from the pruned "
                    "model, or for more --steps")
    final = read_checkpoint(best)
    result = {"model": ck["model"], "ratio": round(1 - steps[-1]["channels"] / channels0, 4),
              "mode": opts.mode, "asked": {"ratio": opts.ratio, "target_macs": opts.target_macs,
                                           "target_latency_ms": opts.target_latency_ms,
                                           **({"board": opts.board, "board_runtime": opts.board_runtime,
                                               "board_precision": opts.board_precision} if opts.board else {})},
              "importance": opts.importance, "round_to": opts.round_to, "imgsz": imgsz,
              "finetune_epochs": opts.finetune_epochs, "final_epochs": opts.final_epochs,
              "source": str(opts.weights), "out": str(out), "weights": str(out / "pruned.pt"),
              "before": {**before, "map50": steps[0]["map50"], "map50_95": steps[0]["map50_95"]},
              "after": {"params": steps[-1]["params"], "macs": steps[-1]["macs"], "map50": steps[-1]["map50"],
                        "map50_95": steps[-1]["map50_95"]},
              "steps": steps, "map_split": "val"}
    save_checkpoint(out / "pruned.pt", {**final, "prune": {k: result[k] for k in ("mode", "asked", "ratio", "importance",
                                                                                  "round_to", "source")}})
    if opts.measure:
        result.update(measure_before_after(result, Path(opts.weights), out / "pruned.pt", opts, out, imgsz, log))
    result.update(write_report(result, out))
    return result


def _one_step(opts, ck, model, reference, stepper, step_dir: Path, k: int, planned: int, imgsz: int,
              channels0: int, log) -> tuple[dict, Path]:
    """Prune step ``k`` (unless ``pruned.pt`` of an interrupted run is there), then fine-tune it."""
    from edgekit.models.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint
    from edgekit.prune.finetune import fine_tune
    from edgekit.prune.protect import protected_layers
    from edgekit.prune.schedule import figures, prunable_channels

    pruned_path = step_dir / "pruned.pt"
    if pruned_path.exists():
        model = model_from_checkpoint(read_checkpoint(pruned_path))
    else:
        stepper.step(model, k, planned)
        model.zero_grad(set_to_none=True)
        save_checkpoint(pruned_path, pruned_checkpoint(ck, model, reference, {"step": k}))
    macs_params = figures(model, imgsz)
    channels = prunable_channels(model, protected_layers(model, opts.ignore))
    epochs = opts.finetune_epochs if k < opts.steps else (opts.final_epochs or opts.finetune_epochs)
    if epochs > 0:
        log(f"step {k}: {macs_params['macs']:,} MACs, fine-tuning {epochs} epoch(s) in {step_dir / 'finetune'}")
        # its own folder: the engine refuses an --out that contains its --weights
        summary = fine_tune(pruned_path, ck["model"], step_dir / "finetune", epochs, imgsz, opts)
        best = Path(summary["best"])
        val = read_checkpoint(best)["metrics"]["val"]
    else:
        val, best = _validate(model, opts.data, imgsz), pruned_path
    record = {"step": k, **macs_params, "channels": channels, "ratio": round(1 - channels / channels0, 4),
              "map50": round(float(val["map50"]), 5), "map50_95": round(float(val["map50_95"]), 5),
              "epochs": epochs, "lr": opts.lr if epochs > 0 else None, "weights": str(best)}
    return record, best
