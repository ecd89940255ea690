"""``--keep-float``: mixed precision for INT8 targets, the most sensitive layers left in float.

``--keep-float NAME,...`` keeps those nodes in float; ``--keep-float N`` the N worst layers of
the sensitivity ranking (:mod:`edgekit.export.sensitivity`, measured on the held-out parity
images of this export); ``--keep-float auto`` first tries plain INT8 and, if the gate rejects
it, keeps the 1, 2, 4, 8, then 16 worst layers in float until the artifact passes. Every try
is a full conversion + verification: nothing passes that the gate did not see. The artifact's
manifest lists what stayed float (``conversion.kept_float``); the report row says how many
tries it took and what the float layers cost in host latency against plain INT8.

Built for ``onnx-int8`` (``quantize_static(nodes_to_exclude=...)``). LiteRT's and OpenVINO's
quantizers have their own per-op switches (ai-edge-quantizer's op config, NNCF's
``ignored_scope``); they are not wired in yet, and asking for them is an error, not a no-op.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from edgekit.errors import EdgekitError

TARGETS = ("onnx-int8",)
AUTO_STEPS = (1, 2, 4, 8, 16)


def parse_keep_float(spec: str | None):
    """None, ``"auto"``, a count, or a list of node names.

    Example:
        >>> parse_keep_float("auto"), parse_keep_float("3"), parse_keep_float("/a/Conv,/b/Conv")
        ('auto', 3, ['/a/Conv', '/b/Conv'])
    """
    if spec is None or spec == "":
        return None
    spec = str(spec).strip()
    if spec == "auto":
        return spec
    if spec.isdigit():
        if int(spec) < 1:
            raise EdgekitError("--keep-float N: N must be 1 or more (or 'auto', or node names)")
        return int(spec)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise EdgekitError("--keep-float: give 'auto', a number of layers, or node names separated by commas")
    return names


def check_targets(plan, chosen) -> None:
    """Refuse ``--keep-float`` for INT8 targets it is not built for (it would silently do nothing)."""
    if plan is None:
        return
    other = [t.name for t in chosen if t.quantized and t.name not in TARGETS]
    if other or not any(t.name in TARGETS for t in chosen):
        raise EdgekitError(f"--keep-float is built for {', '.join(TARGETS)} only so far (not {', '.join(other) or 'these targets'}): "
                           "export the other INT8 targets in a separate run without it")


def run_with_plan(plan, target, job, images, run_one: Callable, log):
    """Run ``run_one(job)`` for ``target`` under the keep-float ``plan``; the result notes what stayed float."""
    if plan is None or target.name not in TARGETS:
        return run_one(job)
    if isinstance(plan, list):
        return _tagged(run_one(_keeping(job, plan)), plan, tries=1)
    if isinstance(plan, int):
        rows = ranking(target, job, images, log)
        return _tagged(run_one(_keeping(job, _nodes(rows, plan))), _nodes(rows, plan), tries=1, layers=plan)
    plain = run_one(job)  # auto
    if plain.ok:
        return _tagged(plain, [], tries=1, layers=0)
    rows = ranking(target, job, images, log)
    result = plain
    for tries, k in enumerate((k for k in AUTO_STEPS if k <= len(rows)), start=2):
        nodes = _nodes(rows, k)
        log(f"{target.name}: --keep-float auto: trying the {k} worst layer(s) in float ...")
        result = _tagged(run_one(_keeping(job, nodes)), nodes, tries=tries, layers=k, plain=plain)
        if result.ok:
            return result
    result.reason = f"{result.reason}; --keep-float auto: still rejected with the {result.kept_float['layers']} worst layers in float"
    return result


def ranking(target, job, images, log) -> list[dict]:
    """Sensitivity rows of a plain INT8 conversion of this job, on the parity images."""
    from edgekit.export.sensitivity import onnx_sensitivity
    from edgekit.runtime.preprocess import letterbox, to_tensor

    plain = job.out.with_name(job.out.stem + "-plain" + job.out.suffix)
    log(f"{target.name}: ranking layers by INT8 error on {len(images)} held-out images ...")
    target.convert(dataclasses.replace(job, out=plain, options={**job.options, "keep_float": None}))
    feeds = [{job.calib.input_name: to_tensor(letterbox(img, job.source.imgsz)[0])} for img in images]
    try:
        return onnx_sensitivity(job.onnx_fp32, plain, feeds)
    finally:
        plain.unlink(missing_ok=True)


def _nodes(rows: list[dict], n: int) -> list[str]:
    from edgekit.export.sensitivity import keep_float_nodes

    return keep_float_nodes(rows, n)


def _keeping(job, nodes: list[str]):
    return dataclasses.replace(job, options={**job.options, "keep_float": list(nodes)})


def _tagged(result, nodes: list[str], tries: int, layers: int | None = None, plain=None):
    result.kept_float = {"nodes": list(nodes), "layers": layers if layers is not None else len(nodes), "tries": tries,
                         "plain_int8": None if plain is None else {"status": plain.status, "reason": plain.reason,
                                                                   "latency_ms": plain.latency_ms}}
    return result
