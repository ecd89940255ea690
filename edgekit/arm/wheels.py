"""The board install, made by the host's pip: edgekit's wheel plus one lean extra, for aarch64.

Each runtime extra gets its own folder (``site/onnx``, ``site/tflite``...), filled exactly as
``pip install "edgekit[onnx]"`` fills a Raspberry Pi: the wheel built from this checkout and
the aarch64 wheels of its dependencies, nothing else. So what runs under emulation is what a
board runs, and the folder's size is the install's size.

pip matches ``--platform`` tags literally: without every ``manylinux_2_N_aarch64`` up to the
sysroot's glibc it silently picks older releases (ai-edge-litert 1.4 instead of 2.x).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edgekit.errors import EdgekitError

EXTRAS = ("onnx", "tflite", "openvino", "ncnn", "rknn")  # rknn: rknn-toolkit-lite2 imports, no NPU runtime exists here
GLIBC_MINOR = 36  # Debian 12's glibc 2.36, the sysroot's
PYTHON_VERSION = "3.11"
# the source folders whose files make the wheel (pyproject's package-dir)
SOURCE_DIRS = ("edgekit", "export", "runtime", "boards")
DEVICE_DIRS = ("runtime", "boards")  # what a board imports (besides edgekit's leaves)


def platform_args(glibc_minor: int = GLIBC_MINOR) -> list[str]:
    """pip's target options for a CPython 3.11 aarch64 Linux with glibc 2.``glibc_minor``.

    Example:
        >>> "manylinux_2_27_aarch64" in platform_args()
        True
    """
    tags = ["manylinux2014_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(17, glibc_minor + 1)]
    args = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
            "--abi", "cp311", "--abi", "abi3", "--abi", "none"]
    for t in tags:
        args += ["--platform", t]
    return args


def checkout() -> Path:
    """The source checkout this edgekit runs from (the wheel is built from it)."""
    import edgekit

    root = Path(edgekit.__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file() or not (root / "runtime").is_dir():
        raise EdgekitError(f"edgekit runs from {root}, not from a source checkout: the aarch64 install is built "
                           "from the checkout's wheel; run from a clone (pip install -e .)")
    return root


def source_fingerprint(root: Path | None = None) -> str:
    """A hash of what the board install runs: the device side (``runtime/``, ``boards/``), the leaves
    it imports, the guest module and ``pyproject.toml`` (dependencies). When it changes, the
    installed wheel is rebuilt; host-only modules in the wheel are never imported on the board.

    Example:
        >>> len(source_fingerprint())
        16
    """
    root = root or checkout()
    files = [root / "pyproject.toml", root / "edgekit" / "__init__.py", root / "edgekit" / "errors.py",
             root / "edgekit" / "io.py", root / "edgekit" / "arm" / "guest.py"]
    for d in DEVICE_DIRS:
        files += sorted(p for p in (root / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes() if p.is_file() else b"")
    return h.hexdigest()[:16]


def build_wheel(out: Path) -> Path:
    """``pip wheel`` of the checkout (no dependencies, no build isolation: nothing is downloaded).

    Built from a copy of the sources: the checkout's own ``build/`` folder may be in use by
    another build at the same time, and setuptools would mix the two.
    """
    root = checkout()
    src = out / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in SOURCE_DIRS:
        shutil.copytree(root / d, src / d, ignore=ignore)
    for f in ("pyproject.toml", "README.md", "LICENSE"):
        if (root / f).is_file():
            shutil.copy2(root / f, src / f)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "-w", str(out), str(src)],
                       capture_output=True, text=True)
    wheels = sorted(out.glob("edgekit-*.whl"))
    if r.returncode != 0 or not wheels:
        raise EdgekitError(f"building edgekit's wheel failed ({(r.stderr.strip().splitlines() or ['?'])[-1][:200]})")
    return wheels[-1]


def host_pins(extra: str) -> list[str]:
    """``dist==version`` of numpy and the extra's runtime as installed on this host, so both sides run one release."""
    from edgekit.runtime.backends import list_backends

    dists = ["numpy", "opencv-python-headless"] + [d for b in list_backends(builtin_only=True) if b.extra == extra for _, d in b.packages]
    pins = []
    for d in dists:
        try:
            pins.append(f"{d}=={md.version(d)}")
        except md.PackageNotFoundError:
            pass
    return pins


