"""ONNX to RKNN (``.rknn``) for Rockchip NPUs, verified in rknn-toolkit2's x86 simulator.

rknn-toolkit2 runs in a venv of its own (:mod:`edgekit.export.rknn_env`, ``edgekit rknn setup``):
its pins (torch<=2.4, onnx<=1.18, protobuf<=4.25.4, numpy<=1.26.4) cannot share edgekit's. The
conversion is :mod:`edgekit.export.rknn_child` run there as a child process, which keeps the
toolkit's log (a lot of it, Python and C++) in a file: shown with ``--verbose``, its tail in the
error when the conversion fails.

* ``rknn``: ``build(do_quantization=False)``: the NPU's fp16.
* ``rknn-int8``: ``build(do_quantization=True)``: w8a8, per-channel int8 weights, per-tensor int8
  activations from the toolkit's ``normal`` (min/max) calibration on the images of edgekit's
  :class:`~edgekit.export.calibration.CalibrationReader`, written losslessly at the model's input
  size (the toolkit's resize is then the identity; it loads them as RGB: ``quant_img_RGB2BGR`` stays
  False). A detector's outputs
  are logits: a ``Clip`` to +-:data:`~edgekit.export.calibration.DETECTION_LOGIT_CLIP` is added to
  each output of the ONNX first, so the output ranges are clipped like every other INT8 target's.

The model takes the letterboxed RGB pixels as they are (uint8 NHWC, as the NPU likes them): the
normalisation (mean 0, std 255) is inside the ``.rknn``. Outputs are float32 NCHW.

**Verified in a simulator, never timed.** The toolkit's simulator runs only a model built in the
same session, so the child that converts stays up and serves it: :func:`open_simulator` gives the
exporter a backend (:class:`RknnSimulator`) on that child, and parity and the mAP gate run there.
The export report and manifest label these results ``simulated``; their latency is null, because a
simulator's run time on x86 says nothing of the NPU's. On the board, ``edgekit.runtime.load`` runs the
file with rknn-toolkit-lite2 (:mod:`edgekit.runtime.rknn_backend`), and ``edgekit bench`` there
measures it.

Example:
    >>> onnx2rknn(Path("fp32.onnx"), Path("m.rknn"), "int8", calib=reader, imgsz=(320, 320))["platform"]  # doctest: +SKIP
    'rk3588'
"""

from __future__ import annotations

import atexit
import json
import select
import shutil
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.export.rknn_env import SETUP_HINT, env_dir, ready
from edgekit.export.rknn_env import python as toolkit_python
from edgekit.runtime.backends import Backend, TensorInfo

# the target_platform names rknn-toolkit2 2.5.0 accepts
PLATFORMS = ("rk3588", "rk3576", "rk3568", "rk3566", "rk3562", "rv1126b", "rv1106", "rv1106b", "rv1103", "rv1103b",
             "rk2118")
DEFAULT_PLATFORM = "rk3588"
PRECISIONS = ("fp16", "int8")
ALGORITHM = "normal"  # the toolkit's min/max activation ranges (kl_divergence and mmse are its others)
CHILD = Path(__file__).with_name("rknn_child.py")
CONVERT_TIMEOUT_S = 1800
RUN_TIMEOUT_S = 300
SIMULATED = "not measured: rknn-toolkit2's x86 simulator checks accuracy; its run time is not the NPU's speed"
_LIVE: dict[str, Session] = {}  # artifact path -> the child that built it, until the exporter opens it


