"""The RKNN backend (rknn-toolkit-lite2 on a Rockchip NPU board) as far as an x86 host allows.

rknn-toolkit-lite2 has aarch64 wheels only and needs the board's NPU runtime (librknnrt.so) and driver,
so here the backend is registered, lean (numpy only at import: ``test_lean_runtime`` covers every
device module) and refuses to open a ``.rknn`` with one line naming the package, the NPU runtime and
what the host can do instead (the export's simulator, which is not a speed). A real ``.rknn`` through
``edgekit.runtime.load`` and the CLI is in ``tests/export/test_rknn.py``.
"""

from __future__ import annotations

import platform

import pytest

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import artifact_suffixes, backend_for, get_backend, open_backend


def test_registered_for_rknn_files():
    b = get_backend("rknn")
    assert backend_for("m.rknn") is b and ".rknn" in artifact_suffixes()
    assert b.extra == "rknn" and b.packages == (("rknnlite", "rknn-toolkit-lite2"),) and not b.host_only
    assert 'edgekit[rknn]' in b.install_hint() and "librknnrt.so" in b.install_hint()


@pytest.mark.skipif(platform.machine() == "aarch64", reason="an aarch64 host may have rknn-toolkit-lite2")
def test_opening_an_rknn_here_is_one_line_naming_the_package_and_the_npu_runtime(tmp_path):
    art = tmp_path / "m.rknn"
    art.write_bytes(b"RKNN")  # never read: the interpreter is missing before the file matters
    assert not get_backend("rknn").is_available()
    with pytest.raises(EdgekitError) as err:
        open_backend(art)
    msg = str(err.value)
    assert msg.startswith("backend 'rknn' is not installed: pip install \"edgekit[rknn]\" on the Rockchip board")
    assert "\n" not in msg and "rknn-toolkit-lite2" in msg and "/usr/lib/librknnrt.so" in msg and "not a speed" in msg
