"""``edgekit bench`` reports: the JSON (the data), a Markdown summary and a self-contained HTML page.

The JSON is the record (``{"host", "results", ...}`` as ``edgekit bench --json`` prints it); the
Markdown and HTML are views of it. The HTML page has no external URL: the plots are inline
base64 PNGs drawn with matplotlib (imported lazily, Agg backend; without matplotlib the page
still has every table and says why the plots are missing):

- latency distribution per artifact and setting (box plot of the timed frames);
- FPS by target and thread count (grouped bars);
- where the time goes: pre-processing / inference / post-processing (stacked bars);
- accuracy vs latency (mAP50 against p50) when the results have mAP;

and ``<table id="comparison">`` with target, backend, threads, size, mAP50, p50, FPS and the rest.

Example:
    >>> paths = write_report(report, "benchmarks/results/bench-fish")  # doctest: +SKIP
    >>> sorted(p.name for p in paths.values())  # doctest: +SKIP
    ['bench.html', 'bench.json', 'bench.md']
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

COLUMNS = [  # (key, header, format) of the comparison table, Markdown and HTML alike
    ("target", "target", "{}"), ("where", "measured on", "{}"), ("backend", "backend", "{}"), ("threads", "threads", "{}"),
    ("accel", "delegate/device", "{}"), ("size_mb", "size MB", "{:.2f}"), ("map50", "mAP50", "{:.4f}"),
    ("p50_ms", "p50 ms", "{:.2f}"), ("p90_ms", "p90 ms", "{:.2f}"), ("p99_ms", "p99 ms", "{:.2f}"),
    ("fps", "FPS", "{:.1f}"), ("cold_start_ms", "cold start ms", "{:.0f}"), ("split", "pre/infer/post ms", "{}"),
    ("rss_mb", "peak RSS MB", "{:.0f}"), ("rss_model_mb", "RSS added by load MB", "{:.0f}"),
    ("cpu_util_pct", "CPU %", "{:.0f}"), ("temp", "SoC °C before/after", "{}"),
]


COLD = [("cold", "cold start, fresh process ms", "{:.0f}"), ("cold_rss", "peak RSS, fresh process MB", "{:.0f}")]


def columns(rows: list[dict]) -> list[tuple[str, str, str]]:
    """The table's columns: :data:`COLUMNS`, plus the fresh-process figures when they were measured."""
    return COLUMNS + COLD if any(r.get("cold_subprocess") for r in rows) else COLUMNS


def _cell(row: dict, key: str, fmt: str) -> str:
    if key in ("cold", "cold_rss"):
        value = (row.get("cold_subprocess") or {}).get("process_ms" if key == "cold" else "rss_mb")
        return "-" if value is None else fmt.format(value)
    if key == "where":
        remote = row.get("remote")
        return f"{remote.get('board') or 'unknown board'} ({remote.get('host')})" if remote else "this host"
    if key == "accel":
        asked = row.get("delegate") or row.get("device")
        return f"{asked} -> cpu (fallback)" if asked and row.get("fell_back") else asked or "cpu"
    if key == "split":
        parts = [row.get(k) for k in ("pre_ms", "infer_ms", "post_ms")]
        return " / ".join("-" if v is None else f"{v:.2f}" for v in parts)
    if key == "temp":
        sysinfo = row.get("system") or {}
        b, a = ((sysinfo.get(w) or {}).get("soc_temp_c") for w in ("before", "after"))
        return "-" if b is None and a is None else f"{'-' if b is None else b} / {'-' if a is None else a}"
    value = row.get(key)
    if value is None:
        return "-"
    try:
        text = fmt.format(value)
        return "0" if text == "-0" else text
    except (ValueError, TypeError):
        return str(value)


def label(row: dict) -> str:
    """A short name of one result: target, backend when it is not the manifest's, threads.

    Example:
        >>> label({"target": "onnx", "backend": "openvino", "manifest_backend": "onnxruntime", "threads": 2})
        'onnx@openvino t2'
    """
    name = row.get("target") or row.get("artifact")
    if row.get("manifest_backend") and row.get("backend") != row.get("manifest_backend"):
        name += f"@{row['backend']}"
    accel = row.get("delegate") or row.get("device")
    if accel:
        name += f"+{accel}"
    remote = row.get("remote")
    if remote:  # a board reached with --host: its rows must not pass for this host's
        name += f" @{remote.get('board') or remote.get('host')}"
    return f"{name} t{row.get('threads')}"


