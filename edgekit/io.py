"""Atomic writes: an interrupted run never leaves a half-written file under its final name.

Everything edgekit writes (artifacts, manifests, reports, converted datasets) goes through
these helpers: the content is written to a temporary sibling, flushed, then renamed over
the final name in one ``os.replace``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

# Temporary names carry the writer's PID (".<name>.<pid>.<random>.tmp", ".staging-<pid>-<random>"): a later
# run removes those whose process is gone (a SIGKILL runs no cleanup), never a live run's.
_TEMP_PID = re.compile(r"^\.(?:staging-(\d+)-.+|.+\.(\d+)\.[^.]+\.tmp|.+\.old-(\d+))$")

# the fix of each OS error a write can meet; the message names the path
_WRITE_FIX = {
    errno.ENOSPC: "no space left on the device: free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded: free some space or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "permission denied: write to a folder you may write to",
    errno.EPERM: "operation not permitted: write to a folder you may write to",
    errno.ENOTDIR: "a file stands where a folder is needed: remove or rename that file, or write elsewhere",
    errno.EISDIR: "a folder stands where a file is needed: remove or rename that folder, or write elsewhere",
    errno.EEXIST: "something already exists there: remove it or write elsewhere",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
    errno.EMLINK: "too many links: write elsewhere",
    errno.EXDEV: "the temporary file and its destination are on different file systems: write elsewhere",
}
WRITE_ERRNOS = frozenset(_WRITE_FIX)
MAX_YAML_CHARS = 4 * 2**20  # data.yaml, model YAML, board profile: configurations, never data


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


def write_error_line(exc: OSError, path: str | os.PathLike | None = None) -> str:
    """One line for an OS error met while writing ``path``: what failed, where, and the fix.

    Example:
        >>> write_error_line(OSError(errno.ENOSPC, "No space left on device"), "out/model.onnx")
        'cannot write out/model.onnx: no space left on the device: free some space or write elsewhere'
    """
    where = path or exc.filename or "the output"  # the output the user named, not a temporary file inside it
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):  # mkdir through a file: name the file in the way
        blocker = next((p for p in [Path(where), *Path(where).parents] if p.exists() and not p.is_dir()), None)
        if blocker is not None and blocker != Path(where):
            return f"cannot write {where}: {blocker} is a file, not a folder: remove or rename it, or write elsewhere"
    fix = _WRITE_FIX.get(exc.errno) or f"{exc.strerror or exc}: check the path and the disk"
    return f"cannot write {where}: {fix}"


@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """Turn an OS error raised inside the block (a full disk, a read-only folder, a file where a folder
    should be) into one :class:`~edgekit.errors.EdgekitError` line naming the path and the fix.

    Every writer of edgekit (atomic files and folders, artifacts, reports, annotated images) runs in it.

    Example:
        >>> with writing("/dev/full"):  # doctest: +IGNORE_EXCEPTION_DETAIL
        ...     open("/dev/full", "wb").write(b"x" * 8192)
        Traceback (most recent call last):
        edgekit.errors.EdgekitError: cannot write /dev/full: no space left on the device: free some space or write elsewhere
    """
    from edgekit.errors import EdgekitError

    try:
        yield
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        raise EdgekitError(write_error_line(exc, path)) from None


def check_output_not_input(out: str | os.PathLike, inputs, option: str = "--out", contains_ok: bool = False,
                           inside_ok: bool = False) -> None:
    """Refuse an output that is, contains, or lies inside one of ``inputs``: writing there could destroy them.

    Paths are compared after resolving symlinks, so a link to the source counts as the source.
    Every command that writes a file or a folder from inputs calls it before any work.
    ``contains_ok``: the output is a folder the command only adds new, distinct names to (export's
    artifacts, a run's ``weights/``), so holding an input is fine; being one, or lying inside one, is not.
    ``inside_ok``: only being one is refused (the folders of single input files: a sub-folder is fine).

    Example:
        >>> check_output_not_input("/data/coco", ["/data/fish/data.yaml"])  # a sibling: fine
        >>> check_output_not_input("/data/fish", ["/data/fish/data.yaml"])  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        edgekit.errors.EdgekitError: --out /data/fish contains the input /data/fish/data.yaml: ...
    """
    from edgekit.errors import EdgekitError

    o = Path(os.path.realpath(out))
    for item in dict.fromkeys(str(i) for i in inputs if i is not None):
        p = Path(os.path.realpath(item))
        if o == p:
            how = "is"
        elif o in p.parents and not contains_ok:
            how = "contains"
        elif p in o.parents and not inside_ok:
            how = "lies inside"
        else:
            continue
        raise EdgekitError(f"{option} {out} {how} the input {item}: writing there could destroy it; "
                           f"give {option} a path outside the inputs")


def is_stale_temp(path: Path) -> bool:
    """Whether ``path`` is one of edgekit's temporary names whose writer process no longer runs.

    Example:
        >>> is_stale_temp(Path(f".staging-{os.getpid()}-abc")), is_stale_temp(Path("model.onnx"))
        (False, False)
    """
    m = _TEMP_PID.match(path.name)
    if not m:
        return False
    pid = int(next(g for g in m.groups() if g))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove what killed edgekit runs left in ``folder`` (staging folders, temporary files); returns them.

    A SIGKILL runs no cleanup, so every writer calls this on its output folder first.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); (d / ".staging-999999999-x").mkdir()
        >>> [p.name for p in remove_stale_temps(d)]
        ['.staging-999999999-x']
    """
    folder = Path(folder)
    removed = []
    try:
        entries = [p for p in folder.iterdir() if p.name.startswith(".")]
    except OSError:
        return removed
    for p in entries:
        if is_stale_temp(p):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()
            removed.append(p)
    return removed


def staging_dir(folder: str | os.PathLike) -> Path:
    """A new hidden ``.staging-<pid>-<random>`` folder in ``folder`` (stale ones removed first).

    Example:
        >>> import tempfile
        >>> staging_dir(tempfile.mkdtemp()).name.startswith(f".staging-{os.getpid()}-")
        True
    """
    folder = Path(folder)
    remove_stale_temps(folder)
    with writing(folder):
        return Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=folder))


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
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
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
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; the finished folder gets an ordinary mode
    try:
        with writing(path):
            yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with writing(path):
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

    if len(text) > MAX_YAML_CHARS:
        raise (error or EdgekitError)(f"{name} is {len(text) / 2**20:.1f} MB: a YAML configuration is at most "
                                      f"{MAX_YAML_CHARS // 2**20} MB; keep long lists (images, labels) in their own files")

    class NoAliasLoader(yaml.SafeLoader):
        """SafeLoader without anchors/aliases: nine lines of ``*a`` can expand to 10^9 items (a YAML bomb)."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not accepted", event.start_mark)
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} (column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None)
        why = f" ({problem})" if problem else ""
        raise (error or EdgekitError)(f"{name} is not valid YAML{where}{why}: fix the syntax") from None

