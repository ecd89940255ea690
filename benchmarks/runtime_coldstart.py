"""Cold start and peak memory of the lean runtime vs the same model through torch.

    python benchmarks/runtime_coldstart.py runs/export/mobilenetv2_050-yolo \
        --ref edgekit/assets/weights/mobilenetv2_050-yolo-fish4knowledge-320.pt

Each case is a fresh Python process that imports edgekit, loads the model, predicts one real
image and reports: cold start = wall time from just before the parent starts the process to
the first result (interpreter start + imports + load + first inference), peak RSS
(``ru_maxrss`` of that process) and how many modules it imported. Cases: the .tflite (INT8 and
fp32) through LiteRT and the .onnx through onnxruntime, with torch/tensorflow/onnx/nncf blocked
(an import would fail), and the checkpoint through the torch reference backend. Rounds are
interleaved (case A, B, C, A, B, C, ...) and medians reported, so the shared host's noise
hits every case alike; ratios are vs the torch path. Writes
``benchmarks/results/runtime-coldstart.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGE = ROOT / "edgekit" / "assets" / "fish_sample" / "test" / "images"

CHILD = r"""
import sys, time
from edgekit.runtime.lean import block_imports, loaded
block_imports({block!r})
from edgekit.runtime import load
m = load({artifact!r}, threads=1)
r = m.predict({image!r})
t = time.time()
import json, resource
print(json.dumps({{"t_first": t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "modules": len(sys.modules), "backend": m.describe()["backend"], "detections": len(r),
                  "heavy": loaded({heavy!r})}}))
"""
HEAVY = ("torch", "tensorflow", "onnx", "nncf")


def run_case(artifact: Path, image: Path, lean: bool) -> dict:
    code = CHILD.format(block=HEAVY if lean else (), heavy=HEAVY, artifact=str(artifact), image=str(image))
    t0 = time.time()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HOME": str(Path.home())})
    if res.returncode != 0:
        raise SystemExit(f"{artifact}: {res.stderr.strip().splitlines()[-1]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["cold_start_ms"] = (out.pop("t_first") - t0) * 1000
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("artifacts", help="folder of exported artifacts of the model (edgekit export --out)")
    p.add_argument("--ref", required=True, help="the source checkpoint (.pt)")
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args(argv)

    folder = Path(a.artifacts)
    cases = {}
    for label, pattern in (("tflite-int8 (LiteRT, lean)", "*-tflite-int8.tflite"), ("tflite fp32 (LiteRT, lean)", "*-tflite.tflite"),
                           ("onnx (onnxruntime, lean)", "*-onnx.onnx")):
        found = sorted(folder.glob(pattern))
        if found:
            cases[label] = (found[0], True)
    cases["checkpoint (torch reference)"] = (Path(a.ref), False)
    image = sorted(IMAGE.glob("*.jpg"))[0]
    runs: dict[str, list[dict]] = {k: [] for k in cases}
    for r in range(a.rounds):
        for label, (art, lean) in cases.items():
            runs[label].append(run_case(art, image, lean))
            print(f"round {r + 1}: {label}: {runs[label][-1]['cold_start_ms']:.0f} ms, "
                  f"{runs[label][-1]['rss_mb']:.0f} MB", file=sys.stderr)
    torch_label = "checkpoint (torch reference)"
    med = {k: {"cold_start_ms": statistics.median(x["cold_start_ms"] for x in v),
               "rss_mb": statistics.median(x["rss_mb"] for x in v)} for k, v in runs.items()}
    rows = []
    for label, (art, lean) in cases.items():
        last = runs[label][-1]
        rows.append({"case": label, "artifact": str(art), "lean": lean, "backend": last["backend"],
                     "cold_start_ms": round(med[label]["cold_start_ms"], 1),
                     "cold_start_ms_all": [round(x["cold_start_ms"], 1) for x in runs[label]],
                     "rss_mb": round(med[label]["rss_mb"], 1), "modules": last["modules"], "heavy_imported": last["heavy"],
                     "cold_start_vs_torch": round(med[torch_label]["cold_start_ms"] / med[label]["cold_start_ms"], 2),
                     "rss_vs_torch": round(med[torch_label]["rss_mb"] / med[label]["rss_mb"], 2)})
    from edgekit.info import environment_info
    from edgekit.io import atomic_write_text

    env = environment_info()
    result = {"edgekit": env["edgekit"], "host": {"platform": env["platform"], "cpu": env["cpu"].get("model"),
                                                   "cores": env["cpu"].get("cores")},
              "image": str(image.relative_to(ROOT)), "rounds": a.rounds, "threads": 1,
              "definition": "cold start = parent wall clock before starting a fresh python to the first predict result in it; "
                            "rss = that process's ru_maxrss; *_vs_torch = torch figure / this figure (higher = leaner)",
              "command": " ".join(["runtime_coldstart.py", *(argv if argv is not None else sys.argv[1:])]), "results": rows}
    dest = HERE / "results" / "runtime-coldstart.json"
    atomic_write_text(dest, json.dumps(result, indent=1))
    for r in rows:
        print(f"{r['case']:32s} cold {r['cold_start_ms']:7.0f} ms  rss {r['rss_mb']:6.0f} MB  modules {r['modules']:5d}  "
              f"x{r['cold_start_vs_torch']} faster, x{r['rss_vs_torch']} less memory than torch")
    print(f"-> {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
