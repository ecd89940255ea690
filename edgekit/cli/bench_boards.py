"""The board side of ``edgekit bench``: ``--host`` (remote boards over SSH) and ``--estimate`` (estimated rows).

Kept apart from :mod:`edgekit.cli.bench_cmd` so that each file stays one concern; both act on the
report dict that ``bench_cmd.run`` builds.
"""

from __future__ import annotations

import sys
from pathlib import Path


def remote_specs(args) -> list:
    from edgekit.errors import EdgekitError

    if not args.host:
        for flag in ("port", "identity", "known_hosts"):
            if getattr(args, flag):
                raise EdgekitError(f"--{flag.replace('_', '-')} goes with --host: add --host USER@BOARD, or drop it")
        return []
    if args.auto:
        raise EdgekitError("--auto writes deploy.json for this board: run it on the board itself, not with --host")
    from edgekit.remote import parse_host

    return [parse_host(h, args.port) for h in args.host]


def bench_remote(args, specs, artifacts: list[Path], report: dict) -> None:
    """Bench on every --host concurrently, merge their rows; one host's failure is reported, not fatal."""
    from edgekit.errors import EdgekitError
    from edgekit.remote import bench_fleet
    from edgekit.remote.known_hosts import default_known_hosts
    from edgekit.remote.merge import merge_remote
    from edgekit.remote.session import RemoteOptions

    forward = [f"--{k} {getattr(args, k)}" for k in ("frames", "warmup", "threads", "backend", "delegate", "device",
                                                       "precision") if getattr(args, k) is not None]
    forward += ["--fallback"] if args.fallback else []
    opts = RemoteOptions(known_hosts=Path(args.known_hosts or default_known_hosts()).expanduser(),
                         identity=args.identity, accept_new=args.accept_new, edgekit=args.remote_edgekit,
                         bench_args=tuple(a for f in forward for a in f.split(" ", 1)))
    print(f"remote: {', '.join(map(str, specs))} ...", file=sys.stderr)
    outcomes = bench_fleet(specs, artifacts, opts)
    for out in outcomes:
        if out.ok:
            info = out.report["remote"]
            print(f"remote {out.host}: {len(out.report.get('results') or [])} rows from board "
                  f"{info.get('board') or 'unknown'} in {info['seconds']:.1f} s", file=sys.stderr)
        else:
            print(f"remote {out.host}: failed: {out.error}", file=sys.stderr)
    merge_remote(report, outcomes)
    if not any(not r.get("error") for r in report["results"]):
        raise EdgekitError("nothing ran: " + "; ".join(o.error for o in outcomes if not o.ok))


def add_estimates(args, artifacts: list[Path], report: dict, threads: list) -> None:
    """``report["estimates"]``: per artifact, board and thread count (None: the board's big cores), edgekit
    estimate's row (or why there is none)."""
    from edgekit.errors import EdgekitError
    from edgekit.estimate import estimate, load_graph

    boards = [b.strip() for b in args.estimate.split(",") if b.strip()]
    runtime = args.backend if args.backend in ("ncnn", "litert", "onnxruntime", "openvino") else None
    report["estimates"] = []
    for a in dict.fromkeys(artifacts):
        try:
            graph = load_graph(str(a))
            rows = [r for t in threads for r in estimate(graph, boards, runtime, threads=t)]
        except EdgekitError as exc:
            print(f"estimate {a.name}: {exc}", file=sys.stderr)
            report["estimates"].append({"artifact": a.name, "error": str(exc)})
            continue
        report["estimates"] += [{"artifact": a.name, "source": graph.source, **r} for r in rows]
