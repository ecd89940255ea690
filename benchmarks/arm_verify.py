"""`verify --arm` for the shipped detectors' seed targets on emulated Cortex-A53, A72 and A76.

    nice -n 10 python benchmarks/arm_verify.py [--models PT,...] [--images 2]

Needs ``edgekit arm setup``. Exports each shipped detector (edgekit/assets/weights/*-yolo-*.pt)
to the nine seed targets in a temporary folder, runs every artifact on every core from the
aarch64 board install and compares with this host's run of the same file, counting
instructions on the way. Where the runtime would compute in another precision by itself on a
core (OpenVINO f16 and ncnn fp16 on the A76), that precision is run and recorded too. OpenVINO
INT8 IRs run on aarch64 with the FakeQuantize ops in fp32 (``precision: fakequant-fp32``; the
ARM CPU plugin's int8 path does not compile them on the A53/A72, see runtime/openvino_backend.py).

Writes ``benchmarks/results/arm-verify-<model>.json`` (every result, with the precision each
runtime really used) and ``arm-counts-<model>.json`` (instructions per inference). Emulation is
100-950x slower than native: a few images, one guest thread, and these are never speeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from arm_counts import CORES, RESULTS, SEED_TARGETS, counts_document  # noqa: E402


def command_line() -> str:
    """This run's command, as the results record it (paths relative to the checkout)."""
    return " ".join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def write_results(model: Path, rows: list[dict], images: int, calib_note: str, commands: list[str]) -> None:
    """Both result files, rewritten after every run: an interrupted sweep keeps what it measured.

    ``commands``: every command that made the rows (a sweep in parts with ``--append`` has several).
    """
    from edgekit import __version__
    from edgekit.io import atomic_write_text

    doc = {"model": model.stem, "edgekit": __version__, "host": platform.machine(), "commands": commands,
           "images": images, "calibration": calib_note,
           "note": "outputs of the aarch64 board install under QEMU vs the x86 run of the same artifact; "
                   "pinned=native: the precision the runtime picks by itself on that core; wall_s is emulation "
                   "time, not a speed", "results": rows}
    atomic_write_text(RESULTS / f"arm-verify-{model.stem}.json", json.dumps(doc, indent=1) + "\n")
    counted = [r for r in rows if "instructions" in r and r.get("pinned") is None]
    atomic_write_text(RESULTS / f"arm-counts-{model.stem}.json",
                      json.dumps({**counts_document(model.stem, counted), "commands": commands}, indent=1) + "\n")


def main() -> int:
    from edgekit.arm.verify import verify_arm
    from edgekit.errors import EdgekitError
    from edgekit.export import export

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated .pt (default: the shipped detectors)")
    ap.add_argument("--targets", default=",".join(SEED_TARGETS))
    ap.add_argument("--cores", default=",".join(CORES))
    ap.add_argument("--images", type=int, default=2)
    shared = ROOT.parent / "shared" / "data" / "fish4knowledge" / "train" / "images"
    ap.add_argument("--calib", default=str(shared) if shared.is_dir() else None,
                    help="INT8 calibration images (default ../shared fish4knowledge train, else edgekit's sample)")
    ap.add_argument("--calib-images", type=int, default=100)
    ap.add_argument("--append", action="store_true",
                    help="keep the other targets' results already in arm-verify-<model>.json (a sweep in parts)")
    args = ap.parse_args()
    models = ([Path(m) for m in args.models.split(",")] if args.models
              else sorted((ROOT / "edgekit" / "assets" / "weights").glob("*-yolo-*.pt")))
    for model in models:
        rows, commands = [], [command_line()]
        previous = RESULTS / f"arm-verify-{model.stem}.json"
        if args.append and previous.is_file():  # this run's targets replace theirs; the others are kept
            before = json.loads(previous.read_text())
            rows = [r for r in before["results"] if r.get("target") not in args.targets.split(",")]
            commands = [c for c in before.get("commands", []) if c != commands[0]] + commands
        with tempfile.TemporaryDirectory() as tmp:
            print(f"exporting {model.name}", file=sys.stderr)
            calib = args.calib
            if calib is None:
                from edgekit.data import sample_data_yaml

                calib = str(sample_data_yaml().parent / "train" / "images")
            rep = export(model, args.targets.split(","), out=Path(tmp), calib=calib, calib_images=args.calib_images)
            note = f"{args.calib_images} images of {os.path.relpath(calib, ROOT)}"
            for r in rep.results:
                if not r.ok:
                    rows.append({"target": r.target, "error": f"export failed: {r.reason}"})
                    continue
                for core in args.cores.split(","):
                    for precision in (None, "native"):
                        t0 = time.time()
                        try:
                            res = verify_arm(Path(tmp) / r.file, core, images=args.images, count=True,
                                             precision=precision, record=False)
                        except EdgekitError as exc:
                            rows.append({"target": r.target, "core": core, "pinned": precision, "error": str(exc)})
                            write_results(model, rows, args.images, note, commands)
                            break
                        res.update({"pinned": precision, "wall_s": round(time.time() - t0, 1)})
                        res["artifact"] = Path(res["artifact"]).name
                        if precision is None or res["precision"] != rows[-1].get("precision"):
                            rows.append(res)
                        print(f"{model.stem} {r.target} {core} {res['precision']}: match={res['match']} "
                              f"max_abs={res['max_abs_err']:.3g} cos={res['cosine']:.6f}", file=sys.stderr)
                        write_results(model, rows, args.images, note, commands)
                        native = res.get("native_precision")
                        if precision is None and (not native or native == "fp32" or native in res["precision"]):
                            break  # the runtime's own choice is what ran: nothing more to pin
    return 0


if __name__ == "__main__":
    sys.exit(main())