def _stop(proc: subprocess.Popen, folder: str) -> None:
    """End a child and remove its folder (also run by the finalizer and at exit)."""
    if proc.poll() is None:
        try:
            proc.stdin.write(b'{"op": "close"}\n')
            proc.stdin.close()
            proc.wait(10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None and not stream.closed:
            try:
                stream.close()
            except OSError:
                pass
    shutil.rmtree(folder, ignore_errors=True)


class Session:
    """One rknn-toolkit2 child: converts ``job`` on start, then runs the simulator on request.

    Example:
        >>> s = Session({"onnx": "m.onnx", "out": "m.rknn", ...})  # doctest: +SKIP
        >>> [o.shape for o in s.run(np.zeros((1, 64, 64, 3), np.uint8))]  # doctest: +SKIP
    """

    def __init__(self, job: dict, env=None):
        self.folder = tempfile.mkdtemp(prefix="edgekit-rknn-")
        self.log_path = Path(self.folder) / "toolkit.log"
        with open(self.log_path, "wb") as log:
            # -I: the script's folder (edgekit's export/, whose rknn.py would shadow the toolkit's rknn package),
            # PYTHONPATH and the user site stay off sys.path; its own working folder: the toolkit writes
            # check files and logs into the current one
            self.proc = subprocess.Popen([str(toolkit_python(env)), "-I", str(CHILD)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, cwd=self.folder)
        self._finalizer = weakref.finalize(self, _stop, self.proc, self.folder)
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()
        head = self._head(CONVERT_TIMEOUT_S, "conversion")
        self.toolkit, self.outputs = head["toolkit"], head["outputs"]

    def log(self) -> str:
        """What the toolkit printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _fail(self, message: str):
        from edgekit.export.capture import tail

        said = tail(self.log(), lines=6, chars=500)
        self.close()
        raise EdgekitError(f"{message}{f' [toolkit log: {said}]' if said else ''}")

    def _head(self, timeout: float, what: str) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self._fail(f"rknn-toolkit2 {what} took over {timeout:.0f} s: use the ONNX or ncnn targets for this model")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self._fail(f"rknn-toolkit2 {what} ended without an answer (exit {code}): rerun with --verbose; "
                       "if the venv is damaged, delete it and run `edgekit rknn setup`")
        head = json.loads(line)
        if not head.get("ok"):
            said = " | ".join(ln.strip() for ln in str(head.get("error")).splitlines() if ln.strip())[-300:]
            self._fail(f"rknn-toolkit2 {what} failed ({said}): use the ONNX or ncnn targets for this model")
        return head

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """One input through the simulator; float32 outputs."""
        if self.proc.poll() is not None:
            raise EdgekitError("the RKNN simulator has ended: re-export the model to verify it again")
        head = {"op": "run", "shape": list(x.shape), "dtype": x.dtype.name}
        self.proc.stdin.write((json.dumps(head) + "\n").encode() + x.tobytes())
        self.proc.stdin.flush()
        answer = self._head(RUN_TIMEOUT_S, "simulator run")
        outs = []
        for o in answer["outputs"]:
            n = int(np.prod(o["shape"])) * 4
            outs.append(np.frombuffer(self.proc.stdout.read(n), np.float32).reshape(o["shape"]).copy())
        return outs

    def close(self) -> None:
        self._finalizer()


class RknnSimulator(Backend):
    """The exporter's view of a freshly converted ``.rknn``: it runs in the toolkit's x86 simulator.

    Not in the backend registry: a simulator runs only the model its own child just built
    (:func:`open_simulator`). Input: uint8 NHWC RGB pixels (``quant`` 1/255, 0: the model divides
    by 255 itself); outputs float32 NCHW.

    Example:
        >>> sim = open_simulator(Path("staging/m-rknn-int8.rknn"))  # doctest: +SKIP
        >>> sim.describe()["simulated"]  # doctest: +SKIP
        'rknn-toolkit2 2.5.0 x86 simulator (rk3588)'
    """

    name = "rknn-simulator"
    host_only = True

    def __init__(self, path: Path, session: Session, imgsz, platform: str):
        self.path, self.session, self.platform = Path(path), session, platform
        self.threads, self.warnings = None, []
        h, w = imgsz
        self.inputs = [TensorInfo("input", (1, int(h), int(w), 3), "uint8", (1 / 255.0, 0))]
        self.outputs = [TensorInfo(f"output{k}", tuple(o["shape"]), "float32") for k, o in enumerate(session.outputs)]

    def version(self) -> str:  # the toolkit in its venv, not a package of this environment
        return self.session.toolkit

    @property
    def simulated(self) -> str:
        return f"rknn-toolkit2 {self.session.toolkit} x86 simulator ({self.platform})"

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = np.ascontiguousarray(inputs[0], dtype=np.uint8)
        want = self.inputs[0].shape
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(want[1:]):
            raise EdgekitError(f"RKNN input must have shape (N, {', '.join(map(str, want[1:]))}), got {x.shape}")
        per_image = [self.session.run(np.ascontiguousarray(img[None])) for img in x]  # the model's batch is 1
        return per_image[0] if len(per_image) == 1 else [np.concatenate([r[k] for r in per_image])
                                                         for k in range(len(self.outputs))]

    def details(self) -> dict:
        return {"device": "simulator", "simulated": self.simulated, "latency": SIMULATED}

    def close(self) -> None:
        self.session.close()


def _key(path: Path) -> str:
    return str(Path(path).resolve())


def close_all() -> None:
    """End every child whose model was never opened (one simulator at a time; also at exit)."""
    while _LIVE:
        _LIVE.popitem()[1].close()


atexit.register(close_all)


def open_simulator(path: Path, imgsz=None, platform: str | None = None) -> RknnSimulator:
    """The simulator of the ``.rknn`` that :func:`onnx2rknn` just wrote at ``path`` (it takes over its child).

    Raises:
        EdgekitError: no child built ``path`` in this process (the simulator cannot load a ``.rknn`` file).
    """
    session = _LIVE.pop(_key(path), None)
    if session is None:
        raise EdgekitError(f"{path}: rknn-toolkit2's simulator runs only a model it has just built: "
                           "`edgekit export --target rknn-int8` verifies it while converting; run the .rknn on the "
                           "board (pip install \"edgekit[rknn]\" there)")
    return RknnSimulator(path, session, imgsz or session.imgsz, platform or session.platform)


def clip_outputs(onnx_path: Path, dst: Path, clip: float) -> int:
    """Write ``onnx_path`` with a ``Clip(-clip, clip)`` on each graph output to ``dst``; how many.

    Example:
        >>> clip_outputs(Path("fp32.onnx"), Path("clipped.onnx"), 9.2)  # doctest: +SKIP
        3
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    lo = numpy_helper.from_array(np.array(-clip, np.float32), "edgekit_clip_min")
    hi = numpy_helper.from_array(np.array(clip, np.float32), "edgekit_clip_max")
    graph.initializer.extend([lo, hi])
    for out in graph.output:
        raw = f"{out.name}_unclipped"
        for node in graph.node:  # the producer now writes the raw tensor; the Clip writes the output name
            node.output[:] = [raw if o == out.name else o for o in node.output]
            node.input[:] = [raw if i == out.name else i for i in node.input]
        graph.node.append(helper.make_node("Clip", [raw, lo.name, hi.name], [out.name], name=f"edgekit_clip_{out.name}"))
    onnx.save(model, str(dst))
    return len(graph.output)


def onnx2rknn(onnx_path: Path, out: Path, precision: str = "fp16", calib=None, imgsz=(320, 320),
              platform: str = DEFAULT_PLATFORM, output_clip: float | None = None, env=None,
              verbose: bool = False) -> dict:
    """Convert an fp32 ONNX to a ``.rknn`` (fp16, or INT8 calibrated on ``calib``) and start its simulator.

    Args:
        onnx_path: the fp32 ONNX (NCHW float [0, 1] input, static shape).
        out: the ``.rknn`` to write.
        precision: ``fp16`` or ``int8``.
        calib: a CalibrationReader (``int8`` needs one: real images).
        imgsz: (h, w) of the model input.
        platform: the Rockchip SoC (:data:`PLATFORMS`).
        output_clip: INT8 only: clip the outputs to +-this first (detectors' logits).
        env: the toolkit venv (default :func:`edgekit.export.rknn_env.env_dir`).
        verbose: the toolkit's debug log (more of it, in the same captured file).

    Returns:
        The converter info; the child stays up for :func:`open_simulator`.

    Raises:
        EdgekitError: the toolkit venv is missing, no calibration images, or the toolkit failed.

    Example:
        >>> onnx2rknn(Path("fp32.onnx"), Path("m.rknn"), imgsz=(64, 64))["precision"]  # doctest: +SKIP
        'fp16'
    """
    if precision not in PRECISIONS:
        raise EdgekitError(f"RKNN precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if platform not in PLATFORMS:
        raise EdgekitError(f"unknown RKNN platform {platform!r}: choose one of {', '.join(PLATFORMS)}")
    out = Path(out)
    if out.suffix != ".rknn":
        raise EdgekitError(f"{out}: an RKNN model is written as a .rknn file")
    if precision == "int8" and (calib is None or len(calib) == 0):
        raise EdgekitError("rknn-int8 needs calibration images: give --data DATA.yaml or --calib DIR")
    if not ready(env):
        raise EdgekitError(f"rknn-toolkit2 is not set up here (no venv in {env_dir(env)}): "
                           f"run `{SETUP_HINT}` once (it builds the toolkit's own venv from the package index)")
    close_all()  # one simulator at a time
    out.parent.mkdir(parents=True, exist_ok=True)
    h, w = (int(imgsz), int(imgsz)) if np.isscalar(imgsz) else (int(imgsz[0]), int(imgsz[1]))
    with tempfile.TemporaryDirectory(prefix="edgekit-rknn-in-") as tmp:
        tmp = Path(tmp)
        source, n_images, clipped = Path(onnx_path), 0, 0
        if output_clip is not None:
            source = tmp / "clipped.onnx"
            clipped = clip_outputs(onnx_path, source, output_clip)
        dataset = None
        if precision == "int8":
            from edgekit.export.mnn import write_calibration_images

            images = tmp / "calibration"
            images.mkdir()
            n_images, ch, cw = write_calibration_images(calib, images)
            if (ch, cw) != (h, w):
                raise EdgekitError(f"calibration images of {ch}x{cw}, the model takes {h}x{w}: calibrate at the export size")
            dataset = tmp / "dataset.txt"
            dataset.write_text("".join(f"{p}\n" for p in sorted(images.glob("*.png"))))
        job = {"onnx": str(source.resolve()), "out": str(out.resolve()), "platform": platform,
               "quantize": precision == "int8", "dataset": str(dataset) if dataset else None, "algorithm": ALGORITHM,
               "imgsz": [h, w], "mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0], "verbose": verbose}
        session = Session(job, env)
    session.imgsz, session.platform = (h, w), platform
    print(session.log(), file=sys.stderr)  # inside the exporter's capture: replayed with --verbose only
    _LIVE[_key(out)] = session
    info = {"converter": f"rknn-toolkit2 {session.toolkit}", "precision": precision, "platform": platform,
            "input_layout": "NHWC", "output_layout": "NCHW",
            "simulated": {"by": f"rknn-toolkit2 {session.toolkit} x86 simulator ({platform})", "latency_ms": SIMULATED},
            "notes": ["rknn-toolkit2 (own venv) load_onnx -> build -> export_rknn; uint8 NHWC RGB input "
                      "(mean 0 / std 255 inside the model), float32 NCHW outputs",
                      "verified in the toolkit's x86 simulator: accuracy as simulated, no speed"]}
    if precision == "int8":
        info["quantization"] = {"tool": f"rknn-toolkit2 {session.toolkit} build(do_quantization=True)", "images": n_images,
                                "dtype": "w8a8", "weights": "per-channel int8",
                                "activations": f"per-tensor int8, '{ALGORITHM}' (min/max) calibration",
                                "output_clip": output_clip if clipped else None}
        if clipped:  # parity compares what decodes: the reference is clipped the same way (export.verify)
            info["output_clip"] = output_clip
            info["notes"].append(f"a Clip(+-{output_clip}) on each of the {clipped} outputs before conversion "
                                 "(detector logits: the INT8 output ranges are clipped)")
    return info
