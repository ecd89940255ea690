"""``edgekit verify ARTIFACT --arm CORE``: the artifact on an emulated Cortex core vs the x86 run of the same file.

Both sides run ``edgekit.runtime``: here from this install, on the emulated core from the board
install (``edgekit[<extra>]`` for aarch64, :mod:`edgekit.arm.guest`). They get the same
letterboxed real images; the float head maps are compared with the tolerance of the
precision the ARM runtime really computed in (fp32: max abs error <= 1e-3; fp16: cosine >=
0.999; bf16: cosine >= 0.99; int8: cosine >= 0.98, as :mod:`edgekit.export.verify`). The x86
side always computes at the artifact's own precision (edgekit pins OpenVINO and ncnn to fp32),
so a runtime that switches to fp16 on an A76 shows as ``precision: fp16``.

The result is recorded in the artifact's manifest under ``arm.<core>`` (the bench report
shows it as "emulated on cortex-a72: outputs match (...)"): a statement about outputs,
never a speed; emulated time says nothing about a board's.
"""

from __future__ import annotations

import datetime
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgekit.arm.count import read_counts
from edgekit.arm.cores import get_core
from edgekit.arm.run import require, run_guest
from edgekit.arm.setup import cache_dir
from edgekit.errors import EdgekitError
from edgekit.export.verify import TOLERANCES, labelled_records

ARM_TOLERANCES = {**TOLERANCES, "bf16": {"min_cosine": 0.99}}
_PRECISION_NAMES = {"f32": "fp32", "fp32": "fp32", "f16": "fp16", "fp16": "fp16", "bf16": "bf16"}


def _stderr(msg: str) -> None:
    print(f"verify --arm: {msg}", file=sys.stderr, flush=True)


def compute_precision(artifact_precision: str, runtime_precision, int8_kernels: bool | None = None) -> str:
    """The precision the arithmetic ran in: an int8 file stays int8 (``int8+fp16`` where the
    runtime computes its float parts in fp16, ``fakequant-fp32`` where it has no int8 kernels and
    runs the quantize/dequantize ops in fp32, as OpenVINO on ARM); float files compute in what
    the runtime reports.

    Example:
        >>> compute_precision("fp16", "f32"), compute_precision("fp32", "fp16"), compute_precision("int8", "f16")
        ('fp32', 'fp16', 'int8+fp16')
        >>> compute_precision("int8", "f32", int8_kernels=False)
        'fakequant-fp32'
    """
    rp = _PRECISION_NAMES.get(str(runtime_precision).lower()) if runtime_precision else None
    if artifact_precision == "int8" and int8_kernels is False:
        return f"fakequant-{rp or 'fp32'}"
    if artifact_precision == "int8":
        return "int8" if rp in (None, "fp32") else f"int8+{rp}"
    return rp or "fp32"


def tolerance(precision: str) -> dict:
    """The match tolerance of a compute precision (int8+fp16 and fakequant-fp32 are judged as int8:
    the x86 side runs int8 kernels, whose rounding differs at quantization-step boundaries).

    Example:
        >>> tolerance("int8+fp16"), tolerance("fakequant-fp32")
        ({'min_cosine': 0.98}, {'min_cosine': 0.98})
    """
    return ARM_TOLERANCES["int8" if precision.startswith(("int8", "fakequant")) else precision]


def compare(ref: list[list[np.ndarray]], got: list[list[np.ndarray]], clip: float | None = None) -> dict:
    """Max abs error and worst cosine over images and outputs.

    Example:
        >>> a = [[np.ones((1, 4), np.float32)]]
        >>> compare(a, [[np.ones((1, 4), np.float32) * 1.5]])["max_abs_err"]
        0.5
    """
    max_abs, cos = 0.0, 1.0
    for r_maps, g_maps in zip(ref, got):
        for r, g in zip(r_maps, g_maps):
            if r.shape != g.shape:
                raise EdgekitError(f"the ARM run's output has shape {list(g.shape)}, the x86 run's {list(r.shape)}")
            if clip:  # int8 detectors store logits clipped at output_clip: compare what decodes
                r, g = np.clip(r, -clip, clip), np.clip(g, -clip, clip)
            r64, g64 = r.ravel().astype(np.float64), g.ravel().astype(np.float64)
            max_abs = max(max_abs, float(np.abs(r64 - g64).max()))
            den = np.linalg.norm(r64) * np.linalg.norm(g64)
            cos = min(cos, float(r64 @ g64 / den) if den > 0 else float(np.allclose(r64, g64)))
    return {"max_abs_err": max_abs, "cosine": cos}


