"""The target registry: a target is format + precision, with its needs and its converter.

One table, like Ultralytics' formats table, but every converter lives in its family's file
(``onnx.py``, ``tflite.py``, ``openvino.py``, ``ncnn.py``, ``mnn.py``, ``rknn.py``...) and is imported only when used.
A family (:class:`Family`) names the runtime backend of its files (whose registry entry gives
the suffix and companion files) and its manifest writer. Adding a target in an existing family
is one row below; a new format is a family file, one :func:`register_family` row and a backend.

Each converter takes a :class:`ConvertJob` and writes ``job.out`` (in a staging folder; the
exporter moves verified artifacts into place) and returns notes about how it converted.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import get_backend


@dataclass
class ConvertJob:
    """Everything a converter needs: the source, an fp32 ONNX of it, calibration, options."""

    source: object  # edgekit.export.source.Source
    out: Path
    onnx_fp32: Path | None = None
    calib: object = None  # CalibrationReader or None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """A target family: one file format, the backend that runs it, and how a manifest goes inside.

    Attributes:
        name: ``onnx``, ``tflite``, ``openvino``, ``ncnn``.
        backend: the runtime backend that verifies and runs its files (its suffix and companions
            come from the backend registry).
        embed: writes the manifest into a file of this format (None where the format has no place
            for it, as ncnn); the backend's ``read_manifest`` reads it back.
        simulator: for a format whose runtime cannot run on the host (RKNN's NPU): opens the freshly
            converted file in the toolkit's simulator for verification (results labelled simulated,
            no latency); None: the backend verifies it.
    """

    name: str
    backend: str
    embed: Callable[[Path, dict], None] | None = None
    simulator: Callable[[Path], object] | None = None


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a target family (one line per format)."""
    FAMILIES[family.name] = family
    return family


@dataclass(frozen=True)
class Target:
    """One export target: a row of the registry.

    Attributes:
        name: CLI name (``tflite-int8``).
        family: ``onnx``, ``tflite``, ``openvino`` or ``ncnn`` (a :class:`Family`).
        precision: ``fp32``, ``fp16`` or ``int8`` (of the weights/compute).
        needs: Python modules the conversion needs (the ``extra`` installs them all).
        from_onnx: its converter starts from the fp32 ONNX (so an ONNX source reaches it too;
            else it needs the torch model).
        convert: the converter.
        extra: the pip extra that installs ``needs`` (host conversion tools: ``export``).
        optional: modules used when installed (recorded in manifests and ``edgekit info``).
        description: one line for ``edgekit export --list``.
        requires: what else it needs beyond modules (RKNN's toolkit venv): returns what is missing.
        hint: how to install what it needs, when more than ``pip install "edgekit[<extra>]"``.
    """

    name: str
    family: str
    precision: str
    needs: tuple[str, ...]
    from_onnx: bool
    convert: Callable[[ConvertJob], dict]
    extra: str = "export"
    description: str = ""
    optional: tuple[str, ...] = ()
    requires: Callable[[], list[str]] | None = None
    hint: str = ""

    @property
    def quantized(self) -> bool:
        return self.precision == "int8"

    @property
    def backend(self) -> str:
        """The runtime backend that verifies and runs this target's files."""
        return FAMILIES[self.family].backend

    @property
    def simulator(self) -> Callable[[Path], object] | None:
        """Opens a converted file in its toolkit's simulator (RKNN), or None: verified by its backend."""
        return FAMILIES[self.family].simulator

    @property
    def install_hint(self) -> str:
        """The command(s) that make this target available here.

        Example:
            >>> get_target("mnn").install_hint
            'pip install "edgekit[export]"'
        """
        return self.hint or f'pip install "edgekit[{self.extra}]"'

    @property
    def suffix(self) -> str:
        """File suffix of the artifact's main file (the backend's own format)."""
        return get_backend(self.backend).suffixes[0]

    @property
    def companions(self) -> tuple[str, ...]:
        """Suffixes of files that travel with the main one (OpenVINO and ncnn ``.bin``)."""
        return get_backend(self.backend).companions

    def embed(self, path: Path, manifest: dict) -> bool:
        """Write the manifest inside the artifact where the format allows; False where it cannot (ncnn)."""
        writer = FAMILIES[self.family].embed
        if writer is None:
            return False
        writer(path, manifest)
        return True

    def missing(self) -> list[str]:
        """Modules (and other needs, as RKNN's toolkit venv) this target needs that are not installed here."""
        return [m for m in self.needs if importlib.util.find_spec(m) is None] + (self.requires() if self.requires else [])

    def available(self) -> bool:
        return not self.missing()

    def files(self, main: Path) -> list[Path]:
        """The artifact's files: the main file plus companions (same stem)."""
        return [main, *(main.with_suffix(s) for s in self.companions)]


TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    """Add a target to the registry (one line per target)."""
    TARGETS[target.name] = target
    return target


def get_target(name: str) -> Target:
    """The target called ``name``; an error listing the known ones otherwise.

    Example:
        >>> get_target("tflite-int8").family
        'tflite'
    """
    if name not in TARGETS:
        raise EdgekitError(f"unknown target '{name}': choose from {', '.join(TARGETS)} (or 'all'; see edgekit export --list)")
    return TARGETS[name]


def resolve_targets(names: list[str], source_kind: str = "checkpoint") -> list[Target]:
    """Expand ``all`` (every target installable here and reachable from the source) and check the rest."""
    if not names:
        raise EdgekitError("no --target given: name one or more targets (edgekit export --list shows them), or 'all'")
    explicit = [n for n in dict.fromkeys(names) if n != "all"]
    out = []
    for n in explicit:
        t = get_target(n)
        if source_kind == "onnx" and not t.from_onnx:
            raise EdgekitError(f"target {n} needs the torch model; an ONNX source reaches only "
                               f"{', '.join(x.name for x in TARGETS.values() if x.from_onnx)}: export from the checkpoint")
        if t.missing():
            raise EdgekitError(f"target {n} needs {', '.join(t.missing())}, not installed here: {t.install_hint}")
        out.append(t)
    if "all" in names:  # every target installable here, after the ones named (which must be)
        out += [t for t in TARGETS.values() if t.name not in explicit and t.available()
                and (t.from_onnx or source_kind != "onnx")]
    return out


# ---- converters: thin adapters over the family modules (imported when a target runs) ----

def _onnx(job: ConvertJob) -> dict:
    import shutil

    shutil.copyfile(job.onnx_fp32, job.out)
    return dict(job.options.get("onnx_info", {}))


def _output_clip(job: ConvertJob) -> float | None:
    """Detectors' outputs are logits: their INT8 ranges are clipped (see DETECTION_LOGIT_CLIP)."""
    from edgekit.export.calibration import DETECTION_LOGIT_CLIP

    clip = job.options.get("output_clip", "auto")
    if job.source.task != "detect" or clip is None:
        return None
    return DETECTION_LOGIT_CLIP if clip == "auto" else float(clip)


def _int8_record(job: ConvertJob, info: dict) -> dict:
    """The conversion info plus, under --keep-float auto, the plain INT8 try it is weighed against."""
    baseline = job.options.get("kept_float_baseline")
    return {**info, "kept_float_baseline": baseline} if baseline and info.get("kept_float") else info


def _onnx_int8(job: ConvertJob) -> dict:
    from edgekit.export.onnx import onnx2onnx_int8

    return _int8_record(job, onnx2onnx_int8(job.onnx_fp32, job.out, job.calib, output_clip=_output_clip(job),
                                            keep_float=job.options.get("keep_float"),
                                            calib_method=job.options.get("calib_method")))


