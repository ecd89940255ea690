"""Host-key policy: known_hosts is checked by default; a key is never accepted silently.

- the host has a key in known_hosts: the server must present it (a changed key is refused, always);
- the host has none: refused with the command that adds it, unless ``accept_new`` (OpenSSH's
  ``StrictHostKeyChecking=accept-new``), which records the key the server presents on first contact.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.remote.hosts import HostSpec


def default_known_hosts() -> Path:
    return Path.home() / ".ssh" / "known_hosts"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def has_entry(path: Path, spec: HostSpec) -> bool:
    """Whether ``path`` lists any key (trusted or revoked) for ``spec``'s host and port."""
    import asyncssh

    if not path.is_file():
        return False
    try:
        known = asyncssh.read_known_hosts(str(path))
    except (OSError, ValueError) as exc:
        raise EdgekitError(f"{path} is not a readable known_hosts file ({exc}): fix or move it") from None
    trusted, cas, revoked, *_ = known.match(spec.host, spec.host if _is_ip(spec.host) else "", spec.port)
    return bool(trusted or cas or revoked)


def not_known_error(spec: HostSpec, path: Path) -> EdgekitError:
    port = f"-p {spec.port} " if spec.port != 22 else ""
    return EdgekitError(f"{spec}: host key not in {path}: check the board's key fingerprint and add it "
                        f"(ssh-keyscan {port}{spec.host} >> {path}), or pass --accept-new on first contact")


def changed_key_error(spec: HostSpec, path: Path) -> EdgekitError:
    return EdgekitError(f"{spec}: REFUSED: the host key does not match the one in {path} (the board was reinstalled, "
                        f"or something is in between); if you know why it changed: "
                        f"ssh-keygen -R '{spec.known_hosts_name()}' -f {path}, then connect again")


def record_key(path: Path, spec: HostSpec, key) -> None:
    """Append ``key`` (an asyncssh SSHKey) for ``spec`` to ``path`` in OpenSSH's format."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = f"{spec.known_hosts_name()} {key.export_public_key('openssh').decode().strip()}\n"
    with open(path, "a", encoding="ascii") as f:
        f.write(line)
