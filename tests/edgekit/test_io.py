"""Atomic writes leave nothing half-written."""

import os

import pytest

from edgekit.io import atomic_dir, atomic_write_text


def test_atomic_write_replaces_and_cleans(tmp_path):
    p = tmp_path / "a" / "m.json"
    atomic_write_text(p, "1")
    atomic_write_text(p, "2")
    assert p.read_text() == "2" and os.listdir(p.parent) == ["m.json"]


def test_atomic_dir_overwrite_only_on_success(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as t:
        (t / "old").write_text("x")
    with pytest.raises(RuntimeError):
        with atomic_dir(out, overwrite=True) as t:
            (t / "new").write_text("y")
            raise RuntimeError("interrupted")
    assert [p.name for p in out.iterdir()] == ["old"] and len(list(tmp_path.iterdir())) == 1
    with atomic_dir(out, overwrite=True) as t:
        (t / "new").write_text("y")
    assert [p.name for p in out.iterdir()] == ["new"] and len(list(tmp_path.iterdir())) == 1


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    """mkstemp/mkdtemp create 0600/0700; finished files and folders must be readable like any other output."""
    import os

    from edgekit.io import atomic_dir, atomic_write_text

    mask = os.umask(0o022)
    try:
        f = atomic_write_text(tmp_path / "report.json", "{}")
        with atomic_dir(tmp_path / "ds") as d:
            (d / "a.txt").write_text("x")
    finally:
        os.umask(mask)
    assert f.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "ds").stat().st_mode & 0o777 == 0o755
