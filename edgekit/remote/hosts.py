"""``user@board[:port]`` host specifications."""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass

from edgekit.errors import EdgekitError

_SPEC = re.compile(r"(?:(?P<user>[^@\s]+)@)?(?P<host>\[[0-9a-fA-F:.]+\]|[^@:\s\[\]]+)(?::(?P<port>\d+))?")


@dataclass(frozen=True)
class HostSpec:
    """Where to connect: user, host name or address, port."""

    user: str
    host: str
    port: int = 22

    def __str__(self) -> str:
        return f"{self.user}@{self.host}" + (f":{self.port}" if self.port != 22 else "")

    def known_hosts_name(self) -> str:
        """The name OpenSSH writes in known_hosts: ``host``, or ``[host]:port`` off port 22.

        Example:
            >>> HostSpec("pi", "127.0.0.1", 2222).known_hosts_name()
            '[127.0.0.1]:2222'
        """
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def parse_host(text: str, port: int | None = None) -> HostSpec:
    """Parse ``[user@]host[:port]`` (``--port`` applies where the spec has none; user defaults to yours).

    Example:
        >>> parse_host("pi@rpi4.local")
        HostSpec(user='pi', host='rpi4.local', port=22)
        >>> parse_host("pi@10.0.0.5:2222").port
        2222
        >>> parse_host("pi@")
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: --host 'pi@' is not user@host[:port]: write it like pi@rpi4.local or pi@192.168.1.20:22
    """
    m = _SPEC.fullmatch(text.strip())
    if not m:
        raise EdgekitError(f"--host '{text}' is not user@host[:port]: write it like pi@rpi4.local or pi@192.168.1.20:22")
    p = int(m["port"]) if m["port"] else (port or 22)
    if not 0 < p < 65536:
        raise EdgekitError(f"--host '{text}': port {p} is not 1-65535")
    return HostSpec(m["user"] or getpass.getuser(), m["host"].strip("[]"), p)