def passes(stats: dict, tol: dict) -> bool:
    return stats["max_abs_err"] <= tol.get("max_abs", np.inf) and stats["cosine"] >= tol.get("min_cosine", -1.0)


def _map50(maps_per_image, letterboxes, records, manifest) -> float:
    from edgekit.metrics import evaluate_detections
    from edgekit.runtime.postprocess import postprocess_detections

    preds = [postprocess_detections(m, manifest["decode"], lb, 0.001, 0.6) for m, lb in zip(maps_per_image, letterboxes)]
    truth = [r.truth() for r in records]
    return float(evaluate_detections(truth, preds, manifest["names"]).map50)


def _images(records, n: int) -> list[np.ndarray]:
    """Real images: the labelled subset when there is one, else ``n`` of edgekit's sample test split."""
    import cv2

    if records is None:
        from edgekit.data import load_dataset
        from edgekit.data.sample import sample_data_yaml

        records = load_dataset(sample_data_yaml()).split("test")[:n]
    return [cv2.imread(str(r.path), cv2.IMREAD_COLOR) for r in records]


def _guest(cache, core, extra, tensors_dir: Path, job: dict, n: int, count: int, log) -> tuple[list, dict]:
    """Run the guest job; (maps per image, the guest's report)."""
    job_path = tensors_dir / "job.json"
    job_path.write_text(json.dumps(job))
    count_out = tensors_dir / "counts.json" if count else None
    log(f"running {Path(job['artifact']).name} on emulated {core} (edgekit[{extra}] for aarch64)")
    run_guest(cache, core, extra, ["-m", "edgekit.arm.guest", str(job_path)], count_out=count_out, log=log)
    report = json.loads(Path(job["out"] + ".json").read_text())
    with np.load(job["out"] + ".npz") as z:
        per_image = [[z[f"img{k}_out{j}"] for j in range(len([f for f in z.files if f.startswith(f"img{k}_")]))]
                     for k in range(n)]
    if count:
        report["instructions"] = read_counts(count_out, count)
    return per_image, report


