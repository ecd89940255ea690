"""Shared fixtures: paths to the embedded sample and to ../shared (skipped when absent)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# One OpenMP thread per test process (set before torch is imported; an explicit setting wins): on a
# shared 2-core host torch's default intra-op threads spin against the other processes. Measured
# under load: the 9 backward passes of test_models_train_backward took 45 s with the default, 6 s
# with 1. Code that asks for threads (load(threads=), bench --threads, train --threads) still gets them.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared: real datasets and third-party models; tests needing it skip without it."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (real datasets and third-party models live there)")
    return SHARED


@pytest.fixture(scope="session")
def sample_yaml() -> Path:
    from edgekit.data import sample_data_yaml

    return sample_data_yaml()


@pytest.fixture()
def sample_copy(tmp_path, sample_yaml) -> Path:
    """A writable copy of the embedded sample (for tests that damage it)."""
    dst = tmp_path / "fish"
    shutil.copytree(sample_yaml.parent, dst)
    return dst / "data.yaml"


@pytest.fixture(scope="session")
def bccd_yaml(shared_dir, tmp_path_factory) -> Path:
    """A data.yaml pointing at ../shared/data/bccd in VOC format."""
    p = tmp_path_factory.mktemp("bccd") / "data.yaml"
    p.write_text(
        f"format: voc\npath: {shared_dir / 'data' / 'bccd'}\n"
        "train: ImageSets/Main/train.txt\nval: ImageSets/Main/val.txt\ntest: ImageSets/Main/test.txt\n"
        "names: [RBC, WBC, Platelets]\n"
    )
    return p


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory, sample_yaml) -> Path:
    """A yolo-lite checkpoint at 64 px with the sample's classes (random, realistically scaled weights)."""
    from edgekit.data import load_dataset
    from tests.export.export_helpers import TINY_IMGSZ, TINY_MODEL, make_checkpoint

    names = load_dataset(sample_yaml).names  # commands given --data check the model's classes are the data's
    return make_checkpoint(tmp_path_factory.mktemp("tiny-detector") / f"{TINY_MODEL}.pt", TINY_MODEL, TINY_IMGSZ,
                           names=names)


def _rknn_setup():
    """Build (or find) the rknn-toolkit2 venv (``edgekit rknn setup``, cached in ~/.cache/edgekit/rknn);
    the error when it cannot be built, else None."""
    import sys

    from edgekit.errors import EdgekitError
    from edgekit.export.rknn_env import setup

    try:
        setup(log=lambda m: print(f"rknn setup: {m}", file=sys.stderr))
    except EdgekitError as exc:
        return exc
    return None


@pytest.fixture(scope="session")
def rknn_toolkit() -> dict:
    """The rknn-toolkit2 venv's record, built once per machine; a machine where it cannot be built FAILS
    the tests that need it, with the reason (a converter check that silently skips proves nothing)."""
    from edgekit.export.rknn_env import read_state

    error = _rknn_setup()
    if error is not None:
        pytest.fail(f"the rknn-toolkit2 venv could not be built: {error}", pytrace=False)
    return read_state()


@pytest.fixture(scope="session")
def fast_exports(tiny_detector, tmp_path_factory, sample_yaml) -> dict:
    """``{target: artifact path}`` of :func:`tiny_detector` for every installed target, parity-verified by export.

    The fast tier's one set of artifacts (runtime, CLI, bench, export round trips): no mAP gate,
    random weights have no accuracy to keep (tests/runtime/conftest.py says more). The rknn targets'
    venv is built first, so they are always among them where it can be built (tests/export/test_rknn.py
    fails, naming why, where it cannot).
    """
    from tests.export.export_helpers import TINY_CALIB, export_all

    _rknn_setup()  # a file read once built (~2 min the first time on a machine: tests/export/test_rknn.py)
    return export_all(tiny_detector, tmp_path_factory.mktemp("exports-tiny"),
                      calib=sample_yaml.parent / "train" / "images", calib_images=TINY_CALIB)


@pytest.fixture(scope="session")
def tiny_onnx_tflite(tiny_detector, tmp_path_factory, sample_yaml) -> dict:
    """``{"onnx", "tflite-int8"}`` of :func:`tiny_detector` only (estimate and remote-bench tests: one
    fast export, not coupled to every other target's parity)."""
    from edgekit.export import export
    from tests.export.export_helpers import TINY_CALIB

    out = tmp_path_factory.mktemp("exports-onnx-tflite")
    rep = export(tiny_detector, ["onnx", "tflite-int8"], out=out, calib=sample_yaml.parent / "train" / "images",
                 calib_images=TINY_CALIB)
    failed = {r.target: r.reason for r in rep.results if not r.ok}
    assert not failed, failed
    return {r.target: out / r.file for r in rep.results}


def restore_sigint() -> None:
    """``preexec_fn`` for a child that must see Ctrl-C: a shell's background job (``cmd &``, as CI may
    start ``make test``) ignores SIGINT, its children inherit that, and Python then installs no
    KeyboardInterrupt handler; reset it so the child handles SIGINT as at a terminal."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
