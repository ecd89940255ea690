"""Fold remote hosts' bench reports into the local one: their rows join ``results``, labelled by board."""

from __future__ import annotations


def merge_remote(report: dict, outcomes) -> dict:
    """Add each successful host's rows to ``report["results"]`` (each with ``remote``: host, board) and
    record every host's outcome in ``report["remote"]``; returns ``report``.

    Example:
        >>> from edgekit.remote.fleet import HostResult
        >>> r = merge_remote({"results": []}, [HostResult("pi@b", error="pi@b: cannot connect")])
        >>> r["remote"][0]["ok"], r["results"]
        (False, [])
    """
    report.setdefault("results", [])
    report["remote"] = []
    for out in outcomes:
        report["remote"].append(out.summary())
        if not out.ok:
            continue
        info = out.report["remote"]
        for row in out.report.get("results") or []:
            row = dict(row)
            row["remote"] = {"host": info["host"], "board": info.get("board"), "board_title": info.get("board_title")}
            report["results"].append(row)
    return report
