"""``edgekit bench ARTIFACT... [--compare] [--auto] [--threads 1,2,4] [--data DATA.yaml] [--report DIR] [--json]``
``[--host USER@BOARD ... [--port] [--identity KEY] [--accept-new]] [--estimate BOARDS]``.

Measures exported artifacts with :func:`edgekit.runtime.bench.bench_artifact` on real images,
once per (artifact, thread count), and prints a comparison table, JSON (``--json``) or writes
JSON + Markdown + HTML (``--report DIR``, :mod:`edgekit.bench_report`).

- ``--compare MODEL_DIR`` (or several artifacts of one model): every artifact, side by side;
  the report goes to ``runs/bench/<model>`` unless ``--report`` says otherwise.
- ``--auto ARTIFACT_DIR``: sweeps every artifact x every installed backend that reads it x
  threads 1..cores (or ``--threads``) x the delegates/devices present; the configurations
  within 25 % of the best p50 race again, loaded together and timed in interleaved rounds;
  the best pooled p50 wins (within 2 %: fewer threads, then the smaller file); every finalist
  is timed once more to check the choice; ``ARTIFACT_DIR/deploy.json`` records it, and
  ``edgekit.runtime.load`` then applies it on this board.
- ``--host USER@BOARD`` (repeatable): the same bench on real boards over SSH (:mod:`edgekit.remote`),
  concurrently; their rows join the report labelled with the board detected there; a host that fails
  is reported and the others' rows are kept.
- ``--estimate BOARDS``: estimated rows (:mod:`edgekit.estimate`) beside the measured ones.

Device side: imports no torch; matplotlib only to draw the HTML plots.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from edgekit.cli.bench_boards import add_estimates, bench_remote, remote_specs
from edgekit.cli.ranges import whole
from edgekit.runtime.deploy import FINAL_BAND, FINALISTS, TIE  # standard library only: cheap for every `edgekit` call

TOLERANCE = 0.05  # --auto's choice, re-measured, must be within 5 % of the sweep's best p50


def add_parser(sub):
    p = sub.add_parser("bench", help="latency/FPS/memory/thermal benchmark of artifacts; --compare, --auto (deploy.json)")
    p.add_argument("artifacts", nargs="+", help="exported artifacts, or folders of them (edgekit export --out)")
    p.add_argument("--frames", type=whole(1), default=300, help="timed frames per setting (default 300)")
    p.add_argument("--warmup", type=whole(0), default=20, help="untimed frames before them (default 20)")
    p.add_argument("--threads", help="comma-separated thread counts, e.g. 1,2,4 (default: all usable cores; "
                                     "--auto: 1..cores)")
    p.add_argument("--backend", help="onnxruntime, litert, openvino, ncnn, mnn, executorch or torch (default: the manifest's)")
    p.add_argument("--delegate", help="LiteRT delegate (edgetpu, vx, .so path) / onnxruntime execution provider")
    p.add_argument("--device", help="OpenVINO device (CPU, GPU, NPU) or ncnn vulkan")
    p.add_argument("--precision", help="OpenVINO f32/f16/bf16 or ncnn fp32/fp16 arithmetic")
    p.add_argument("--fallback", action="store_true",
                   help="run on the CPU (recorded as a warning) when the delegate/device is absent")
    p.add_argument("--data", help="data.yaml: its test (else val) images as inputs, and mAP50 per artifact")
    p.add_argument("--split", help="split of --data to use (default test, else val)")
    p.add_argument("--images", nargs="+", help="image files/folders as inputs when there is no --data "
                                               "(default: the embedded Fish4Knowledge sample)")
    p.add_argument("--compare", action="store_true", help="every artifact of one model side by side (MODEL_DIR)")
    p.add_argument("--auto", action="store_true", help="sweep backends/threads/delegates here; write deploy.json")
    p.add_argument("--cold-subprocess", action="store_true",
                   help="also measure cold start in a fresh Python process (imports + load + first predict)")
    p.add_argument("--report", help="write bench.json, bench.md and bench.html to this folder")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    r = p.add_argument_group("remote boards (edgekit/remote, needs the remote extra: pip install 'edgekit[remote]')")
    r.add_argument("--host", action="append", metavar="USER@BOARD[:PORT]",
                   help="also bench on this board over SSH (repeat for a fleet, run concurrently)")
    r.add_argument("--port", type=whole(1, 65535), help="SSH port for --host entries without one (default 22)")
    r.add_argument("--identity", metavar="KEY", help="SSH private key for the boards (default: your SSH agent/keys)")
    r.add_argument("--accept-new", action="store_true",
                   help="record the host key of a board not yet in known_hosts (first contact); a changed key is "
                        "always refused")
    r.add_argument("--known-hosts", metavar="FILE", help="known_hosts file (default ~/.ssh/known_hosts)")
    r.add_argument("--remote-edgekit", default="edgekit", metavar="CMD",
                   help="the edgekit command on the boards, e.g. ~/venv/bin/edgekit (default: edgekit on PATH)")
    r.add_argument("--no-local", action="store_true", help="with --host: bench on the boards only, not here")
    p.add_argument("--estimate", metavar="BOARDS",
                   help="add estimated rows for these board profiles (comma-separated, or all): edgekit estimate's "
                        "prediction with its interval, labelled as estimates")
    p.set_defaults(func=run)


def parse_threads(text: str | None, default: list[int]) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``; one clear error for anything else.

    Example:
        >>> parse_threads("4,1,2", [1])
        [1, 2, 4]
    """
    from edgekit.errors import EdgekitError

    if text is None:
        return default
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or values[0] < 1:
        raise EdgekitError(f"--threads must be comma-separated whole numbers of 1 or more, like 1,2,4 (got '{text}')")
    return values


