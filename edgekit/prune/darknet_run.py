"""``edgekit prune --weights model.cfg``: prune a Darknet model and write it back as ``.cfg`` + ``.weights``.

edgekit trains registered models only, so a Darknet model is pruned without fine-tuning
here: the K steps run back to back and the result is meant to be fine-tuned where the model
lives (Darknet), or exported as is with ``edgekit export out/pruned.cfg --weights out/pruned.weights``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.prune.options import PruneOptions


def prune_darknet(opts: PruneOptions, log: Callable[[str], None]) -> dict:
    """Prune the Darknet ``opts.weights`` (.cfg) by ``opts.ratio`` or to ``opts.target_macs``; returns the report dict.

    Example:
        >>> prune_darknet(PruneOptions("yolov3-tiny.cfg", "data.yaml", ratio=0.3), print)["after"]["macs"]  # doctest: +SKIP
    """
    from edgekit.models import load_darknet
    from edgekit.prune.darknet_out import write_pruned_darknet
    from edgekit.prune.model import prune_model
    from edgekit.prune.protect import protected_layers
    from edgekit.prune.report import write_report
    from edgekit.prune.schedule import figures, prunable_channels, step_ratio

    cfg = Path(opts.weights)
    if not cfg.is_file():
        raise EdgekitError(f"{cfg} does not exist: give a Darknet .cfg (and its .weights with --darknet-weights)")
    if opts.mode == "target_latency":
        raise EdgekitError("--target-latency needs fine-tuning rounds edgekit runs on its own checkpoints only: "
                           "use --ratio or --target-macs for a Darknet cfg")
    if opts.importance == "taylor":
        raise EdgekitError("--importance taylor needs the training loss, which edgekit has for its own checkpoints "
                           "only: use l1, l2 or bn-scale for a Darknet cfg")
    model = load_darknet(cfg, opts.darknet_weights).eval()
    imgsz = int(opts.imgsz or model.head_spec["imgsz"][0])
    out = Path(opts.out or Path("runs") / "prune" / cfg.stem)
    before = figures(model, imgsz)
    channels0 = prunable_channels(model, protected_layers(model, opts.ignore))
    if opts.target_macs is not None and opts.target_macs >= before["macs"]:
        raise EdgekitError(f"--target-macs {opts.target_macs:,} is not below the model's {before['macs']:,} MACs: "
                           "give a smaller budget")
    protected_layers(model, opts.ignore)  # a bad --ignore fails before any work
    log(f"prune {cfg.name}: {before['params']:,} params, {before['macs']:,} MACs at {imgsz} px "
        "(Darknet model: no fine-tuning in edgekit)")
    steps = [{"step": 0, **before, "channels": channels0, "ratio": 0.0, "map50": None}]
    for k in range(1, opts.steps + 1):
        if opts.ratio is not None:
            prune_model(model, imgsz, ratio=step_ratio(opts.ratio, opts.steps, k), importance=opts.importance,
                        round_to=opts.round_to, ignore=opts.ignore)
        else:
            target = int(before["macs"] * (opts.target_macs / before["macs"]) ** (k / opts.steps))
            prune_model(model, imgsz, target_macs=target, importance=opts.importance, round_to=opts.round_to,
                        ignore=opts.ignore)
        channels = prunable_channels(model, protected_layers(model, opts.ignore))
        steps.append({"step": k, **figures(model, imgsz), "channels": channels,
                      "ratio": round(1 - channels / channels0, 4), "map50": None})
    cfg_out, weights_out = write_pruned_darknet(cfg, model, out)
    result = {"model": cfg.stem, "ratio": steps[-1]["ratio"], "mode": opts.mode, "importance": opts.importance,
              "round_to": opts.round_to, "imgsz": imgsz, "source": str(cfg), "out": str(out),
              "weights": str(cfg_out), "darknet_weights": str(weights_out), "finetune_epochs": 0,
              "before": {**before, "map50": None}, "after": {**figures(model, imgsz), "map50": None},
              "steps": steps, "map_split": None}
    result.update(write_report(result, out))
    return result