def _pip(args: list[str], what: str) -> None:
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-warn-script-location", *args], capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        why = next((ln for ln in lines if "ERROR" in ln), lines[-1] if lines else "no output")
        raise EdgekitError(f"pip could not install {what} for aarch64 ({why.strip()[:240]})")


def aarch64_only(extra: str, root: Path | None = None) -> list[str]:
    """Requirements of ``edgekit[extra]`` guarded by ``platform_machine == 'aarch64'`` (rknn-toolkit-lite2).

    pip evaluates environment markers on the host even with ``--platform``, so an aarch64 install
    made on x86 would leave them out: :func:`install_extra` names them itself (read from the
    checkout's pyproject.toml, which the wheel is built from).

    Example:
        >>> aarch64_only("rknn")
        ['rknn-toolkit-lite2>=2.3']
    """
    import tomllib

    reqs = tomllib.loads(((root or checkout()) / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    out = []
    for req in reqs.get(extra, []):
        spec, _, marker = req.partition(";")
        if marker.replace('"', "'").split() == ["platform_machine", "==", "'aarch64'"]:
            out.append(spec.strip())
    return out


def install_extra(site: Path, extra: str, log) -> Path:
    """Install ``edgekit[extra]`` for aarch64 into ``site`` (replaced only when complete).

    Example:
        >>> install_extra(Path("~/.cache/edgekit/arm/site/onnx"), "onnx", print)  # doctest: +SKIP
    """
    with tempfile.TemporaryDirectory(prefix="edgekit-wheel-") as wdir:
        wheel = build_wheel(Path(wdir))
        pins = host_pins(extra)
        pin_file = Path(wdir) / "pins.txt"
        pin_file.write_text("\n".join(pins) + "\n")
        tmp = site.with_name(site.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"aarch64 wheels: edgekit[{extra}] ({', '.join(pins)})")
        _pip(["--target", str(tmp), *platform_args(), "-c", str(pin_file), f"{wheel}[{extra}]", *aarch64_only(extra)],
             f"edgekit[{extra}]")
    (tmp / ".edgekit-source").write_text(source_fingerprint())
    shutil.rmtree(site, ignore_errors=True)
    os.replace(tmp, site)
    return site


def refresh_edgekit(site: Path, log) -> bool:
    """Reinstall only edgekit's own wheel into ``site`` when the checkout changed (local, no download).

    Returns True when it reinstalled.
    """
    stamp = site / ".edgekit-source"
    now = source_fingerprint()
    if stamp.is_file() and stamp.read_text().strip() == now:
        return False
    log(f"aarch64 install {site.name}: the checkout changed, reinstalling edgekit's wheel")
    with tempfile.TemporaryDirectory(prefix="edgekit-wheel-") as wdir:
        wheel = build_wheel(Path(wdir))
        for old in list(site.glob("edgekit")) + list(site.glob("edgekit-*.dist-info")):
            shutil.rmtree(old)
        _pip(["--target", str(site), "--no-deps", "--no-index", "--upgrade", *platform_args(), str(wheel)],
             "edgekit's wheel")
    stamp.write_text(now)
    return True


def installed_size(site: Path) -> int:
    """Bytes on disk of an install folder (the board install's size), bytecode caches excluded."""
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def site_versions(site: Path) -> dict:
    """``{distribution: version}`` of what pip installed into ``site``."""
    return {d.metadata["Name"]: d.version for d in md.distributions(path=[str(site)])}