def expand_artifacts(items: list[str]) -> list[Path]:
    """Artifact files from paths and folders (a folder: every file in it with an edgekit manifest)."""
    from edgekit.errors import EdgekitError
    from edgekit.export.targets import TARGETS
    from edgekit.runtime.backends import artifact_suffixes
    from edgekit.runtime.runner import find_manifest

    suffixes = artifact_suffixes()
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = [f for f in sorted(p.iterdir()) if f.suffix.lower() in suffixes and find_manifest(f) is not None]
            if not found:
                raise EdgekitError(f"{p} holds no exported artifact ({'/'.join(suffixes)} with a manifest): "
                                   "export one with `edgekit export`")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise EdgekitError(f"{p} does not exist: give exported artifacts or a folder of them")
    rank = {t: k for k, t in enumerate(TARGETS)}  # the target registry's order

    def key(f: Path):
        man = find_manifest(f) if f.suffix.lower() in suffixes else None
        return rank.get((man or {}).get("target"), len(rank)), f.name

    return sorted(dict.fromkeys(out), key=key)


def _inputs(args):
    """(decoded images, first image path, labelled records or None, class names, description)."""
    from edgekit.runtime.bench import load_images

    if args.data:
        from edgekit.validate_runtime import labelled_split

        records, split, names = labelled_split(args.data, args.split)
        paths = [r.path for r in records]
        return load_images(paths), paths[0], records, names, f"{args.data} ({split} split)"
    if args.images:
        from edgekit.cli.predict_cmd import expand_images

        paths = expand_images(args.images)
        return load_images(paths), paths[0], None, None, " ".join(args.images)
    from edgekit.data import sample_data_yaml

    folder = sample_data_yaml().parent / "test" / "images"
    paths = sorted(folder.glob("*.jpg"))
    return load_images(paths), paths[0], None, None, "the embedded Fish4Knowledge sample (no --data given)"


def _command(args) -> str:
    flags = [f"--{k.replace('_', '-')} {v}" for k, v in sorted(vars(args).items())
             if k in ("frames", "warmup", "threads", "backend", "delegate", "device", "precision", "data", "split",
                      "report") and v is not None]
    flags += [f"--{k.replace('_', '-')}" for k in ("compare", "auto", "cold_subprocess", "fallback", "json")
              if getattr(args, k, False)]
    return " ".join(["edgekit bench", *args.artifacts, *flags])


class Runner:
    """Benchmarks settings one by one, scoring mAP once per (artifact, backend), printing progress."""

    def __init__(self, args, images, first_image, records, names, zones, total: int):
        self.args, self.images, self.first_image = args, images, first_image
        self.records, self.names, self.zones, self.total = records, names, zones, total
        self.done = 0
        self.maps: dict = {}

    def bench(self, path: Path, cfg: dict, keep_going: bool) -> dict:
        from edgekit.errors import EdgekitError
        from edgekit.runtime.bench import bench_artifact, cold_start_subprocess
        from edgekit.validate_runtime import score_map

        key = (str(path), cfg.get("backend"))
        score = self.records is not None and key not in self.maps
        self.done += 1
        try:
            fallback = bool(getattr(self.args, "fallback", False))
            scorer = functools.partial(score_map, records=self.records, names=self.names) if score else None
            row = bench_artifact(path, self.images, frames=self.args.frames, warmup=self.args.warmup, zones=self.zones,
                                 score=scorer, fallback=fallback, **cfg)
            if self.args.cold_subprocess:
                row["cold_subprocess"] = cold_start_subprocess(path, self.first_image, fallback=fallback,
                                                               **{**cfg, "backend": row["backend"]})
        except EdgekitError as exc:
            if not keep_going:
                raise
            row = {"artifact": path.name, "path": str(path), **cfg, "error": str(exc)}
            print(f"[{self.done}/{self.total}] {path.name} {cfg}: failed: {exc}", file=sys.stderr)
            return row
        if score:
            self.maps[key] = {k: row[k] for k in ("map50", "map50_95", "map_images", "map_note") if k in row}
        elif self.records is not None:
            row.update(self.maps[key])
        from edgekit.bench_report import label

        mp = f", mAP50 {row['map50']:.4f}" if row.get("map50") is not None else ""
        print(f"[{self.done}/{self.total}] {label(row)}: p50 {row['p50_ms']:.2f} ms, {row['fps']:.1f} FPS, "
              f"cold start {row['cold_start_ms']:.0f} ms{mp}", file=sys.stderr)
        return row


