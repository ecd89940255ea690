"""``--keep-float``: mixed precision for INT8 targets, the most sensitive layers left in float.

``--keep-float NAME,...`` keeps those nodes in float; ``--keep-float N`` the N worst layers of
the sensitivity ranking (:mod:`edgekit.export.sensitivity`, measured on the held-out parity
images of this export); ``--keep-float auto`` first tries plain INT8 and, if the gate rejects
it, keeps the 1, 2, 4, 8, then 16 worst layers in float until the artifact passes, then every layer from
the input through the deepest of the 1, 2, 4, 8, 16 worst (a layer that amplifies its input's rounding
needs its producers in float too: :func:`edgekit.export.sensitivity.prefix_nodes`) (on onnx-int8
a layer comes with the layers reading its output, or its output would stay INT8:
:func:`edgekit.export.sensitivity.keep_float_nodes`). Every try
is a full conversion + verification: nothing passes that the gate did not see. With
``--keep-float-budget X`` a try slower than X times the plain INT8 artifact (host latency) is
rejected and auto stops there: float layers must not eat the INT8 speed-up. The artifact's
manifest lists what stayed float (``conversion.kept_float``); the report row says how many
tries it took and what the float layers cost in host latency against plain INT8.

Built for the three quantizers with a per-layer switch: ``onnx-int8``
(``quantize_static(nodes_to_exclude=...)``), ``tflite-int8`` (ai-edge-quantizer recipe entries
with ``no_quantize`` for the named ops) and ``openvino-int8`` (NNCF ``ignored_scope``). The
ranking comes from :func:`edgekit.export.layer_ranking.rank_layers`, with each target's own
quantizer; names are each target's own (``edgekit quant-report --target T`` lists them).
Asked for another INT8 target, ``--keep-float`` is an error, not a no-op.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from edgekit.errors import EdgekitError
from edgekit.export.sensitivity import keep_float_nodes, prefix_nodes

TARGETS = ("onnx-int8", "tflite-int8", "openvino-int8")
AUTO_STEPS = (1, 2, 4, 8, 16)


MAX_NAMES_FILE = 1 << 20  # a names file is a list of layer names: a megabyte is thousands of them


def parse_keep_float(spec: str | None):
    """None, ``"auto"``, a count, or a list of node names (``@FILE``: read from a file, one or more per line).

    A names file may hold comments (``#`` to the end of the line); names are separated by commas or new lines.
    A model's mixed-precision recipe can then ship beside its weights and be reused as it is.

    Example:
        >>> parse_keep_float("auto"), parse_keep_float("3"), parse_keep_float("/a/Conv,/b/Conv")
        ('auto', 3, ['/a/Conv', '/b/Conv'])
    """
    if spec is None or spec == "":
        return None
    spec = str(spec).strip()
    if spec.startswith("@"):
        return _names_file(spec[1:])
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
        raise EdgekitError(f"--keep-float is built for {', '.join(TARGETS)} (not {', '.join(other) or 'float targets'}): "
                           "export the other targets in a separate run without it")


def run_with_plan(plan, target, job, images, run_one: Callable, log, plain=None, budget: float | None = None):
    """Run ``run_one(job)`` for ``target`` under the keep-float ``plan``; the result notes what stayed float.

    ``plain``: the plain INT8 result of this job when it was already made (``--calib-method auto``).
    ``budget`` (``--keep-float-budget``, auto only): a try may take at most ``budget`` times the plain
    INT8 artifact's host latency; a try over it is rejected like a gate failure, and auto stops
    there (more float layers only cost more).
    """
    if plan is None or target.name not in TARGETS:
        return plain if plain is not None else run_one(job)
    if isinstance(plan, list):
        return _tagged(run_one(_keeping(job, plan)), plan, tries=1)
    if isinstance(plan, int):
        rows = ranking(target, job, images, log)
        nodes = keep_float_nodes(rows, plan)
        return _tagged(run_one(_keeping(job, nodes)), nodes, tries=1, layers=plan)
    plain = plain if plain is not None else run_one(job)  # auto
    if plain.ok:
        return _tagged(plain, [], tries=1, layers=0)
    rows = ranking(target, job, images, log)
    limit = budget * plain.latency_ms if budget and plain.latency_ms else None
    result = plain
    for tries, (nodes, layers, what, extra) in enumerate(_auto_tries(rows), start=2):
        log(f"{target.name}: --keep-float auto: trying {what} in float ...")
        result = _tagged(run_one(_keeping(job, nodes, plain, limit)), nodes, tries=tries, layers=layers, plain=plain)
        result.kept_float.update(extra)
        if result.ok:
            return result
        if limit is not None and result.latency_ms is not None and result.latency_ms > limit:
            result.kept_float["latency_budget_ms"] = round(limit, 6)
            result.reason = (f"{result.reason}; --keep-float auto: stopped at {what}, over the latency "
                             f"budget ({budget}x plain INT8's {plain.latency_ms} ms)")
            return result
    result.reason = (f"{result.reason}; --keep-float auto: still rejected with the {max(AUTO_STEPS)} worst layers in "
                     "float, and with every float prefix up to them")
    return result


def _auto_tries(rows: list[dict]):
    """auto's tries after plain INT8, as (nodes, layers, what, extra): the 1, 2, 4, 8, 16 worst layers alone, then
    every layer up to the deepest of them (a layer that amplifies its input's rounding needs its producers float;
    keeping it alone leaves its input INT8: see sensitivity.prefix_nodes), each distinct prefix short of the graph."""
    steps = [k for k in AUTO_STEPS if k <= len(rows)]
    for k in steps:
        yield keep_float_nodes(rows, k), k, f"the {k} worst layer(s)", {}
    tried, whole = [], prefix_nodes(rows, len(rows)) if rows else []
    for k in steps:
        nodes = prefix_nodes(rows, k)
        if nodes in tried or nodes == whole:  # the same prefix again, or every ranked layer: a float graph
            continue
        tried.append(nodes)
        yield nodes, len(nodes), f"every layer up to the deepest of the {k} worst ({len(nodes)} nodes)", \
            {"prefix_of_worst": k}


def ranking(target, job, images, log) -> list[dict]:
    """Sensitivity rows of a plain INT8 conversion of this job, on the parity images."""
    from edgekit.export.capture import step
    from edgekit.export.layer_ranking import rank_layers

    log(f"{target.name}: ranking layers by INT8 error on {len(images)} held-out images ...")
    with step(f"{target.name} layer ranking"):  # the quantizers' progress bars stay off the terminal
        return rank_layers(target, job, images)[0]


def _keeping(job, nodes: list[str], plain=None, latency_budget_ms: float | None = None):
    """The job with ``nodes`` kept float; the plain INT8 try's figures go into the manifest as the cost baseline.

    ``latency_budget_ms``: the verification rejects the artifact when its host latency is above it.
    """
    options = {**job.options, "keep_float": list(nodes),
               **({"latency_budget_ms": latency_budget_ms} if latency_budget_ms is not None else {})}
    if plain is not None:
        options["kept_float_baseline"] = {"plain_int8_status": plain.status, "plain_int8_latency_ms": plain.latency_ms,
                                          "plain_int8_map50": (plain.map or {}).get("map50"),
                                          "plain_int8_top1": (plain.top1 or {}).get("top1")}
    return dataclasses.replace(job, options=options)


def _tagged(result, nodes: list[str], tries: int, layers: int | None = None, plain=None):
    result.kept_float = {"nodes": list(nodes), "layers": layers if layers is not None else len(nodes), "tries": tries,
                         "plain_int8": None if plain is None else {"status": plain.status, "reason": plain.reason,
                                                                   "latency_ms": plain.latency_ms,
                                                                   "map50": (plain.map or {}).get("map50"),
                                                                   "top1": (plain.top1 or {}).get("top1")}}
    return result


def _names_file(path: str) -> list[str]:
    """The layer names of a ``--keep-float @FILE``: one clear error when it is missing, too large or empty."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise EdgekitError(f"--keep-float @{path}: no such file; give a text file of layer names (one per line, "
                           "as `edgekit quant-report` names them)")
    if p.stat().st_size > MAX_NAMES_FILE:
        raise EdgekitError(f"--keep-float @{path}: {p.stat().st_size} bytes is not a list of layer names "
                           f"(at most {MAX_NAMES_FILE} bytes)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EdgekitError(f"--keep-float @{path}: not a UTF-8 text file; give a text file of layer names") from None
    names = [n.strip() for line in text.splitlines() for n in line.split("#", 1)[0].split(",") if n.strip()]
    if not names:
        raise EdgekitError(f"--keep-float @{path}: the file names no layers (one name per line, # for comments)")
    return names