def _tflite(precision: str) -> Callable[[ConvertJob], dict]:
    def convert(job: ConvertJob) -> dict:
        from edgekit.export.tflite import torch2tflite

        color = job.options.get("input_color") or "RGB"
        if precision != "int8":
            return torch2tflite(job.source.module, job.source.imgsz, job.out, precision=precision, input_color=color)
        return _int8_record(job, torch2tflite(
            job.source.module, job.source.imgsz, job.out, precision=precision, calib=job.calib,
            io=job.options.get("io", "int8"), output_clip=_output_clip(job), keep_float=job.options.get("keep_float"),
            calib_method=job.options.get("calib_method"), fp32_copy=job.options.get("fp32_copy"), input_color=color))
    return convert


def _openvino(precision: str) -> Callable[[ConvertJob], dict]:
    def convert(job: ConvertJob) -> dict:
        from edgekit.export.openvino import onnx2openvino

        if precision != "int8":
            return onnx2openvino(job.onnx_fp32, job.out, precision=precision)
        return _int8_record(job, onnx2openvino(job.onnx_fp32, job.out, precision=precision, calib=job.calib,
                                               keep_float=job.options.get("keep_float"),
                                               calib_method=job.options.get("calib_method")))
    return convert


def _ncnn(fp16: bool) -> Callable[[ConvertJob], dict]:
    def convert(job: ConvertJob) -> dict:
        from edgekit.export.ncnn import torch2ncnn

        return torch2ncnn(job.source.module, job.source.imgsz, job.out, fp16=fp16)
    return convert


def _ncnn_int8(job: ConvertJob) -> dict:
    from edgekit.export.ncnn_int8 import torch2ncnn_int8

    return torch2ncnn_int8(job.source.module, job.source.imgsz, job.out, job.calib)


def _mnn(int8: bool) -> Callable[[ConvertJob], dict]:
    def convert(job: ConvertJob) -> dict:
        from edgekit.export.mnn import onnx2mnn, onnx2mnn_int8

        return onnx2mnn_int8(job.onnx_fp32, job.out, job.calib) if int8 else onnx2mnn(job.onnx_fp32, job.out)
    return convert


def _executorch(precision: str) -> Callable[[ConvertJob], dict]:
    def convert(job: ConvertJob) -> dict:
        from edgekit.export.executorch import torch2executorch

        return torch2executorch(job.source.module, job.source.imgsz, job.out, precision=precision, calib=job.calib,
                                output_clip=_output_clip(job) if precision == "int8" else None)
    return convert


def _rknn(precision: str) -> Callable[[ConvertJob], dict]:
    def convert(job: ConvertJob) -> dict:
        from edgekit.export.rknn import onnx2rknn

        return onnx2rknn(job.onnx_fp32, job.out, precision, calib=job.calib, imgsz=job.source.imgsz,
                         platform=job.options.get("rknn_platform") or "rk3588",
                         output_clip=_output_clip(job) if precision == "int8" else None)
    return convert


def _rknn_simulator(path: Path):
    from edgekit.export.rknn import open_simulator

    return open_simulator(path)


def _rknn_missing() -> list[str]:
    from edgekit.export.rknn_env import missing

    return missing()


def _embed(module: str, function: str) -> Callable[[Path, dict], None]:
    def embed(path: Path, manifest: dict) -> None:
        import importlib

        getattr(importlib.import_module(f"edgekit.export.{module}"), function)(path, manifest)
    return embed


for _f in (
    Family("onnx", "onnxruntime", _embed("onnx", "embed_manifest")),
    Family("tflite", "litert", _embed("tflite", "embed_metadata")),
    Family("openvino", "openvino", _embed("openvino", "embed_manifest")),
    Family("ncnn", "ncnn"),  # the .param has no place for metadata: the sidecar JSON carries it
    Family("mnn", "mnn"),  # no metadata slot the converter fills later: the sidecar JSON carries it
    Family("executorch", "executorch"),  # the .pte has no free metadata slot: the sidecar JSON carries it
    Family("rknn", "rknn", simulator=_rknn_simulator),  # sidecar JSON; verified in rknn-toolkit2's x86 simulator
):
    register_family(_f)

