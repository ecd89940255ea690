"""The device side stays lean: running a .tflite or .onnx imports no torch, TensorFlow, onnx or nncf.

Two proofs: (1) in a subprocess with those packages blocked by an import hook, every runtime
and boards module imports, and ``load(...).predict(...)`` runs on a real exported artifact
for each installed board backend and each file kind it reads (backends, their interpreters and
the targets come from the registries); (2) (slow) a fresh venv with only ``pip install ".[tflite]"``
(no torch anywhere) loads and runs the exported .tflite.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROBE = HERE / "lean_probe.py"


def _board_backends():
    """The device-side backends of the registry (not the host's torch reference)."""
    from edgekit.runtime.backends import list_backends

    return [b for b in list_backends() if not b.host_only]


def _interpreters() -> tuple[str, ...]:
    """Import names of every board backend's interpreter packages, from the registry."""
    return tuple(dict.fromkeys(m for b in _board_backends() for m, _ in b.packages))


def _probe_cases() -> list[tuple[str, str]]:
    """One (target, backend) per file kind each board backend reads (its own and, for OpenVINO, .onnx).

    The target is the INT8 one of that kind where there is one (what a board runs), else the first.
    """
    from edgekit.export.targets import TARGETS

    cases = []
    for b in _board_backends():
        for suffix in dict.fromkeys(b.suffixes + b.also_reads):
            kind = [t for t in TARGETS.values() if t.suffix == suffix]
            if kind:
                cases.append((next((t for t in kind if t.quantized), kind[0]).name, b.name))
    return cases


# what the device side may not import at module level: numpy only (OpenCV and the interpreters lazily)
NOT_AT_IMPORT = ("torch", "tensorflow", "onnx", "nncf", "cv2", "PIL", "yaml") + _interpreters()


def _probe(artifact, image, backend=None):
    cmd = [sys.executable, str(PROBE), str(artifact), str(image)] + ([backend] if backend else [])
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_device_modules_import_numpy_only():
    import edgekit.boards
    import edgekit.runtime

    names = [f"edgekit.runtime.{m.name}" for m in pkgutil.iter_modules(edgekit.runtime.__path__)]
    names += [f"edgekit.boards.{m.name}" for m in pkgutil.iter_modules(edgekit.boards.__path__)]
    code = ("import sys, importlib\n"
            f"for m in {NOT_AT_IMPORT!r}: sys.modules[m] = None\n"
            f"for n in {names!r}: importlib.import_module(n)\n"
            "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_the_probe_covers_every_board_backend():
    cases = _probe_cases()
    assert {b for _, b in cases} == {b.name for b in _board_backends()} and len(cases) >= 5, cases
    assert {"ai_edge_litert", "onnxruntime", "openvino", "ncnn"} <= set(NOT_AT_IMPORT)


@pytest.mark.parametrize("target,backend", _probe_cases())
def test_running_an_artifact_imports_no_host_package(fast_exports, sample_image, target, backend):
    from edgekit.runtime.backends import available_backends, get_backend

    if not available_backends()[backend]:
        pytest.skip(f"{backend} is not installed")
    if target not in fast_exports:
        pytest.skip(f"{target}: converter not installed")
    out = _probe(fast_exports[target], sample_image, backend)
    assert out["backend"] == backend and out["task"] == "detect"
    # [] for every backend but ExecuTorch, whose bindings link libtorch: exactly what it declares, nothing more
    assert out["heavy"] == sorted(get_backend(backend).host_imports)


@pytest.mark.slow
def test_fresh_tflite_only_venv_runs_the_artifact(fast_exports, sample_image, tmp_path):
    """A real board-like install: a new venv with ``pip install ".[tflite]"``; torch must not even be there."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-c",
                          str(ROOT / "constraints.txt"), f"{ROOT}[tflite]"], capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    res = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in ('torch', 'tensorflow', 'onnx', "
                          "'nncf') if u.find_spec(m)])"], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "[]", res.stdout
    res = subprocess.run([str(py), str(PROBE), str(fast_exports["tflite-int8"]), str(sample_image)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["backend"] == "litert" and out["heavy"] == []


def test_import_blocker_refuses_then_lets_go():
    from edgekit.runtime.lean import block_imports, loaded

    sys.modules.pop("wave", None)  # a stdlib module nothing here imports
    blocker = block_imports(["wave"])
    try:
        with pytest.raises(ImportError, match="lean runtime must not import wave"):
            import wave  # noqa: F401
        assert loaded(["wave", "json"]) == ["json"]
    finally:
        blocker.remove()
    import wave  # noqa: F401, F811

    assert loaded(["wave"]) == ["wave"]