def host_lines(host: dict) -> list[str]:
    """The setup every report states: edgekit, board or host, CPU, governor, threads, runtimes."""
    cpu = host.get("cpu") or {}
    runtimes = ", ".join(f"{k} {v}" for k, v in (host.get("runtimes") or {}).items()) or "none"
    board = host.get("board_title") or host.get("board") or "unknown board"
    return [f"edgekit {host.get('edgekit')}, Python {host.get('python')}, numpy {host.get('numpy')}, "
            f"OpenCV {host.get('opencv')}",
            f"board: {board} ({host.get('board_confidence')}: {host.get('board_reason')})",
            f"CPU: {cpu.get('model') or cpu.get('arch')} ({host.get('usable_cores')} usable cores, {cpu.get('arch')}), "
            f"governor {host.get('governor') or 'unknown'}, OMP_NUM_THREADS={host.get('omp_num_threads')}",
            f"runtimes: {runtimes}", f"platform: {host.get('platform')}"]


def warnings_of(report: dict) -> list[str]:
    """Conditions that make the numbers less trustworthy: throttling, heating, a busy host, fallbacks."""
    out, busy = [], []
    cores = (report.get("host") or {}).get("usable_cores") or 1
    for row in report.get("results", []):
        sysinfo = row.get("system") or {}
        before, after = sysinfo.get("before") or {}, sysinfo.get("after") or {}
        thr = after.get("throttled") or {}
        if thr.get("now"):
            out.append(f"{label(row)}: the SoC was throttled during the run ({', '.join(thr['flags'])})")
        if after.get("cooling"):
            out.append(f"{label(row)}: kernel cooling devices active after the run: {after['cooling']}")
        tb, ta = before.get("soc_temp_c"), after.get("soc_temp_c")
        if tb is not None and ta is not None and ta - tb >= 10:
            out.append(f"{label(row)}: the SoC heated from {tb} to {ta} C during the run")
        load = before.get("load_avg")
        if load and load[0] > 0.5 * cores:
            busy.append(load[0])
        out += [f"{label(row)}: {w}" for w in row.get("warnings") or []]
        if row.get("error"):
            out.append(f"{label(row)}: failed: {row['error']}")
    if busy:
        out.insert(0, f"other work was running: 1-minute load {min(busy)}-{max(busy)} on {cores} usable cores before "
                      f"{len(busy)} of {len(report.get('results', []))} settings; compare within this report only, "
                      "and bench on an idle board before quoting")
    return list(dict.fromkeys(out))


def arm_lines(report: dict) -> list[str]:
    """What ``edgekit verify --arm`` recorded in each benched artifact's manifest: outputs, never a speed.

    Example:
        >>> arm_lines({"results": []})
        []
    """
    from edgekit.runtime.runner import find_manifest

    out = []
    for row in report.get("results", []):
        try:
            arm = (find_manifest(row["path"]) or {}).get("arm") if row.get("path") else None
        except Exception:  # a report read on another machine: the artifact is not here, nothing to show
            arm = None
        for core, e in sorted((arm or {}).items()):
            verdict = "outputs match" if e.get("match") else "outputs DIFFER from"
            out.append(f"{row.get('target')}: emulated on {core}: {verdict} the x86 run (max abs {e.get('max_abs_err', 0):.3g}, "
                       f"cosine {e.get('cosine', 0):.6f}; {e.get('precision')}, {e.get('runtime')} {e.get('runtime_version')})")
    return list(dict.fromkeys(out))


ESTIMATE_NOTE = ("Estimated rows are predictions of `edgekit estimate` (a per-layer roofline fitted on published "
                 "board timings), not measurements: the interval is its leave-one-out error on the calibration set.")


def estimate_cells(est: dict, cols) -> list[str]:
    """One estimate (``report["estimates"]`` entry) as comparison-table cells, marked as an estimate.

    Example:
        >>> estimate_cells({"board": "rpi4", "artifact": "m.onnx", "runtime": "ncnn", "threads": 4, "latency_ms": 50.0,
        ...                 "low_ms": 41.0, "high_ms": 69.6, "fps": 20.0}, COLUMNS)[:3]
        ['m.onnx', 'ESTIMATE for rpi4', 'ncnn']
    """
    if est.get("error"):
        values = {"where": "ESTIMATE", "target": est.get("artifact"), "p50_ms": f"no estimate: {est['error']}"}
    else:
        ms = est.get("latency_ms")
        values = {"where": f"ESTIMATE for {est.get('board')}", "target": est.get("artifact"), "backend": est.get("runtime"),
                  "threads": est.get("threads"), "accel": "cpu" if est.get("threads") else est.get("runtime"),
                  "p50_ms": f"~{ms:.1f} ({est['low_ms']:.1f}-{est['high_ms']:.1f})" if ms is not None else "no estimate",
                  "fps": f"~{est['fps']:.1f}" if est.get("fps") else "-"}
    return ["-" if values.get(k) is None else str(values[k]) for k, _, _ in cols]


