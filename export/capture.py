"""Keep converter noise off the terminal: capture everything a step prints, show it only when asked.

The converters edgekit drives print a lot that is not edgekit's result: Python warnings
(FutureWarning, JAX's fork warning), ``logging``/absl lines, rich and tqdm progress bars
(NNCF's "Statistics collection" bars go to *stdout*, which breaks ``--json``), and C/C++
prints from TensorFlow Lite, OpenVINO, pnnx and ncnn that bypass ``sys.stdout`` entirely.
:func:`captured` catches all of them by pointing the process's file descriptors 1 and 2 at
a temporary file for the duration of one step (``os.dup2``), with ``sys.stdout``/
``sys.stderr`` and Python warnings routed to the same file.

What was captured is replayed on stderr when ``verbose`` is true, and otherwise kept for
the error when the step fails (:attr:`Captured.text`, :func:`tail`); it never reaches stdout.

Descriptors are process-wide: a nested :func:`captured` adds to the outer capture instead
of redirecting again, and edgekit's own progress lines belong outside the block.

Example:
    >>> with captured("demo") as cap:  # doctest: +SKIP
    ...     print("noise")
    >>> cap.text  # doctest: +SKIP
    'noise\\n'
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import sys
import tempfile
import threading
import warnings

_lock = threading.RLock()
_depth = 0  # > 0 while a capture is active in this process

# JAX (imported by litert-torch) warns on every os.fork(); NNCF's and OpenVINO's worker pools fork
# from their own threads, sometimes after the step that started them has ended, so the warning
# escaped the capture at random (seen in the quiet-stderr test). The children never run JAX.
warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)

TAIL_LINES = 8
TAIL_CHARS = 600


class Captured:
    """What one :func:`captured` block printed (filled in when the block ends)."""

    def __init__(self, label: str):
        self.label = label
        self.text = ""
        self.nested = False

    def tail(self, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
        """The last lines of the captured text on one line (``" | "`` between lines), for error messages."""
        return tail(self.text, lines, chars)


def tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last ``lines`` non-blank lines of ``text`` joined with ``" | "``, at most ``chars`` characters.

    Progress-bar redraws (carriage returns) keep only their last state.

    Example:
        >>> tail("a\\n\\nb\\rc\\nd\\n", lines=2)
        'c | d'
    """
    rows = [ln.rsplit("\r", 1)[-1].strip() for ln in text.splitlines()]
    out = " | ".join([r for r in rows if r][-lines:])
    return out if len(out) <= chars else "..." + out[-(chars - 3):]


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers (printf, std::cout) so nothing written inside the block leaks out after it."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


def _flush_python() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


