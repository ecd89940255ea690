"""A real OpenSSH server (Debian's openssh-server) on a loopback port, for the remote bench tests.

Each :class:`LoopbackSSHD` has its own temporary host key, one authorized client key, and ``SetEnv
PATH`` pointing at this checkout's virtual environment, so that ``edgekit`` on the "board" is the
code under test. It runs in the foreground (``-D``) in its own session so a test can kill it and
every session it forked (a board dropping off the network mid-run).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


def require_sshd() -> None:
    """Fail (not skip) with the fix when OpenSSH's server is missing: CI installs it (.ci/run)."""
    if not (os.path.isfile(SSHD) and os.access(SSHD, os.X_OK) and os.path.isfile(SSH_KEYGEN)):
        pytest.fail("OpenSSH server not found (sshd, ssh-keygen): install it (apt-get install openssh-server); "
                    ".ci/run does this in CI")


def keygen(path: Path) -> Path:
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "edgekit-test", "-f", str(path)], check=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackSSHD:
    def __init__(self, root: Path, client_pub: Path):
        require_sshd()
        root.mkdir(parents=True, exist_ok=True)
        self.root, self.port, self.user = root, free_port(), getpass.getuser()
        self.tmp = root / "tmp"
        self.tmp.mkdir()
        self.host_key = keygen(root / "host_key")
        (root / "authorized_keys").write_text(client_pub.read_text())
        os.chmod(root / "authorized_keys", 0o600)
        venv_bin = Path(sys.executable).parent
        self.config = root / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}", f"PidFile {root / 'sshd.pid'}",
            f"AuthorizedKeysFile {root / 'authorized_keys'}", "PubkeyAuthentication yes", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
            # the board's temporary folders land in this test's folder (mktemp honours TMPDIR)
            f"SetEnv PATH={venv_bin}:/usr/local/bin:/usr/bin:/bin TMPDIR={self.tmp}", "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            ""]))
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        self.log = root / "sshd.log"
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "wb"), start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"sshd exited ({self.proc.returncode}): {self.log.read_text()[-1500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"sshd did not listen on 127.0.0.1:{self.port} within 15 s: {self.log.read_text()[-1500:]}")

    @property
    def spec(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def known_hosts_line(self, pub: Path | None = None) -> str:
        """``[127.0.0.1]:PORT <key>``: this server's key (or another one, to fake a changed key)."""
        key = (pub or self.host_key.with_suffix(".pub")).read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {' '.join(key)}\n"

    def descendants(self) -> list[int]:
        import psutil

        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def running_bench(self) -> bool:
        """Whether a session of this server is running ``edgekit bench`` now."""
        import psutil

        for pid in self.descendants():
            try:
                cmd = " ".join(psutil.Process(pid).cmdline())
            except psutil.Error:
                continue
            if " bench " in cmd and "--json" in cmd and "edgekit" in cmd:  # the bench itself, not the mktemp
                return True
        return False

    def kill(self) -> None:
        """SIGKILL the server and every process it forked: the board drops off the network."""
        for pid in [*self.descendants(), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()