def estimate_lines(report: dict) -> list[str]:
    """How the estimated rows were made: method and calibration, once per distinct text."""
    out = [f"{e.get('board')} {e.get('runtime')}: {e.get('method')} (calibrated on {e.get('calibrated_on')})"
           for e in report.get("estimates") or [] if not e.get("error")]
    return [ESTIMATE_NOTE] + list(dict.fromkeys(out)) if out else []


def remote_lines(report: dict) -> list[str]:
    """One line per --host: the board it detected and how long it took, or why it failed."""
    out = []
    for r in report.get("remote") or []:
        if r.get("ok"):
            out.append(f"{r['host']}: board {r.get('board_title') or r.get('board') or 'unknown'} ({r.get('edgekit')}), "
                       f"{r.get('seconds')} s")
        else:
            out.append(f"{r['host']}: FAILED: {r.get('error')}")
    return out


def to_markdown(report: dict) -> str:
    """The report as Markdown: setup, comparison table, auto-configuration, warnings, method."""
    rows = [r for r in report.get("results", []) if not r.get("error")]
    model = report.get("model") or ", ".join(sorted({str(r.get("model")) for r in rows})) or "?"
    lines = [f"# edgekit bench: {model}", ""] + [f"- {x}" for x in host_lines(report.get("host") or {})]
    if report.get("command"):
        lines.append(f"- command: `{report['command']}`")
    inputs = report.get("inputs") or {}
    if inputs:
        lines.append(f"- inputs: {inputs.get('images')} real images from {inputs.get('source')}")
    cols = columns(rows)
    lines += ["", "## Comparison", "", "| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r, k, f) for k, _, f in cols) + " |" for r in rows]
    lines += ["| " + " | ".join(estimate_cells(e, cols)) + " |" for e in report.get("estimates") or []]
    if remote := remote_lines(report):
        lines += ["", "## Remote boards", ""] + [f"- {x}" for x in remote]
    if est := estimate_lines(report):
        lines += ["", "## Estimates (not measured)", ""] + [f"- {x}" for x in est]
    auto = report.get("auto")
    if auto:
        lines += ["", "## Auto-configuration", ""] + [f"- {x}" for x in auto_lines(auto)]
    if arm := arm_lines(report):
        lines += ["", "## Emulated aarch64 (`edgekit verify --arm`: outputs, not speed)", ""] + [f"- {x}" for x in arm]
    warn = warnings_of(report)
    if warn:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warn]
    lines += ["", "## Method", "", METHOD, ""]
    return "\n".join(lines)


METHOD = ("Each setting: the interpreter is imported (not timed), then `edgekit.runtime.load` + the first "
          "`predict` give the cold start; warm-up frames run untimed; each timed frame is `predict` of a real "
          "image (decoded beforehand, cycled) timed with `perf_counter_ns`: p50/p90/p99/mean/std, FPS = "
          "1000 / mean, pre/infer/post from the model's own timing. Peak RSS is this process's VmHWM, reset "
          "before each load (it includes the interpreters imported for earlier rows; \"RSS added by load\" is the "
          "growth over the memory just before `load`, and --cold-subprocess adds the peak of a fresh process "
          "running that artifact alone); CPU % is process CPU time / wall time (100 = one core). mAP50 is scored "
          "after the timing through the same `predict` (conf 0.001, NMS IoU 0.6).")


