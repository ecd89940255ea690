"""The pruning report: ``prune_report.json`` (the results schema) and a one-page HTML with the mAP-vs-MACs curve.

The HTML is a view of the JSON: a before/after table and the curve over the steps as an
inline PNG drawn with matplotlib (the ``train`` extra); without matplotlib the page says so.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path


def curve_png(steps: list[dict]) -> str | None:
    """Base64 PNG of val mAP@0.5 against MACs over the steps; None without matplotlib.

    Example:
        >>> curve_png([{"step": 0, "macs": 10, "map50": 0.5}, {"step": 1, "macs": 7, "map50": 0.45}])[:8]  # a PNG
        'iVBORw0K'
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    pts = [(s["macs"] / 1e6, s["map50"]) for s in steps if s.get("map50") is not None]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-")
        for s, (x, y) in zip([s for s in steps if s.get("map50") is not None], pts):
            ax.annotate(f"step {s.get('step', '?')}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("MACs (M) at the model's input size")
    ax.set_ylabel("val mAP@0.5 after fine-tuning")
    ax.invert_xaxis()  # the steps run left to right: MACs fall as pruning goes on
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return html.escape(str(v))


def render_html(result: dict) -> str:
    """The report page for ``result`` (the dict :func:`edgekit.prune.prune` returns).

    Example:
        >>> "<table" in render_html({"model": "m", "ratio": 0.3, "before": {"macs": 2}, "after": {"macs": 1}, "steps": []})
        True
    """
    b, a = result.get("before", {}), result.get("after", {})
    rows = [("params", b.get("params"), a.get("params")), ("MACs", b.get("macs"), a.get("macs")),
            (f"mAP@0.5 ({result.get('map_split', 'val')})", b.get("map50"), a.get("map50")),
            (f"mAP@0.5:0.95 ({result.get('map_split', 'val')})", b.get("map50_95"), a.get("map50_95"))]
    for t in (b.get("latency_ms") or {}):
        rows.append((f"{t} inference ms", b["latency_ms"].get(t), (a.get("latency_ms") or {}).get(t)))
    table = "".join(f"<tr><td>{html.escape(n)}</td><td>{_fmt(x)}</td><td>{_fmt(y)}</td>"
                    f"<td>{_fmt(round(y / x - 1, 4)) if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x else '-'}</td></tr>"
                    for n, x, y in rows)
    steps = "".join(f"<tr><td>{s['step']}</td><td>{_fmt(s.get('macs'))}</td><td>{_fmt(s.get('params'))}</td>"
                    f"<td>{_fmt(s.get('ratio'))}</td><td>{_fmt(s.get('map50'))}</td><td>{_fmt(s.get('map50_95'))}</td></tr>"
                    for s in result.get("steps", []))
    png = curve_png(result.get("steps", []))
    plot = f'<img alt="val mAP@0.5 vs MACs" src="data:image/png;base64,{png}">' if png else \
        "<p>(install edgekit[train] for the plot: matplotlib is missing)</p>"
    ci = result.get("map50_delta_ci95")
    note = (f"<p>mAP@0.5 after - before: {_fmt(result.get('map50_delta'))}, paired bootstrap 95% interval "
            f"[{_fmt(ci[0])}, {_fmt(ci[1])}] over {result.get('bootstrap', {}).get('images')} images.</p>") if ci else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>edgekit prune {html.escape(str(result.get('model')))}"
            f"</title><style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}</style>"
            f"</head><body><h1>Pruning {html.escape(str(result.get('model')))}</h1>"
            f"<p>channels removed: {_fmt(result.get('ratio'))}; importance {html.escape(str(result.get('importance')))}, "
            f"round to {_fmt(result.get('round_to'))}</p>"
            f"<table><tr><th></th><th>before</th><th>after</th><th>change</th></tr>{table}</table>{note}"
            f"<h2>mAP vs MACs over the steps</h2>{plot}"
            f"<table><tr><th>step</th><th>MACs</th><th>params</th><th>channels removed</th><th>val mAP@0.5</th>"
            f"<th>val mAP@0.5:0.95</th></tr>{steps}</table></body></html>")


def write_report(result: dict, out: Path) -> dict:
    """Write ``prune_report.json`` and ``prune_report.html`` into ``out`` atomically; returns their paths.

    Example:
        >>> write_report(result, Path("runs/prune/x"))  # doctest: +SKIP
        {'report_json': 'runs/prune/x/prune_report.json', 'report_html': 'runs/prune/x/prune_report.html'}
    """
    from edgekit.io import atomic_write_bytes

    paths = {"report_json": str(out / "prune_report.json"), "report_html": str(out / "prune_report.html")}
    atomic_write_bytes(out / "prune_report.json", json.dumps({**result, **paths}, indent=2).encode())
    atomic_write_bytes(out / "prune_report.html", render_html(result).encode())
    return paths
