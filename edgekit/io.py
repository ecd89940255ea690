"""Atomic writes: an interrupted run never leaves a half-written file under its final name.

Everything edgekit writes (artifacts, manifests, reports, converted datasets) goes through
these helpers: the content is written to a temporary sibling, flushed, then renamed over
the final name in one ``os.replace``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def read_json(path: str | os.PathLike, error: type[Exception] | None = None):
    """``json.load`` a file; every failure is one ``error`` (default EdgekitError) naming the file and the fix.

    Example:
        >>> read_json("missing.json")
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: missing.json does not exist: check the path
    """
    import json

    from edgekit.errors import EdgekitError

    error = error or EdgekitError
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise error(f"{path} does not exist: check the path") from None
    except IsADirectoryError:
        raise error(f"{path} is a directory: give the .json file") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): "
                    "the file may be truncated; write it again") from None
    except UnicodeDecodeError:
        raise error(f"{path} is not UTF-8 text: give a .json file") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> atomic_write_bytes(p, b"hi").read_bytes()
        b'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; give it the mode an ordinary open() would (0666 less the umask)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.json"
        >>> atomic_write_text(p, "{}").read_text()
        '{}'
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False):
    """Build a directory under a temporary name and move it to ``path`` only on success.

    Yields the temporary directory to fill. If the block raises, the temporary directory is
    removed and ``path`` is untouched. An existing non-empty ``path`` is an error unless
    ``overwrite`` is true, in which case it is replaced only after the new one is complete.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "ds"
        >>> with atomic_dir(out) as tmp:
        ...     _ = (tmp / "x.txt").write_text("1")
        >>> sorted(p.name for p in out.iterdir())
        ['x.txt']
    """
    from edgekit.errors import EdgekitError

    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise EdgekitError(f"{path} already exists and is not empty: choose another --out or pass --overwrite")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; the finished folder gets an ordinary mode
    except OSError as exc:
        raise EdgekitError(f"cannot write to {path.parent}: {exc.strerror}; choose a writable --out") from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def parse_yaml(text: str, name: str, error: type[Exception] | None = None):
    """``yaml.safe_load`` with the one-line error every edgekit YAML reader gives (line, column, problem).

    Example:
        >>> parse_yaml("a: 1", "x.yaml")
        {'a': 1}
        >>> parse_yaml("a: [1", "x.yaml")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        edgekit.errors.EdgekitError: x.yaml is not valid YAML at line 1 (column 6) (...): fix the syntax
    """
    import yaml  # lazily: the device side imports only numpy at module level

    from edgekit.errors import EdgekitError

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} (column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None)
        why = f" ({problem})" if problem else ""
        raise (error or EdgekitError)(f"{name} is not valid YAML{where}{why}: fix the syntax") from None

