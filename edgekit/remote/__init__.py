"""Remote bench: run ``edgekit bench --json`` on real boards over SSH and bring the rows back (host side).

``bench_fleet(["pi@rpi4.local", "pi@rpi5.local"], artifacts, bench_args)`` copies the artifacts (with
their manifests and companion files) to each board, runs edgekit's own bench there, and returns one
:class:`HostResult` per host: the board's report (its ``host`` block says which board it detected)
or the error that ended that host's run. Hosts run concurrently; one failure never loses the
others' results. Host keys are checked against known_hosts (:mod:`edgekit.remote.known_hosts`).
Needs asyncssh: ``pip install 'edgekit[remote]'``.
"""

from edgekit.remote.fleet import HostResult, bench_fleet
from edgekit.remote.hosts import HostSpec, parse_host

__all__ = ["HostResult", "HostSpec", "bench_fleet", "parse_host"]
