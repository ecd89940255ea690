"""Several hosts at once: every host runs concurrently, each ends with its report or its error."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.remote.hosts import HostSpec
from edgekit.remote.session import RemoteOptions, bench_host


@dataclass
class HostResult:
    """One host's outcome: ``report`` (its ``edgekit bench --json``) or ``error`` (one line)."""

    host: str
    report: dict | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.report is not None

    def summary(self) -> dict:
        """What the local report records about this host (not the rows: those join the results)."""
        if not self.ok:
            return {"host": self.host, "ok": False, "error": self.error}
        return {"host": self.host, "ok": True, **self.report["remote"], "board_host": self.report.get("host")}


async def _one(spec: HostSpec, artifacts: list[Path], opts: RemoteOptions) -> HostResult:
    try:
        return HostResult(str(spec), report=await bench_host(spec, artifacts, opts))
    except EdgekitError as exc:
        return HostResult(str(spec), error=str(exc))
    except Exception as exc:  # one host's surprise must not lose the other hosts' results
        return HostResult(str(spec), error=f"{spec}: {type(exc).__name__}: {str(exc)[:200]}")


def bench_fleet(specs: list[HostSpec], artifacts: list[Path], opts: RemoteOptions) -> list[HostResult]:
    """Bench ``artifacts`` on every host concurrently; one :class:`HostResult` per host, in order.

    Example:
        >>> res = bench_fleet([parse_host("pi@rpi4.local")], [Path("m.tflite")],
        ...                   RemoteOptions(known_hosts=Path("~/.ssh/known_hosts").expanduser()))  # doctest: +SKIP
        >>> res[0].ok, res[0].report["host"]["board"]  # doctest: +SKIP
        (True, 'rpi4')
    """
    import importlib.util

    if importlib.util.find_spec("asyncssh") is None:
        raise EdgekitError("remote bench needs asyncssh: pip install 'edgekit[remote]'")

    async def run_all():
        return await asyncio.gather(*(_one(s, artifacts, opts) for s in specs))

    return list(asyncio.run(run_all()))
