"""``edgekit estimate MODEL [--board B] [--runtime R] [--precision P] [--threads T] [--imgsz S] [--json]``.

Predicted latency and FPS, with an interval, of a model on board profiles (every shipped one by
default), before anyone owns the board; and ``edgekit estimate --fit BENCH.json`` to calibrate a
board from the user's own ``edgekit bench --json`` results (:mod:`edgekit.estimate`).

``--json`` prints, for exactly one ``--board``, one object with the keys ``board, runtime,
precision, threads, latency_ms, low_ms, high_ms, fps, method, calibrated_on`` (that board's CPU
estimate); otherwise a list of such objects, one per board and accelerator (accelerators without a
published timing to calibrate on, and generic host profiles, have null numbers and ``method``
``"no estimate: ..."``).
"""

from __future__ import annotations

import sys

from edgekit.cli.ranges import whole


def add_parser(sub):
    p = sub.add_parser("estimate", help="predicted latency/FPS with an interval on board profiles; --fit from your bench JSON")
    p.add_argument("model", nargs="?", help="checkpoint (.pt), Darknet .cfg, artifact (.onnx; .tflite/.xml/.param "
                                            "beside their .onnx export) or a registry model name")
    p.add_argument("--board", action="append", help="board profile name or .yaml path; repeat or comma-separate "
                                                    "(default: every shipped profile)")
    p.add_argument("--runtime", help="ncnn, litert, onnxruntime, openvino (default: the artifact's, else ncnn)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), help="default: the artifact's, else fp32")
    p.add_argument("--threads", type=whole(1, 256), help="threads (default: the board's big cores)")
    p.add_argument("--imgsz", type=whole(8, 4096), help="input size in pixels (default: the model's own)")
    p.add_argument("--calibration", help="a calibration file from --fit to apply (default: the user's, per board)")
    p.add_argument("--fit", metavar="BENCH_JSON", help="fit a board's calibration from `edgekit bench --json` output")
    p.add_argument("--artifacts", help="with --fit: folder holding the benched artifacts (default: beside the JSON)")
    p.add_argument("--out", help="with --fit: where to write the calibration (default: "
                                 "~/.config/edgekit/estimates/<board>.json)")
    p.add_argument("--json", action="store_true", help="print JSON (see the command's help for its shape)")
    p.set_defaults(func=run)


def _boards(values) -> list[str] | None:
    names = [b.strip() for v in values or [] for b in v.split(",") if b.strip()]
    return names or None


def format_rows(rows: list[dict]) -> str:
    """The human table: board, runtime, precision, threads, latency [interval], FPS; then method lines.

    Example:
        >>> print(format_rows([{"board": "rpi4", "runtime": "ncnn", "precision": "fp32", "threads": 4,
        ...   "latency_ms": 50.0, "low_ms": 40.0, "high_ms": 70.0, "fps": 20.0, "method": "m", "calibrated_on": "c"}]))
        board  runtime  precision  threads  latency ms (interval)  FPS
        rpi4   ncnn     fp32       4        50.0 (40.0-70.0)       20.0
        <BLANKLINE>
        rpi4 ncnn: m
          calibrated on c
    """
    head = ("board", "runtime", "precision", "threads", "latency ms (interval)", "FPS")
    table = [head]
    for r in rows:
        lat = (f"{r['latency_ms']:.1f} ({r['low_ms']:.1f}-{r['high_ms']:.1f})" if r["latency_ms"] is not None
               else "no estimate")
        table.append((r["board"], r["runtime"], r["precision"], str(r["threads"] or "-"), lat,
                      f"{r['fps']:.1f}" if r["fps"] else "-"))
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip() for t in table]
    lines.append("")
    for r in rows:
        lines.append(f"{r['board']} {r['runtime']}: {r['method']}")
        if r["calibrated_on"]:
            lines.append(f"  calibrated on {r['calibrated_on']}")
    return "\n".join(lines)


def run(args) -> int:
    import json

    from edgekit.errors import EdgekitError

    if args.fit:
        return _fit(args)
    if not args.model:
        raise EdgekitError("give a MODEL to estimate (checkpoint, Darknet .cfg, artifact or registry name), or --fit BENCH.json")
    if args.artifacts or args.out:
        raise EdgekitError("--artifacts and --out go with --fit: drop them, or add --fit BENCH.json")
    from edgekit.estimate import estimate, load_graph

    boards = _boards(args.board)
    print(f"reading {args.model} ...", file=sys.stderr)
    graph = load_graph(args.model, args.imgsz)
    for note in graph.notes:
        print(f"note: {note}", file=sys.stderr)
    rows = estimate(graph, boards, args.runtime, args.precision, args.threads, user_file=args.calibration)
    if args.json:
        if boards and len(boards) == 1 and boards != ["all"]:
            print(json.dumps(rows[0], indent=1))
        else:
            print(json.dumps(rows, indent=1))
    else:
        h, w = graph.imgsz
        print(f"{graph.name} at {h}x{w} ({graph.source}): estimated, not measured")
        print(format_rows(rows))
    return 0


def _fit(args) -> int:
    import json

    from edgekit.errors import EdgekitError
    from edgekit.estimate.user_fit import fit_user, write_user_calibration

    if args.model:
        raise EdgekitError("--fit takes the bench JSON only: drop MODEL (the artifacts are read from the JSON's rows)")
    boards = _boards(args.board)
    if boards and len(boards) > 1:
        raise EdgekitError("--fit calibrates one board: give one --board (or none: the JSON's detected board)")
    cal = fit_user(args.fit, boards[0] if boards else None, args.artifacts)
    path = write_user_calibration(cal, args.out)
    print(f"calibration for {cal['board']}: {path}", file=sys.stderr)
    if args.json:
        print(json.dumps({**cal, "path": str(path)}, indent=1))
    else:
        scales = ", ".join(f"{k} x{v:.3g}" for k, v in cal["scale"].items())
        print(f"{cal['board']}: {cal['rows']} measurements; scale {scales}; interval x{cal['interval'][0]}-x{cal['interval'][1]}")
        for p in cal["points"]:
            print(f"  {p['artifact']} {p['runtime']} {p['precision']} t{p['threads']}: measured {p['measured_ms']:.2f} ms, "
                  f"predicted {p['predicted_ms']:.2f} ms")
    return 0