def _settings(args, threads: list[int]) -> list[dict]:
    return [{"backend": args.backend, "threads": t, "delegate": args.delegate, "device": args.device,
             "precision": args.precision} for t in threads]


def run(args) -> int:
    import json

    from edgekit.errors import EdgekitError
    from edgekit.runtime.bench import host_info, usable_cores

    if args.frames < 1:
        raise EdgekitError(f"--frames must be 1 or more (got {args.frames})")
    if args.warmup < 0:
        raise EdgekitError(f"--warmup must be 0 or more (got {args.warmup})")
    if args.auto and args.compare:
        raise EdgekitError("--auto and --compare are separate runs: choose one")
    cores = usable_cores()
    threads = parse_threads(args.threads, list(range(1, cores + 1)) if args.auto else [cores])
    artifacts = expand_artifacts(args.artifacts)
    if args.report:  # before any work: the report must not land on (or in) what is measured
        from edgekit.io import check_output_not_input

        check_output_not_input(args.report, [*args.artifacts, *artifacts, args.data, *(args.images or [])], "--report",
                               contains_ok=True)  # bench.json/.md/.html beside the inputs, never over them
    if args.compare:
        _one_model(artifacts)
    specs = remote_specs(args)
    if args.no_local and not specs:
        raise EdgekitError("--no-local needs --host: with neither, nothing would be benched")
    host = host_info()
    images, first, records, names, source = _inputs(args)
    report = {"command": _command(args), "host": host,
              "inputs": {"source": source, "images": len(images), "records": len(records) if records else None}}
    if args.auto:
        report.update(_auto(args, artifacts, threads, host, Runner(args, images, first, records, names,
                                                                    host["thermal_zones"], 0)))
    elif args.no_local:
        report["results"] = []
    else:
        runner = Runner(args, images, first, records, names, host["thermal_zones"], len(artifacts) * len(threads))
        keep_going = len(artifacts) * len(threads) > 1
        report["results"] = [runner.bench(a, cfg, keep_going) for a in artifacts for cfg in _settings(args, threads)]
        if not specs and not any(not r.get("error") for r in report["results"]):
            raise EdgekitError(f"no setting ran: {report['results'][0]['error']}")
    if specs:
        bench_remote(args, specs, artifacts, report)
    if args.estimate:
        add_estimates(args, artifacts, report, parse_threads(args.threads, [None]) if args.threads else [None])
    models = sorted({str(r.get("model")) for r in report["results"] if r.get("model")})
    report["model"] = ", ".join(models) or None
    out_dir = args.report or (f"runs/bench/{models[0]}" if args.compare and models else None)
    if out_dir:
        from edgekit.bench_report import write_report

        paths = write_report(report, out_dir)
        print(f"report: {paths['json']}, {paths['md']}, {paths['html']}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        from edgekit.bench_report import auto_lines, to_markdown

        text = to_markdown(report)
        start = text.index("| target")
        print(text[start:text.index("\n\n", start)])
        for line in auto_lines(report["auto"]) if args.auto else []:
            print(line)
    return 0


def _one_model(artifacts: list[Path]) -> None:
    from edgekit.errors import EdgekitError
    from edgekit.runtime.runner import find_manifest

    models = sorted({str((find_manifest(a) or {}).get("model")) for a in artifacts})
    if len(models) > 1:
        raise EdgekitError(f"--compare sets the artifacts of one model side by side, and these are of {', '.join(models)}: "
                           "give one model's export folder")


def _auto(args, artifacts: list[Path], threads: list[int], host: dict, runner: Runner) -> dict:
    from edgekit.errors import EdgekitError
    from edgekit.runtime.autotune import choose_best, finalists, race, sweep_configs
    from edgekit.runtime.deploy import host_fingerprint, make_deploy, write_deploy

    if len(args.artifacts) != 1:
        raise EdgekitError("--auto takes one ARTIFACT_DIR (or one artifact): deploy.json is written beside the artifacts")
    folder = Path(args.artifacts[0])
    folder = folder if folder.is_dir() else folder.parent
    accel = {k: getattr(args, k) for k in ("delegate", "device", "precision") if getattr(args, k)}
    plan = [(a, {"precision": None, **c, **accel}) for a in artifacts
            for c in sweep_configs(a, threads, [args.backend] if args.backend else None)]
    if not plan:
        raise EdgekitError(f"no installed backend reads the artifacts in {folder}: install one (pip install \"edgekit[tflite]\")")
    runner.total = len(plan)
    rows = [runner.bench(a, c, keep_going=True) for a, c in plan]
    final = finalists(rows)
    if not final:
        choose_best(rows)  # raises the error naming why nothing ran
    # one block per configuration decides little on a busy board: the finalists race, interleaved
    candidates = [(Path(r["path"]), _config(r)) for r in final]
    print(f"race: {len(final)} finalist(s) within {FINAL_BAND:.0%} of the best p50, {RACE_ROUNDS} interleaved rounds "
          f"of {args.frames} frames", file=sys.stderr)
    raced = race(candidates, runner.images, args.frames, rounds=RACE_ROUNDS)
    contenders = []
    for row, stats in zip(final, raced):
        row["race"] = stats
        contenders.append({**row, **stats, "sweep_p50_ms": row["p50_ms"]})
    chosen, best = choose_best(contenders)
    # the check: every finalist once more, interleaved, after the choice was made
    check = race(candidates, runner.images, args.frames, rounds=VERIFY_ROUNDS)
    again, round_best = check[contenders.index(chosen)], min(c["p50_ms"] for c in check)
    verify = {"p50_ms": again["p50_ms"], "fps": again["fps"], "sweep_best_p50_ms": best["p50_ms"],
              "sweep_chosen_p50_ms": chosen["p50_ms"], "ratio": round(again["p50_ms"] / best["p50_ms"], 4),
              "round_best_p50_ms": round_best, "ratio_same_time": round(again["p50_ms"] / round_best, 4),
              "first_pass_best_p50_ms": final[0]["p50_ms"],
              "ratio_first_pass": round(again["p50_ms"] / final[0]["p50_ms"], 4),
              "tolerance_pct": round(TOLERANCE * 100), "frames": again["frames"]}
    verify["within"] = verify["ratio"] <= 1.0 + TOLERANCE
    verify["within_same_time"] = verify["ratio_same_time"] <= 1.0 + TOLERANCE
    if not verify["within"]:
        print(f"warning: re-measured, the choice runs at {verify['ratio']} x the sweep's best p50 "
              f"({verify['ratio_same_time']} x the fastest finalist measured beside it): this host is noisy "
              "(other work running?); rerun --auto on an idle board", file=sys.stderr)
    deploy = make_deploy(chosen, {**host, "fingerprint": host_fingerprint()}, swept=len(rows), verify=verify,
                         extra={"sweep_p50_ms": chosen["sweep_p50_ms"], "method": AUTO_METHOD})
    path = write_deploy(folder, deploy)
    print(f"deploy.json: {path}", file=sys.stderr)
    return {"results": rows, "auto": {"chosen": _brief(chosen), "best": _brief(best), "verify": verify,
                                      "finalists": [{**_brief(c), "sweep_p50_ms": c["sweep_p50_ms"]} for c in contenders],
                                      "swept": len(rows), "deploy": str(path), "method": AUTO_METHOD}}


RACE_ROUNDS, VERIFY_ROUNDS = 3, 2
AUTO_METHOD = (f"every configuration timed once; those within {FINAL_BAND:.0%} of the best p50 (at most {FINALISTS}) "
               f"loaded together and re-timed in {RACE_ROUNDS} interleaved rounds (p50 of the pooled frames); the best "
               f"pooled p50 wins, within {TIE:.0%} the fewer threads, then the smaller file; then every finalist is "
               f"timed again, interleaved, in {VERIFY_ROUNDS} rounds: the choice's p50 there over the winning p50 is "
               "the recorded ratio")


def _config(row: dict) -> dict:
    return {k: row.get(k) for k in ("backend", "threads", "delegate", "device", "precision")}


def _brief(row: dict) -> dict:
    keys = ("artifact", "target", "model", "manifest_backend", "backend", "threads", "delegate", "device", "precision",
            "size_mb", "p50_ms", "p90_ms", "fps", "map50")
    return {k: row.get(k) for k in keys}
