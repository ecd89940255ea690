"""Before/after of the predict split (pre/infer/post) across edgekit versions, in interleaved rounds.

    python benchmarks/video_prepost_compare.py runs/export/mobilenetv2_050-yolo/mobilenetv2_050-yolo-tflite-int8.tflite \\
        ../shared/data/fish4knowledge/test/images --name fish --tree before=/tmp/ek-ad01159 \\
        --tree after=/tmp/ek-c2538cd --tree after-2=. --rounds 3

Each ``--tree NAME=DIR`` is an edgekit version: ``.`` is this checkout, any other DIR a tree made with
``git archive <commit> | tar -x -C src && pip install --no-deps --target DIR src`` (put first on
PYTHONPATH). A round runs ``benchmarks/video_pipeline.py ARTIFACT SOURCE --rounds 1
--pipeline-frames 0 --soak-frames 0`` once per tree, one after the other, in a fresh process each, so
load drifting on a shared host hits every version alike; the medians of the rounds are reported.
``--artifact-of NAME=PATH`` and ``--args-of NAME="ARGS"`` make a variant of one tree: another artifact (an
export option's effect) or other video_pipeline.py options (``--cv-threads 0``: OpenCV's default threads).

Writes (or updates, model by model) ``benchmarks/results/video-prepost-before-after-t<threads>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = ("pre_ms", "infer_ms", "post_ms", "pre_post_share")


def one_run(tree: str, artifact: str, source: str, extra: list[str], out: Path) -> dict:
    env = dict(os.environ)
    if tree != ".":
        env["PYTHONPATH"] = str(Path(tree).resolve()) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, str(HERE / "video_pipeline.py"), artifact, source, "--rounds", "1", "--pipeline-frames", "0",
           "--soak-frames", "0", "--out", str(out), *extra]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{tree}: video_pipeline.py failed: {res.stderr.strip()[-500:]}")
    r = json.loads(out.read_text())
    row = dict(r["predict"])
    if r.get("predict_cpu"):
        row["cpu"] = {k: r["predict_cpu"][k] for k in KEYS}
    row["load"] = r["load_before"][0]
    row["cpu_model"] = r.get("cpu_model")
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("artifact")
    ap.add_argument("source")
    ap.add_argument("--name", required=True, help="the model's key in the result file (e.g. fish, yf)")
    ap.add_argument("--tree", action="append", required=True, help="NAME=DIR, in the order to run them")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--setup", default="", help="one line describing the model and the frames")
    ap.add_argument("--artifact-of", action="append", default=[], metavar="NAME=PATH",
                    help="this variant runs another artifact (default: ARTIFACT)")
    ap.add_argument("--args-of", action="append", default=[], metavar='NAME="ARGS"',
                    help="more video_pipeline.py options for this variant (e.g. --cv-threads 0)")
    ap.add_argument("--out", help="default benchmarks/results/video-prepost-before-after-t<threads>.json")
    args, extra = ap.parse_known_args(argv)
    trees = [t.split("=", 1) for t in args.tree]
    artifact_of = dict(a.split("=", 1) for a in args.artifact_of)
    args_of = {k: v.split() for k, v in (a.split("=", 1) for a in args.args_of)}
    unknown = (set(artifact_of) | set(args_of)) - {name for name, _ in trees}
    if unknown:
        sys.exit(f"--artifact-of/--args-of name no --tree: {', '.join(sorted(unknown))}")
    extra = ["--threads", str(args.threads), *extra]
    rows: dict[str, list] = {name: [] for name, _ in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            for name, tree in trees:
                rows[name].append(one_run(tree, artifact_of.get(name, args.artifact), args.source,
                                          extra + args_of.get(name, []), Path(tmp) / f"{name}.json"))
                print(f"round {k + 1}: {name} share {rows[name][-1]['pre_post_share']}", file=sys.stderr)
    out = Path(args.out) if args.out else HERE / "results" / f"video-prepost-before-after-t{args.threads}.json"
    doc = json.loads(out.read_text()) if out.is_file() else {}
    doc.setdefault("models", {})
    doc["what_interleaved"] = ("the '<model>-interleaved' entries: benchmarks/video_prepost_compare.py, every tree once per "
                               "round in a fresh process, rounds interleaved, medians; 'cpu' is the same split in the "
                               "thread's CPU time (less disturbed by other jobs on a shared host than the wall clock)")
    model = {"setup": args.setup, "command": "python benchmarks/video_prepost_compare.py " + " ".join(
        sys.argv[1:] if argv is None else argv), "trees": dict(trees)}
    if artifact_of or args_of:
        model["variants"] = {name: {"artifact": artifact_of.get(name, args.artifact), "args": args_of.get(name, [])}
                             for name, _ in trees}
    for name, _ in trees:
        median = {k: round(statistics.median(r[k] for r in rows[name]), 4) for k in KEYS}
        cpu = [r["cpu"] for r in rows[name] if "cpu" in r]
        if cpu:
            median["cpu"] = {k: round(statistics.median(c[k] for c in cpu), 4) for k in KEYS}
        model[name] = {"rounds": rows[name], "median": median}
    doc["models"][f"{args.name}-interleaved"] = model
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({name: model[name]["median"] for name, _ in trees}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
