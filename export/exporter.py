"""``export()``: convert, verify, gate, then move into place; nothing unverified under a final name.

Per target: convert into a staging folder inside ``--out`` -> open the artifact in its own
runtime and write its manifest -> parity against the source on real images -> with labelled
data, mAP of artifact vs source through the shared decoder and mAP code -> if it passes,
embed the manifest, write ``<artifact>.json`` and ``os.replace`` the files to their final
names (same filesystem, so each move is atomic). A failed target leaves nothing under its
final name. The run ends with ``export_report.json`` and ``export_report.md``.

Every conversion, calibration and verification step runs inside
:func:`edgekit.export.capture.step`: what converters print (warnings, absl/TF logs, progress
bars, C++ output on file descriptors 1 and 2) is captured, shown on stderr only with
``verbose``, and otherwise kept for the error when the step fails. Only ``log`` (edgekit's own
one line per stage) reaches the caller's terminal.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.io import check_output_not_input, staging_dir, writing
from edgekit.export.capture import captured, step, tail
from edgekit.export.report import ExportReport, TargetResult
from edgekit.export.targets import ConvertJob, resolve_targets
from edgekit.export.gates import make_gate
from edgekit.export.verify import parity_images as pick_parity_images

PARITY_IMAGES = 8


def default_out(source_path: Path) -> Path:
    """``runs/train/x/weights/best.pt`` -> ``runs/train/x/export``; elsewhere ``<dir>/export``."""
    parent = source_path.parent
    return (parent.parent if parent.name == "weights" else parent) / "export"


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise EdgekitError(f"cannot write to {out} ({exc.strerror or exc}): choose a writable --out") from None


def export(model=None, targets=("onnx",), data=None, calib=None, imgsz: int | None = None, out=None,
           max_map_drop: float | None = None, calib_images: int | None = None, split: str | None = None,
           max_top1_drop: float | None = None, keep_float: str | None = None, keep_float_budget: float | None = None,
           calib_method: str | None = None,
           io: str = "int8", weights=None, parity_images: int = PARITY_IMAGES, output_clip: float | str | None = "auto",
           rknn_platform: str = "rk3588", input_color: str = "RGB", log: Callable[[str], None] = lambda s: None,
           verbose: bool = False) -> ExportReport:
    """Export ``model`` to ``targets``, verify each artifact and write the report.

    Args:
        model: checkpoint ``.pt``, Darknet ``.cfg`` or ``.onnx``; None = newest ``runs/train/*/weights/best.pt``.
        targets: target names or ``["all"]``.
        data: data.yaml (calibration from its train split, verification on test/val) or None; for a
            classifier, an image-folder set (``edgekit data crops``) verified on top-1.
        calib: a folder of calibration images (overrides ``data`` for calibration).
        max_map_drop: the mAP@0.5 gate; None = 0.02 for INT8, 0.005 for float targets.
        max_top1_drop: a classifier's top-1 gate; None = 0.01.
        keep_float: INT8 layers left in float: ``"auto"``, a count or node names (:mod:`edgekit.export.keep_float`).
        keep_float_budget: with ``keep_float="auto"``: a try may take at most this many times the plain
            INT8 artifact's host latency (None: no limit).
        calib_method: INT8 activation ranges: a method the targets support, or ``"auto"``
            (:mod:`edgekit.export.calib_method`); None = each quantizer's default.
        output_clip: INT8 detectors' output (logit) range clip: "auto" =
            :data:`edgekit.export.calibration.DETECTION_LOGIT_CLIP`, a number, or None for none.
        rknn_platform: the Rockchip SoC of the rknn targets (:data:`edgekit.export.rknn.PLATFORMS`).
        input_color: ``"BGR"``: tflite artifacts take OpenCV's channel order, the swap folded into the first
            convolution (:mod:`edgekit.export.input_color`); ``"RGB"``: the model's own.
        log: receives edgekit's own progress, one line per stage.
        verbose: also replay on stderr what the converters and runtimes printed (captured otherwise).

    Returns:
        The :class:`ExportReport` (also written as ``export_report.json``/``.md`` in ``out``).

    Example:
        >>> rep = export("best.pt", ["onnx", "tflite-int8"], data="data.yaml")  # doctest: +SKIP
        >>> [(r.target, r.status) for r in rep.results]  # doctest: +SKIP
        [('onnx', 'ok'), ('tflite-int8', 'ok')]
    """
    from edgekit.boards.cpu import cpu_info
    from edgekit.export.calibration import DEFAULT_IMAGES, FEW_IMAGES, CalibrationReader
    from edgekit.export.input_color import check_color
    from edgekit.export.manifest import versions
    from edgekit.export.source import load_source

    if io not in ("int8", "uint8", "float"):
        raise EdgekitError(f"--io must be int8, uint8 or float, got {io!r}")
    with step("loading the model", verbose):
        source = load_source(model, imgsz, weights)
    chosen = resolve_targets(list(targets), source.kind)
    input_color = check_color(input_color)
    unfolded = [t.name for t in chosen if t.family != "tflite"]
    if input_color == "BGR" and unfolded:
        raise EdgekitError(f"--input-color BGR is built for tflite targets (folded into the .tflite's first convolution), "
                           f"not {', '.join(unfolded)}: export those in a run without it")
    from edgekit.export.keep_float import check_targets, parse_keep_float, run_with_plan

    from edgekit.export.calib_method import check_calib_method, run_with_method

    plan = parse_keep_float(keep_float)
    check_targets(plan, chosen)
    if keep_float_budget is not None and plan != "auto":
        raise EdgekitError("--keep-float-budget limits --keep-float auto's tries: give --keep-float auto with it")
    check_calib_method(calib_method, chosen)
    out = Path(out) if out else default_out(source.path)
    inputs = [source.path, data, calib, weights]
    check_output_not_input(out, inputs, contains_ok=True)  # adds artifacts beside the model, never over it
    for t in chosen:  # an .onnx source named like its own artifact (yolo-lite-onnx.onnx) would be replaced
        check_output_not_input(out / f"{source.model}-{t.name}{t.suffix}", inputs)
    _check_writable(out)
    gate = make_gate(source, data, split, max_map_drop, max_top1_drop)
    reader = None
    if any(t.quantized for t in chosen):
        if calib is None and data is None:
            raise EdgekitError("INT8 targets need calibration images: give --data DATA.yaml or --calib DIR (never random data)")
        with step("reading calibration images", verbose):
            # verification images are never calibrated on; without a labelled split, part of the pool is held out
            reader = CalibrationReader.from_source(calib or data, source.imgsz, calib_images or DEFAULT_IMAGES,
                                                   exclude=gate.paths if gate else (),
                                                   hold_out=0 if gate else parity_images, resize=source.resize)
        log(f"calibration: {len(reader)} images from {reader.source}" + (f" ({reader.split})" if reader.split else "")
            + (f", {reader.excluded} verification images left out" if reader.excluded else "")
            + (f", {len(reader.held_out)} held out for parity" if reader.held_out else ""))
        if len(reader) < FEW_IMAGES:
            log(f"warning: calibrating on only {len(reader)} images: INT8 ranges from few images are unreliable; "
                f"give {DEFAULT_IMAGES} or more real images (--calib DIR, --calib-images)")
    images, parity_from = pick_parity_images(gate.paths if gate else None, reader, parity_images)
    log(f"parity images: {len(images)} from {parity_from}")
    cpu = cpu_info()
    report = ExportReport(source.describe(), str(out), reader.info() if reader else None, str(data) if data else None,
                          f"{cpu['model']} ({cpu['cores']} cores)", versions())
    staging = staging_dir(out)  # .staging-<pid>-*: a later run removes it if this one is killed
    try:
        with writing(out):  # a full disk or a vanished folder while the first ONNX is written: one line naming --out
            onnx_fp32, onnx_info = _fp32_onnx(source, chosen, staging, log, verbose)
        for target in chosen:
            job = ConvertJob(source, staging / f"{source.model}-{target.name}{target.suffix}", onnx_fp32,
                             reader if target.quantized else None, {"io": io, "onnx_info": onnx_info, "output_clip": output_clip,
                                                                    "rknn_platform": rknn_platform,
                                                                    "input_color": input_color})
            run_one = lambda j, t=target: _one_target(t, j, images, gate, out, log, verbose, parity_from)  # noqa: E731
            first, job = (run_with_method(calib_method, target, job, run_one, log, final=plan in (None, "auto"))
                          if calib_method else (None, job))
            result = run_with_plan(plan, target, job, images, run_one, log, plain=first, budget=keep_float_budget)
            if first is not None and result is not first:
                result.calib_method = first.calib_method
            report.results.append(result)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.write(out)
    return report


def _fp32_onnx(source, chosen, staging: Path, log, verbose: bool = False):
    """The fp32 ONNX that ONNX-based targets start from (made once per run)."""
    if not any(t.from_onnx for t in chosen):
        return None, {}
    if source.kind == "onnx":
        return source.onnx_path, {"converter": "copied from the source ONNX", "input_layout": "NCHW", "output_layout": "NCHW"}
    from edgekit.export.onnx import torch2onnx

    path = staging / "fp32.onnx"
    t0 = time.perf_counter()
    with step("torch -> ONNX", verbose):
        info = torch2onnx(source.module, source.imgsz, path)
    log(f"torch -> ONNX in {time.perf_counter() - t0:.1f} s")
    return path, info


def _one_target(target, job: ConvertJob, images, gate, out: Path, log, verbose: bool = False,
                parity_from: str = "") -> TargetResult:
    from edgekit.export.manifest import build_manifest, embed
    from edgekit.export.verify import parity, quick_latency
    from edgekit.runtime.backends import open_backend
    from edgekit.runtime.runner import ArtifactRunner, manifest_path

    final = out / job.out.name
    log(f"{target.name}: converting ...")
    t0 = time.perf_counter()
    try:
        with captured(f"{target.name} conversion", verbose):
            info = target.convert(job)
    except Exception as exc:  # a converter's crash fails its target, not the whole run
        _remove(target.files(final))
        return _failed(target.name, exc, verbose, log)
    convert_s = time.perf_counter() - t0
    files = [p.name for p in target.files(job.out)]
    with step(f"{target.name} verification", verbose):
        # a format whose runtime cannot run here (RKNN's NPU) is verified in its toolkit's simulator
        simulator = target.simulator(job.out) if target.simulator else None
        manifest = build_manifest(job.source, target, simulator or open_backend(job.out, target.backend), info,
                                  job.calib.info() if job.calib else None, files)
        # one thread: verification and the quick latency stay comparable across backends, and OpenMP
        # runtimes (ncnn, OpenVINO) do not spin against other processes on a busy host
        runner = ArtifactRunner(job.out, manifest, backend=simulator, threads=1)
        par = {**parity(runner, job.source, images, target.precision), "images_from": parity_from}
    checked = None
    if gate is not None:
        log(f"{target.name}: {gate.kind} on {len(gate.paths)} {gate.split} images ...")
        with step(f"{target.name} {gate.kind}", verbose):
            checked = gate.check(runner, target.precision, log)
    with step(f"{target.name} latency", verbose):  # a simulator's run time is no speed: null, with the reason
        latency = None if simulator else quick_latency(runner, images[0])
    size_mb = sum(p.stat().st_size for p in target.files(job.out)) / 2**20
    result = TargetResult(target.name, "ok", final.name, round(size_mb, 3), round(convert_s, 2), par,
                          checked if gate and gate.kind == "map" else None, None if latency is None else round(latency, 3),
                          converter=info.get("converter"), top1=checked if gate and gate.kind == "top1" else None,
                          simulated=info.get("simulated") if simulator else None)
    reasons = []
    if not par.get("passed"):
        reasons.append(f"parity out of tolerance ({par.get('error') or _parity_text(par)})")
    gate_failed = checked is not None and not checked["passed"]
    if gate_failed:
        reasons.append(gate.failure(checked))
    budget_ms = job.options.get("latency_budget_ms")  # --keep-float-budget: float layers must not cost more
    if budget_ms is not None and latency is not None and latency > budget_ms:
        reasons.append(f"host latency {latency:.2f} ms over the --keep-float-budget limit of {budget_ms:.3g} ms")
    del runner
    if reasons:
        reasons.append(remedy(target, parity_failed=not par.get("passed"), gate_failed=gate_failed,
                              option=gate.option if gate else "--max-map-drop"))
        result.status, result.reason, result.file = "rejected", "; ".join(reasons), None
        _remove(target.files(final) + [manifest_path(final)])  # never leave an unverified artifact under the name
        log(f"{target.name}: REJECTED: {result.reason}")
        return result
    manifest["verification"] = {"parity": par, "map": result.map, "host_latency_ms": result.latency_ms}
    if result.simulated:
        manifest["verification"]["simulated"] = result.simulated
    if result.top1:
        manifest["verification"]["top1"] = result.top1
    with step(f"{target.name} manifest", verbose):
        embed(target, job.out, manifest)
    for src in reversed(target.files(job.out)):  # companions first, main file last
        os.replace(src, out / src.name)
    from edgekit.io import atomic_write_text

    atomic_write_text(manifest_path(final), json.dumps(manifest, indent=1))
    log(f"{target.name}: ok -> {final}")
    return result


def remedy(target, parity_failed: bool, gate_failed: bool, option: str = "--max-map-drop") -> str:
    """What would help a rejected artifact: the advice follows what failed and the precision.

    Example:
        >>> from edgekit.export.targets import TARGETS
        >>> remedy(TARGETS["onnx-int8"], parity_failed=True, gate_failed=False)
        'to fix: calibrate on more or other real images (--calib DIR of scenes like the deployment, --calib-images 100 or more), or use a float target (onnx)'
    """
    from edgekit.export.targets import TARGETS

    floats = [t.name for t in TARGETS.values() if t.family == target.family and not t.quantized]
    if target.quantized:
        fix = ("calibrate on more or other real images (--calib DIR of scenes like the deployment, --calib-images 100 "
               f"or more), or use a float target ({', '.join(floats)})")
        if gate_failed and not parity_failed:
            fix += f"; raise {option} only if this drop is acceptable"
    elif target.precision == "fp16":
        fix = f"fp16 loses this model's range: use {', '.join(n for n in floats if n != target.name) or 'an fp32 target'}"
    else:  # fp32 must match: a miss is a converter or runtime bug, never something to tolerate
        fix = "fp32 must match its source: a converter or runtime bug; use another target and rerun with --verbose to report it"
    return f"to fix: {fix}"


def _failed(name: str, exc: Exception, verbose: bool, log) -> TargetResult:
    """The result of a target whose converter raised: one line naming why, with the converter's last output."""
    if isinstance(exc, EdgekitError):
        reason = str(exc)
    else:  # not a user error: keep the type, and the traceback for --verbose
        lines = str(exc).strip().splitlines()
        reason = f"the converter crashed ({type(exc).__name__}: {lines[0] if lines else 'no message'})"
        if verbose:
            log(traceback.format_exc().rstrip())
    output = getattr(exc, "captured_output", "")
    if output.strip() and not verbose:  # with verbose it was shown already
        reason += f" [converter output: {tail(output)}]"
    log(f"{name}: FAILED: {reason}")
    return TargetResult(name, "failed", reason=reason)


def _parity_text(p: dict) -> str:
    return f"max abs {p['max_abs']:.3g}, cosine {p['cosine']:.5f}, tolerance {p['tolerance']}"


def _remove(paths) -> None:
    for p in paths:
        Path(p).unlink(missing_ok=True)
