"""One host: connect (host key checked), copy the artifacts, run ``edgekit bench --json`` there, read it back."""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.remote.hosts import HostSpec
from edgekit.remote.known_hosts import changed_key_error, has_entry, not_known_error, record_key

# artifact suffix -> the extra a board installs for it (the error when edgekit is missing names it)
SUFFIX_EXTRA = {".tflite": "tflite", ".onnx": "onnx", ".xml": "openvino", ".param": "ncnn"}


@dataclass(frozen=True)
class RemoteOptions:
    """How to reach the boards and what to run there.

    ``edgekit``: the command on the board (a venv's ``~/venv/bin/edgekit`` when it is not on PATH).
    """

    known_hosts: Path
    identity: str | None = None
    accept_new: bool = False
    edgekit: str = "edgekit"
    connect_timeout: float = 20.0
    bench_args: tuple[str, ...] = field(default_factory=tuple)


def artifact_files(path: Path) -> list[Path]:
    """The artifact, its sidecar manifest, and the files it needs beside it (``.bin`` weights, the manifest's ``files``).

    Example:
        >>> [p.name for p in artifact_files(Path("m-openvino.xml"))]  # doctest: +SKIP
        ['m-openvino.xml', 'm-openvino.xml.json', 'm-openvino.bin']
    """
    from edgekit.runtime.backends import list_backends
    from edgekit.runtime.runner import find_manifest, manifest_path

    files = [path]
    if manifest_path(path).is_file():
        files.append(manifest_path(path))
    man = find_manifest(path) or {}
    files += [path.parent / f for f in man.get("files") or []]
    for backend in list_backends(builtin_only=True):
        if path.suffix.lower() in backend.suffixes:
            files += [path.with_suffix(c) for c in backend.companions]
    return list(dict.fromkeys(f for f in files if f.is_file()))


def install_hint(artifacts: list[Path]) -> str:
    """``pip install 'edgekit[tflite]'`` with the extras the artifacts need.

    Example:
        >>> install_hint([Path("a.tflite"), Path("b.onnx")])
        "pip install 'edgekit[tflite,onnx]'"
    """
    extras = list(dict.fromkeys(SUFFIX_EXTRA[a.suffix.lower()] for a in artifacts if a.suffix.lower() in SUFFIX_EXTRA))
    return f"pip install 'edgekit[{','.join(extras or ['tflite'])}]'"


async def connect(spec: HostSpec, opts: RemoteOptions):
    """An asyncssh connection with the host-key policy of :mod:`edgekit.remote.known_hosts`."""
    import asyncssh

    known = has_entry(opts.known_hosts, spec)
    if not known and not opts.accept_new:
        raise not_known_error(spec, opts.known_hosts)
    keys = {}
    if opts.identity:
        if not Path(opts.identity).expanduser().is_file():
            raise EdgekitError(f"--identity {opts.identity} does not exist: give the private key file for the board")
        keys["client_keys"] = [str(Path(opts.identity).expanduser())]
    try:
        conn = await asyncssh.connect(spec.host, port=spec.port, username=spec.user,
                                      known_hosts=str(opts.known_hosts) if known else None,
                                      connect_timeout=opts.connect_timeout, keepalive_interval=5, keepalive_count_max=3,
                                      config=[], **keys)
    except asyncssh.HostKeyNotVerifiable:
        raise changed_key_error(spec, opts.known_hosts) from None
    except asyncssh.PermissionDenied:
        raise EdgekitError(f"{spec}: login refused (public key not accepted): give --identity KEY, or add your key "
                           f"to the board (ssh-copy-id {spec})") from None
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise EdgekitError(f"{spec}: cannot connect ({_reason(exc)}): is the board on and sshd running?") from None
    if not known:
        record_key(opts.known_hosts, spec, conn.get_server_host_key())
    return conn


async def _run(conn, spec: HostSpec, command: str):
    """``conn.run`` that turns a session ended without an exit status (the link went down) into an error."""
    res = await conn.run(command, check=False)
    if res.exit_status is None or res.exit_status < 0:
        signal = f"killed by signal {res.exit_signal[0]}" if res.exit_signal else "no exit status"
        raise EdgekitError(f"{spec}: the connection dropped during the run ({signal}): results of this host are lost")
    return res


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]


async def bench_host(spec: HostSpec, artifacts: list[Path], opts: RemoteOptions) -> dict:
    """Run ``edgekit bench --json`` for ``artifacts`` on one host; its report, with ``remote`` added.

    Raises:
        EdgekitError: one line naming the host and what failed (host key, login, edgekit missing with
            the install line, the bench's own error, the connection dropping mid-run).
    """
    import asyncssh

    t0 = time.perf_counter()
    conn = await connect(spec, opts)
    tmp = None
    try:
        edgekit = shlex.quote(opts.edgekit)
        probe = await _run(conn, spec, f"command -v {edgekit} >/dev/null && {edgekit} --version")
        if probe.exit_status != 0:
            raise EdgekitError(f"{spec}: edgekit is not installed there (no '{opts.edgekit}' on its PATH): install it "
                               f"on the board with {install_hint(artifacts)} (or give --remote-edgekit PATH)")
        version = str(probe.stdout).strip()
        made = await _run(conn, spec, "mktemp -d -t edgekit-bench.XXXXXX")
        if made.exit_status != 0:
            raise EdgekitError(f"{spec}: cannot make a temporary folder there ({str(made.stderr).strip()[:120]})")
        tmp = str(made.stdout).strip()
        files = [f for a in artifacts for f in artifact_files(a)]
        async with conn.start_sftp_client() as sftp:
            await sftp.put([str(f) for f in files], tmp)
        names = " ".join(shlex.quote(f"{tmp}/{a.name}") for a in artifacts)  # rows record where they ran on the board
        args = " ".join(shlex.quote(a) for a in opts.bench_args)
        res = await _run(conn, spec, f"cd {shlex.quote(tmp)} && {edgekit} bench {names} --json {args}")
        if res.exit_status != 0:
            last = (str(res.stderr).strip().splitlines() or [f"exit status {res.exit_status}"])[-1]
            raise EdgekitError(f"{spec}: the bench failed there: {last[:300]}")
        try:
            report = json.loads(str(res.stdout))
        except ValueError:
            raise EdgekitError(f"{spec}: the bench printed no JSON (is '{opts.edgekit}' edgekit?)") from None
    except (asyncssh.Error, OSError, TimeoutError) as exc:
        raise EdgekitError(f"{spec}: the connection dropped during the run ({_reason(exc)}): results of this host are lost") from None
    finally:
        if tmp:
            try:
                await conn.run(f"rm -rf {shlex.quote(tmp)}", check=False)
            except (asyncssh.Error, OSError):
                pass
        conn.close()
    host = report.get("host") or {}
    report["remote"] = {"host": str(spec), "board": host.get("board"), "board_title": host.get("board_title"),
                        "edgekit": version, "seconds": round(time.perf_counter() - t0, 2)}
    return report