def auto_lines(auto: dict) -> list[str]:
    """Human lines for the ``--auto`` section: the choice, the finalists' race, the re-measurement."""
    c, v = auto.get("chosen") or {}, auto.get("verify") or {}
    t = c.get("threads")
    lines = [f"chosen: {c.get('artifact')} on {c.get('backend')}, {t} thread{'' if t == 1 else 's'}, "
             f"{c.get('delegate') or c.get('device') or 'cpu'}: p50 {c.get('p50_ms')} ms, {c.get('fps')} FPS "
             f"(out of {auto.get('swept')} configurations)"]
    for f in auto.get("finalists") or []:
        lines.append(f"finalist {label(f)} ({f.get('artifact')}): p50 {f.get('sweep_p50_ms')} ms in the sweep, "
                     f"{f.get('p50_ms')} ms in the interleaved race")
    if v:
        lines.append(f"re-measured after the choice: p50 {v.get('p50_ms')} ms = {v.get('ratio')} x the sweep's best "
                     f"({'within' if v.get('within') else 'NOT within'} {v.get('tolerance_pct')} %); "
                     f"{v.get('ratio_same_time')} x the fastest finalist timed beside it "
                     f"({'within' if v.get('within_same_time') else 'NOT within'}); "
                     f"{v.get('ratio_first_pass')} x the first pass's fastest single block")
    if auto.get("method"):
        lines.append(f"method: {auto['method']}")
    if auto.get("deploy"):
        lines.append(f"written to {auto['deploy']}")
    return lines


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plots(report: dict) -> list[tuple[str, str]]:
    """``[(title, base64 PNG)]`` of the report's plots; empty when matplotlib is not installed.

    Example:
        >>> [t for t, _ in plots(report)]  # doctest: +SKIP
        ['Latency distribution', 'FPS by target and threads', 'Where the time goes', 'Accuracy vs latency']
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    rows = [r for r in report.get("results", []) if not r.get("error") and r.get("p50_ms") is not None]
    if not rows:
        return []
    out = []
    names = [label(r) for r in rows]
    height = max(3.0, 0.32 * len(rows) + 1.2)

    fig, ax = plt.subplots(figsize=(9, height))
    # matplotlib renamed these: labels -> tick_labels (3.9), vert -> orientation (3.10)
    version = tuple(int(v) for v in matplotlib.__version__.split(".")[:2] if v.isdigit())
    style = {"orientation": "horizontal"} if version >= (3, 10) else {"vert": False}
    style["tick_labels" if version >= (3, 9) else "labels"] = names
    ax.boxplot([r.get("samples_ms") or [r["p50_ms"]] for r in rows], showfliers=True,
               flierprops={"markersize": 2, "alpha": 0.4}, medianprops={"color": "tab:red"}, **style)
    ax.invert_yaxis()
    slowest = max(max(r.get("samples_ms") or [r["p50_ms"]]) for r in rows)
    log = slowest > 10 * min(r["p50_ms"] for r in rows)  # stalls of a second must not flatten every box
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(f"latency per frame, ms{' (log scale)' if log else ''} (box: p25-p75, line: p50, whiskers: 1.5 IQR)")
    ax.grid(axis="x", alpha=0.3, which="both" if log else "major")
    out.append(("Latency distribution", _png(fig)))

    groups = list(dict.fromkeys(label(r).rsplit(" t", 1)[0] for r in rows))
    threads = sorted({r.get("threads") or 0 for r in rows})
    fig, ax = plt.subplots(figsize=(max(7.0, 0.8 * len(groups) + 2), 4.5))
    width = 0.8 / max(1, len(threads))
    for k, t in enumerate(threads):
        fps = {label(r).rsplit(" t", 1)[0]: r["fps"] for r in rows if (r.get("threads") or 0) == t}
        xs = [i + (k - (len(threads) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, [fps.get(g, 0) for g in groups], width, label=f"{t} thread{'s' if t != 1 else ''}")
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    ax.set_ylabel("frames per second (1000 / mean latency)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    out.append(("FPS by target and threads", _png(fig)))

    fig, ax = plt.subplots(figsize=(9, height))
    left = [0.0] * len(rows)
    for key, color in (("pre_ms", "tab:blue"), ("infer_ms", "tab:orange"), ("post_ms", "tab:green")):
        vals = [r.get(key) or 0.0 for r in rows]
        ax.barh(names, vals, left=left, color=color, label=key[:-3])
        left = [a + b for a, b in zip(left, vals)]
    ax.invert_yaxis()
    ax.set_xlabel("mean ms per frame")
    ax.legend()
    out.append(("Where the time goes", _png(fig)))

    fastest: dict[str, dict] = {}  # one point per artifact and backend: its best thread count
    for r in rows:
        key = label(r).rsplit(" t", 1)[0]
        if r.get("map50") is not None and (key not in fastest or r["p50_ms"] < fastest[key]["p50_ms"]):
            fastest[key] = r
    if fastest:
        fig, ax = plt.subplots(figsize=(8, 5))
        ax.scatter([r["p50_ms"] for r in fastest.values()], [r["map50"] for r in fastest.values()], s=40)
        for k, (name, r) in enumerate(fastest.items()):
            ax.annotate(f"{name} t{r.get('threads')}", (r["p50_ms"], r["map50"]), fontsize=7,
                        xytext=(4, 6 - 9 * (k % 3)), textcoords="offset points")
        ax.set_xlabel("p50 latency, ms, at the best thread count (lower is better)")
        ax.set_ylabel("mAP50 (higher is better)")
        ax.grid(alpha=0.3)
        out.append(("Accuracy vs latency", _png(fig)))
    return out


CSS = ("body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:13px}"
       "th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f0f0f0}"
       "td:first-child,td:nth-child(2),td:nth-child(4){text-align:left}img{max-width:100%;display:block;margin:8px 0 24px}"
       ".warn{color:#a40}code{background:#f4f4f4;padding:1px 4px}tr.estimate td{font-style:italic;color:#555}")


def to_html(report: dict, images: list[tuple[str, str]] | None = None) -> str:
    """One self-contained HTML page: setup, comparison table, plots (inline PNG), warnings, method."""
    esc = html.escape
    rows = [r for r in report.get("results", []) if not r.get("error")]
    model = report.get("model") or ", ".join(sorted({str(r.get("model")) for r in rows})) or "?"
    images = plots(report) if images is None else images
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>edgekit bench: {esc(model)}</title>"
             f"<style>{CSS}</style></head><body>", f"<h1>edgekit bench: {esc(model)}</h1><ul>"]
    parts += [f"<li>{esc(x)}</li>" for x in host_lines(report.get("host") or {})]
    if report.get("command"):
        parts.append(f"<li>command: <code>{esc(report['command'])}</code></li>")
    parts.append("</ul><h2>Comparison</h2><table id='comparison'><thead><tr>")
    cols = columns(rows)
    parts += [f"<th>{esc(h)}</th>" for _, h, _ in cols]
    parts.append("</tr></thead><tbody>")
    for r in rows:
        parts.append("<tr>" + "".join(f"<td>{esc(_cell(r, k, f))}</td>" for k, _, f in cols) + "</tr>")
    for e in report.get("estimates") or []:
        parts.append("<tr class='estimate'>" + "".join(f"<td>{esc(c)}</td>" for c in estimate_cells(e, cols)) + "</tr>")
    parts.append("</tbody></table>")
    if remote := remote_lines(report):
        parts.append("<h2>Remote boards</h2><ul>" + "".join(f"<li>{esc(x)}</li>" for x in remote) + "</ul>")
    if est := estimate_lines(report):
        parts.append("<h2>Estimates (not measured)</h2><ul>" + "".join(f"<li>{esc(x)}</li>" for x in est) + "</ul>")
    if report.get("auto"):
        parts.append("<h2>Auto-configuration</h2><ul>" + "".join(f"<li>{esc(x)}</li>" for x in auto_lines(report["auto"]))
                     + "</ul>")
    if arm := arm_lines(report):
        parts.append("<h2>Emulated aarch64 (edgekit verify --arm: outputs, not speed)</h2><ul>"
                     + "".join(f"<li>{esc(x)}</li>" for x in arm) + "</ul>")
    if images:
        for title, png in images:
            parts.append(f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,{png}'>")
    else:
        parts.append("<p class='warn'>No plots: matplotlib is not installed here (pip install matplotlib).</p>")
    warn = warnings_of(report)
    if warn:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li class='warn'>{esc(w)}</li>" for w in warn) + "</ul>")
    parts.append(f"<h2>Method</h2><p>{esc(METHOD)}</p></body></html>")
    return "\n".join(parts)


def write_report(report: dict, out_dir: str | Path, name: str = "bench") -> dict[str, Path]:
    """Write ``<out_dir>/<name>.json``, ``.md`` and ``.html`` atomically; ``{"json", "md", "html"}`` paths.

    Example:
        >>> write_report({"host": {}, "results": []}, "/tmp/bench-empty")["md"].name
        'bench.md'
    """
    from edgekit.io import atomic_write_text

    out = Path(out_dir)
    return {"json": atomic_write_text(out / f"{name}.json", json.dumps(report, indent=1, default=str) + "\n"),
            "md": atomic_write_text(out / f"{name}.md", to_markdown(report)),
            "html": atomic_write_text(out / f"{name}.html", to_html(report))}
