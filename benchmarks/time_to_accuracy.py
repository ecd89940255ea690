"""Minutes of CPU training to a test mAP50, summed over a chain of train_seed stages.

    python benchmarks/time_to_accuracy.py --goal 0.6 --name yolo-fastest-1.1-f4k \\
        benchmarks/results/train-yolo-fastest-1.1-fish4knowledge-320.json \\
        benchmarks/results/train-yolo-fastest-1.1-fish4knowledge-320-full-ft.json \\
        benchmarks/results/train-yolo-fastest-1.1-fish4knowledge-320-full-ft-2.json

A recipe that starts from a pretrained model often runs as stages (head only, then everything,
then a lower learning rate), each one a ``train_seed.py`` run whose ``--init`` is the previous
stage's best checkpoint. This reads the stages' result files, checks that they really form one
chain (each stage's recorded init lineage is the previous stage's lineage plus that stage's
checkpoint, with the same data and image size, and the epochs, best epoch and val mAP50 the
previous stage recorded), and sums the stages' epoch seconds (training and the per-epoch validation, as
the training engine times them; the final test evaluation is not training). Test mAP50 is only
measured at each stage's end, so "reached" is the first stage end at or above the goal: an upper
bound on the time, never a guess inside a stage.

Writes ``benchmarks/results/time-to-accuracy-<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def stage_seconds(result: dict) -> float:
    """Seconds of the stage's epochs: the sum of its val curve's ``epoch_s`` (whole run, resumes included).

    >>> stage_seconds({"val_curve": [{"epoch_s": 50.0}, {"epoch_s": 52.5}]})
    102.5
    """
    curve = result.get("val_curve") or []
    if not curve or any("epoch_s" not in row for row in curve):
        raise ValueError(f"{result.get('model')}: the result has no per-epoch times (val_curve.epoch_s)")
    return round(sum(row["epoch_s"] for row in curve), 1)


def check_link(prev: dict, cur: dict, prev_name: str, cur_name: str) -> None:
    """Raise unless ``cur`` was started from ``prev``'s best checkpoint (by what both files recorded)."""
    lp, lc = prev.get("init_lineage") or [], cur.get("init_lineage") or []
    if len(lc) != len(lp) + 1 or lc[1:] != lp:
        raise ValueError(f"{cur_name} does not continue {prev_name}: its init lineage is not {prev_name}'s plus one stage")
    head = lc[0]
    for key in ("model", "data", "imgsz"):
        if key == "model" and head.get("model") == "darknet":  # a cfg model's checkpoint names its family
            continue
        if key == "data" and Path(str(head.get(key))).parent.name != cur.get("data"):
            raise ValueError(f"{cur_name}: its init was trained on {head.get(key)}, not {cur.get('data')}")
        if key == "imgsz" and head.get(key) != prev.get(key):
            raise ValueError(f"{cur_name}: its init was trained at {head.get(key)}, {prev_name} at {prev.get(key)}")
    if head.get("epochs") != prev.get("epochs"):
        raise ValueError(f"{cur_name}: its init ran {head.get('epochs')} epochs, {prev_name} {prev.get('epochs')}")
    # the best epoch is chosen by the task's fitness, not by mAP50 alone: compare that epoch's row
    row = next((r for r in prev["val_curve"] if r["epoch"] == head.get("best_epoch")), None)
    if row is None or abs(head.get("val_map50", -1) - row["map50"]) > 1e-3:
        raise ValueError(f"{cur_name}: its init (best epoch {head.get('best_epoch')}, val mAP50 {head.get('val_map50')}) "
                         f"is not a checkpoint {prev_name} recorded")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("stages", nargs="+", help="train_seed result files, first stage first")
    p.add_argument("--goal", type=float, default=0.6, help="test mAP50 to reach (default 0.6)")
    p.add_argument("--name", required=True, help="names the output file")
    a = p.parse_args(argv)

    results = [json.loads(Path(s).read_text()) for s in a.stages]
    names = [Path(s).name for s in a.stages]
    try:
        for i in range(1, len(results)):
            check_link(results[i - 1], results[i], names[i - 1], names[i])
        rows, total, reached = [], 0.0, None
        for name, r in zip(names, results):
            secs = stage_seconds(r)
            total += secs
            s = r.get("settings", {})
            rows.append({"file": name, "epochs": r["epochs"], "train_s": secs, "cumulative_min": round(total / 60, 1),
                         "test_map50": r["map50"], "test_map50_95": r["map50_95"], "lr": s.get("lr"),
                         "freeze": s.get("freeze"), "bf16": s.get("bf16"), "threads": s.get("threads"),
                         "command": s.get("command")})
            if reached is None and r["map50"] >= a.goal:
                reached = {"stage": len(rows), "minutes": round(total / 60, 1), "test_map50": r["map50"]}
    except (ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = {"name": a.name, "goal_map50": a.goal, "reached": reached, "total_min": round(total / 60, 1),
           "epochs_total": sum(r["epochs"] for r in results), "stages": rows, "host": results[-1].get("host"),
           "time": "sum of the stages' epoch seconds (training + per-epoch validation), as the training engine timed them",
           "measured_at": "test mAP50 only at each stage's end: the reached time is an upper bound"}
    path = RESULTS / f"time-to-accuracy-{a.name}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({"reached": reached, "total_min": out["total_min"], "file": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