def verify_arm(artifact, core: str, ref=None, data=None, split: str | None = None, precision: str | None = None,
               count: bool = False, images: int = 4, map_images: int = 16, count_runs: int = 2, cache=None,
               predict: bool = True, record: bool = True, log=_stderr) -> dict:
    """Run ``artifact`` on the emulated ``core`` and compare with this host's run of the same file.

    Args:
        precision: pin the ARM runtime's compute precision (``fp32``, ``fp16``...); ``native``:
            what the runtime picks by itself on that core (OpenVINO f16 and ncnn fp16 on an A76);
            None: what ``edgekit.runtime.load`` does on a board (fp32 unless asked).
        count: also count the instructions of ``count_runs`` inferences (per-inference figures).
        data: a data.yaml: also the mAP@0.5 of both runs on ``map_images`` of its test split.
        ref: the source model: also the ARM run's parity with it (the export gate's tolerance).

    Example:
        >>> verify_arm("out/yolo-lite-onnx-int8.onnx", "cortex-a76", count=True)["instructions"]["dot"]  # doctest: +SKIP
        1843200
    """
    from edgekit.runtime.backends import get_backend
    from edgekit.runtime.runner import ArtifactRunner, read_manifest

    core = get_core(core).name
    artifact = Path(artifact)
    if not artifact.is_file():
        raise EdgekitError(f"{artifact} does not exist: give the path to an exported model")
    manifest = read_manifest(artifact)
    backend = get_backend(manifest["backend"])
    cache = cache_dir(cache)
    require(cache, backend.extra, counting=count)
    records, split, _ = labelled_records(data, split) if data and manifest["task"] == "detect" else (None, None, None)
    if data and records is None and manifest["task"] == "detect":
        raise EdgekitError(f"{data}: --data needs a data.yaml with labels, not a folder")
    if records is not None:
        records = records[:map_images]
    imgs = _images(records, images)
    host = ArtifactRunner(artifact, manifest, backend.name, threads=1)
    boxes = [host.fit(img) for img in imgs]  # the manifest's letterbox or stretch
    x86 = [host.run_tensor(host.tensor(lb)) for lb, _ in boxes]
    with tempfile.TemporaryDirectory(prefix="edgekit-arm-") as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "images.npz", **{f"img{k}": lb for k, (lb, _) in enumerate(boxes)})
        job = {"artifact": str(artifact.resolve()), "backend": backend.name, "threads": 1, "precision": precision,
               "images": str(tmp / "images.npz"), "out": str(tmp / "out"),
               "predict": str(Path(getattr(records[0], "path", "")).resolve()) if records and predict else None,
               "count": count_runs if count else 0}
        arm, report = _guest(cache, core, backend.extra, tmp, job, len(boxes), job["count"], log)
    described = report["describe"]
    prec = compute_precision(manifest["precision"], described.get("precision"), described.get("int8_kernels"))
    tol = tolerance(prec)
    clip = (manifest.get("conversion") or {}).get("output_clip")
    stats = compare(x86, arm, clip)
    result = {"core": core, "runtime": backend.name, "runtime_version": described.get("version"), "precision": prec,
              "match": passes(stats, tol), **stats, "tolerance": tol}
    if records is not None:
        result["map50"] = _map50(arm, [b for _, b in boxes], records, manifest)
        result["x86_map50"] = _map50(x86, [b for _, b in boxes], records, manifest)
        if stats["max_abs_err"] == 0.0 and result["map50"] != result["x86_map50"]:
            result["match"] = False  # identical maps must decode to identical detections
    if count:
        result["instructions"] = report["instructions"]
    result.update({"artifact": str(artifact), "target": manifest.get("target"), "images": len(boxes),
                   "native_precision": report.get("native_precision"),
                   "x86": {"runtime_version": host.backend.version(), "precision": compute_precision(
                       manifest["precision"], host.backend.describe().get("precision"))}})
    if ref is not None:
        result["ref"] = _ref_parity(ref, manifest, boxes, arm, clip)
        result["match"] = bool(result["match"] and result["ref"]["passed"])
    if described.get("warnings"):  # what the runtime itself said on that core (OpenVINO's int8 on ARM)
        result["runtime_warnings"] = list(described["warnings"])
    if report.get("host_only_importable"):
        result["host_only_importable"] = report["host_only_importable"]
    if record:
        record_in_manifest(artifact, manifest, result, pinned=precision)
    return result


def _ref_parity(ref, manifest, boxes, arm, clip) -> dict:
    """The ARM run against the source model, with the export gate's tolerance for the artifact's precision."""
    from edgekit.export.source import load_source
    from edgekit.runtime.preprocess import to_tensor

    source = load_source(ref, tuple(manifest["preprocess"]["imgsz"]))
    if list(source.names) != list(manifest["names"]):
        raise EdgekitError(f"{ref} has classes {list(source.names)}, the artifact {manifest['names']}: give the model "
                           "it was exported from as --ref")
    src = [source.forward(to_tensor(lb)) for lb, _ in boxes]
    stats = compare(src, arm, clip)  # both in decoder order (decode_index is the source's output index)
    tol = TOLERANCES[manifest["precision"]]
    return {"ref": str(ref), **stats, "tolerance": tol, "passed": passes(stats, tol)}


def record_in_manifest(artifact: Path, manifest: dict, result: dict, pinned: str | None = None) -> Path | None:
    """Write the result under ``arm.<core>`` of the sidecar manifest (atomically); None when it cannot."""
    from edgekit import __version__
    from edgekit.io import atomic_write_text
    from edgekit.runtime.runner import manifest_path

    keep = ("runtime", "runtime_version", "precision", "match", "max_abs_err", "cosine", "tolerance", "map50",
            "instructions", "images")
    entry = {k: result[k] for k in keep if k in result}
    entry.update({"edgekit": __version__, "date": datetime.date.today().isoformat()})
    key = result["core"] if not pinned else f"{result['core']}/{pinned}"
    updated = {**manifest, "arm": {**(manifest.get("arm") or {}), key: entry}}
    try:
        return atomic_write_text(manifest_path(artifact), json.dumps(updated, indent=1))
    except OSError as exc:
        _stderr(f"could not record the result in {manifest_path(artifact)} ({exc.strerror})")
        return None
