"""Fixtures: a client key, loopback sshd servers (tests/remote/sshd.py), and the edgekit CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.remote.sshd import LoopbackSSHD, keygen, require_sshd


@pytest.fixture(scope="module")
def client_key(tmp_path_factory):
    require_sshd()
    return keygen(tmp_path_factory.mktemp("ssh-client") / "id_ed25519")


@pytest.fixture()
def sshd_factory(tmp_path, client_key):
    servers = []

    def make(name: str = "board") -> LoopbackSSHD:
        s = LoopbackSSHD(tmp_path / f"sshd-{name}", client_key.with_suffix(".pub"))
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def edgekit(*args, timeout: float = 300, **popen):
    """Run ``python -m edgekit ARGS`` (HOME in a temp folder is up to the caller's env)."""
    return subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **popen)


def parse_json(res) -> dict:
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


@pytest.fixture()
def home(tmp_path):
    """An environment whose HOME (and so ~/.ssh and ~/.config) is a temp folder: the user's own files are never touched."""
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True)
    return {**os.environ, "HOME": str(h), "EDGEKIT_CONFIG_DIR": str(h / ".config" / "edgekit")}