_ONNX = ("torch", "onnx", "onnxruntime")
_TFL = ("torch", "litert_torch", "ai_edge_litert")
_OV = ("onnx", "openvino")
_NCNN = ("torch", "pnnx", "ncnn")
_MNN = ("onnx", "MNN")
_ET = ("torch", "executorch")  # torchao (PT2E) comes with executorch
_SLIM = ("onnxslim",)  # simplifies the fp32 ONNX the ONNX-based targets start from
# rknn-toolkit2 runs in a venv of its own (export/rknn_env.py); edgekit's side needs onnx (outputs' Clip)
_RKNN = {"requires": _rknn_missing, "optional": _SLIM,
         "hint": 'pip install "edgekit[export]", then `edgekit rknn setup` (rknn-toolkit2 in its own venv)'}
for _t in (
    Target("onnx", "onnx", "fp32", _ONNX, True, _onnx,
           description="ONNX fp32 (opset 17, onnxslim), runs in onnxruntime / OpenCV DNN", optional=_SLIM),
    Target("onnx-int8", "onnx", "int8", _ONNX, True, _onnx_int8,
           description="ONNX static INT8 QDQ (per-channel s8 weights, u8 activations)", optional=_SLIM),
    Target("tflite", "tflite", "fp32", _TFL, False, _tflite("fp32"), description="TFLite fp32 (LiteRT + XNNPACK)"),
    Target("tflite-fp16", "tflite", "fp16", _TFL + ("ai_edge_quantizer",), False, _tflite("fp16"),
           description="TFLite fp16 weights, float I/O"),
    Target("tflite-int8", "tflite", "int8", _TFL + ("ai_edge_quantizer",), False, _tflite("int8"),
           description="TFLite full-integer INT8 (--io int8|uint8|float), Edge TPU / NPU ready"),
    Target("openvino", "openvino", "fp16", _OV, True, _openvino("fp16"), description="OpenVINO IR, fp16-compressed weights",
           optional=_SLIM),
    Target("openvino-int8", "openvino", "int8", _OV + ("nncf",), True, _openvino("int8"),
           description="OpenVINO IR INT8 (NNCF post-training quantization)", optional=_SLIM),
    Target("ncnn", "ncnn", "fp32", _NCNN, False, _ncnn(False), description="ncnn fp32 via pnnx"),
    Target("ncnn-fp16", "ncnn", "fp16", _NCNN, False, _ncnn(True), description="ncnn fp16 weights via pnnx"),
    Target("ncnn-int8", "ncnn", "int8", _NCNN, False, _ncnn_int8,
           description="ncnn INT8 (ncnn2table-format table, ncnn2int8 per-channel weights, in Python)"),
    Target("mnn", "mnn", "fp32", _MNN, True, _mnn(False), description="MNN fp32 (MNNConvert from the ONNX)",
           optional=_SLIM),
    Target("mnn-int8", "mnn", "int8", _MNN, True, _mnn(True), optional=_SLIM,
           description="MNN full INT8 (mnnquant: EMA activation ranges, per-channel weights)"),
    Target("executorch", "executorch", "fp32", _ET, False, _executorch("fp32"),
           description="ExecuTorch .pte fp32, XNNPACK-delegated (the runtime needs torch: its bindings link libtorch)"),
    Target("executorch-int8", "executorch", "int8", _ET, False, _executorch("int8"),
           description="ExecuTorch .pte INT8 (PT2E + XNNPACKQuantizer: per-channel weights), XNNPACK-delegated"),
    Target("rknn", "rknn", "fp16", ("onnx",), True, _rknn("fp16"), **_RKNN,
           description="RKNN fp16 for Rockchip NPUs (--rknn-platform, default rk3588); verified in the toolkit's x86 simulator"),
    Target("rknn-int8", "rknn", "int8", ("onnx",), True, _rknn("int8"), **_RKNN,
           description="RKNN INT8 w8a8 (per-channel weights) for Rockchip NPUs; verified in the toolkit's x86 simulator"),
):
    register_target(_t)