def _fd_ok(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def captured(label: str = "", verbose: bool = False, stream=None):
    """Capture warnings, logging and file descriptors 1 and 2 for one step.

    Args:
        label: names the step in the verbose replay (``--- tflite-int8 conversion output ---``).
        verbose: replay the captured text on ``stream`` (default: the real stderr) when the block ends.
        stream: where the verbose replay goes (default ``sys.stderr`` as it is after the block).

    Yields:
        A :class:`Captured`; its ``text`` is complete once the block has exited (also when it raised).
        An exception raised inside gets the captured text as ``exc.captured_output``.

    Example:
        >>> with captured("x") as cap:
        ...     print("hello from a converter")
        >>> cap.text.strip()
        'hello from a converter'
    """
    global _depth
    cap = Captured(label)
    with _lock:
        cap.nested = _depth > 0  # already redirected: the outer block collects this output
        _depth += 1
    if cap.nested:
        try:
            yield cap
        finally:
            with _lock:
                _depth -= 1
        return
    try:
        yield from _capture(cap, verbose, stream)
    finally:
        with _lock:
            _depth -= 1


class _Sink(io.TextIOBase):
    """A text stream into the capture file while the block runs, and into ``fallback`` after it.

    Libraries keep the stream objects they see (a logging handler made inside the block holds
    ``sys.stderr``): once the block has ended those writes go where they would have gone
    without the capture, instead of failing on a closed file.
    """

    def __init__(self, fd: int, fallback):
        super().__init__()
        self._fd, self._fallback = fd, fallback

    def release(self) -> None:
        self._fd = None

    def write(self, text: str) -> int:
        if self._fd is None:
            return self._fallback.write(text) if self._fallback is not None else len(text)
        os.write(self._fd, text.encode("utf-8", errors="replace"))
        return len(text)

    def flush(self) -> None:
        if self._fd is None and self._fallback is not None:
            self._fallback.flush()

    def fileno(self) -> int:
        if self._fd is None and self._fallback is not None:
            return self._fallback.fileno()
        if self._fd is None:
            raise io.UnsupportedOperation("fileno")
        return self._fd

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` inside a capture: the usual text, into the captured stderr."""
    with contextlib.suppress(Exception):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _on_fd(stream, fd: int) -> bool:
    """Whether ``stream`` writes to file descriptor ``fd`` (then the descriptor redirect catches it)."""
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


def _capture(cap: Captured, verbose: bool, stream):
    fds = [fd for fd in (1, 2) if _fd_ok(fd)]
    _flush_python()
    _flush_c_stdio()
    saved = {fd: os.dup(fd) for fd in fds}
    sink = tempfile.TemporaryFile(mode="w+b")
    old_streams = sys.stdout, sys.stderr
    # streams on descriptors 1/2 are caught by the redirect (after a flush); replaced ones (pytest's
    # capture, an IDE's console) are swapped for the capture file for the block's length
    sinks = [None if _on_fd(s, fd) else _Sink(sink.fileno(), s) for s, fd in zip(old_streams, (1, 2))]
    std = [x for x in (*old_streams, sys.__stdout__, sys.__stderr__) if x is not None]
    handlers = [(h, h.stream) for h in _stream_handlers()
                if any(h.stream is x for x in std) and not _on_fd(h.stream, 1) and not _on_fd(h.stream, 2)]
    handler_sink = _Sink(sink.fileno(), None)
    failed = None
    try:
        for fd in fds:
            os.dup2(sink.fileno(), fd)
        sys.stdout, sys.stderr = (new or old for new, old in zip(sinks, old_streams))
        for h, _ in handlers:  # handlers made before the block hold the old stream objects
            with contextlib.suppress(AttributeError):
                h.stream = handler_sink
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # shown (into the capture) rather than silenced or raised
            warnings.showwarning = _show_warning  # also where a caller records them (pytest, an outer catch)
            try:
                yield cap
            except BaseException as exc:
                failed = exc
                raise
    finally:
        _flush_python()  # buffered Python writes belong to the block: out before the descriptors go back
        _flush_c_stdio()
        sys.stdout, sys.stderr = old_streams
        for h, s in handlers:
            with contextlib.suppress(AttributeError):
                h.stream = s
        for fd, dup in saved.items():
            os.dup2(dup, fd)
            os.close(dup)
        for sk in [*sinks, handler_sink]:
            if sk is not None:
                sk.release()
        sink.seek(0)
        cap.text = sink.read().decode("utf-8", errors="replace")
        sink.close()
        if failed is not None:
            with contextlib.suppress(Exception):
                failed.captured_output = cap.text
        if verbose and cap.text.strip():
            out = stream or sys.stderr
            head = f"--- {cap.label} output ---" if cap.label else "--- captured output ---"
            out.write(f"{head}\n{cap.text.rstrip()}\n--- end ---\n")
            out.flush()


def _stream_handlers() -> list[logging.StreamHandler]:
    """Every logging StreamHandler that is not a file handler (root's, absl's, libraries')."""
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    out, seen = [], set()
    for lg in loggers:
        for h in lg.handlers:
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) and id(h) not in seen:
                seen.add(id(h))
                out.append(h)
    return out


@contextlib.contextmanager
def step(label: str, verbose: bool = False):
    """:func:`captured` for one edgekit step: an :class:`EdgekitError` raised inside ends with the step's output.

    Without ``verbose`` the output is otherwise never shown, so the error carries its last lines
    (one line, trimmed: the CLI's errors stay one line). Other exceptions get the full text as
    ``exc.captured_output`` (see :func:`captured`).

    Example:
        >>> from edgekit.errors import EdgekitError
        >>> try:
        ...     with step("convert"):
        ...         print("converter: op Foo unsupported")
        ...         raise EdgekitError("conversion failed")
        ... except EdgekitError as exc:
        ...     print(exc)
        conversion failed [convert output: converter: op Foo unsupported]
    """
    from edgekit.errors import EdgekitError

    cap = None
    try:
        with captured(label, verbose) as cap:
            yield cap
    except EdgekitError as exc:
        if cap is not None and not verbose and not cap.nested and cap.text.strip():
            exc.args = (f"{exc} [{label} output: {cap.tail()}]",)
        raise
