"""Open a model that has no edgekit manifest: a TFLite SSD, a YAML-described model, or raw mode.

``edgekit.runtime.load`` sends a file here when it carries no manifest, or when ``spec=`` /
``raw=True`` is given. Which model class handles it:

- ``raw=True``: :class:`~edgekit.runtime.raw.RawModel` (outputs as arrays);
- ``spec=YAML``, or the path itself is a ``.yaml``: :class:`~edgekit.runtime.model_yaml.YamlModel`;
- a ``.tflite`` whose outputs are ``TFLite_Detection_PostProcess``'s: :class:`~edgekit.runtime.ssd_tflite.SsdDetector`;
- anything else: a clear error with the three ways forward.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import open_backend
from edgekit.runtime.model_yaml import YamlModel, read_spec
from edgekit.runtime.raw import RawModel
from edgekit.runtime.ssd_tflite import SsdDetector, custom_ops, is_ssd_postprocess


def open_foreign(path: str | Path, spec: str | Path | None = None, raw: bool = False, backend: str | None = None,
                 labels=None, **options):
    """A runtime model for a file without an edgekit manifest.

    Args:
        path: the model file (``.tflite``, ``.onnx``, ...), or a model YAML whose ``model`` key names it.
        spec: a model YAML describing the model (see :mod:`edgekit.runtime.model_yaml`).
        raw: return the outputs as arrays (:class:`~edgekit.runtime.raw.RawModel`).
        backend: the backend's name (None: from the suffix).
        labels: a TFLite SSD's class names (a list or a labels file; None: a labels file beside the model).
        **options: passed to the backend (threads, delegate, device, precision, fallback).

    Example:
        >>> ssd = open_foreign("../shared/models/ssd_mobilenet_v1_coco_quant/detect.tflite")  # doctest: +SKIP
        >>> face = open_foreign("version-RFB-320.onnx", spec="ultra-light-face-rfb320.yaml")  # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        desc = read_spec(path)
        if not desc["model"]:
            raise EdgekitError(f"model YAML {path} has no 'model' key: add the model file's path, or pass the model "
                               "and --spec YAML")
        path, spec = Path(desc["model"]), path
        if not path.exists():
            raise EdgekitError(f"{path} (the model named in {spec}) does not exist: fix 'model' in the YAML")
    options = {k: v for k, v in options.items() if v is not None and v is not False or k == "fallback"}
    if raw:
        return RawModel(open_backend(path, backend, **options))
    if spec is not None:
        desc = read_spec(spec)  # a wrong YAML fails before the interpreter loads
        return YamlModel(open_backend(path, backend, **options), desc)
    if path.suffix.lower() == ".tflite":
        ops = custom_ops(path)  # read from the flatbuffer: no interpreter is opened for a file that has no SSD op
        b = open_backend(path, backend, **options) if ops is None or "TFLite_Detection_PostProcess" in ops else None
        if b is not None and is_ssd_postprocess(b):
            return SsdDetector(b, labels)
    raise EdgekitError(f"{path} has no edgekit manifest and is not a TFLite SSD: export it with `edgekit export`, "
                       "describe it with a model YAML (--spec, see edgekit/assets/model_yaml/), or run it with --raw")
