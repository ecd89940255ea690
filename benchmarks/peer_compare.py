"""edgekit against its peers on the same files, as ratios measured in one interleaved run.

    python benchmarks/peer_compare.py runs/export/mobilenetv2_050-yolo

What is compared is **pure model inference on the same prepared input tensor** (one real
image, letterboxed by the artifact's manifest): each engine's ``run`` and nothing else. The
end-to-end ``predict`` of edgekit (letterbox + inference + decode + NMS) is timed separately.

- ONNX (the fp32 ``.onnx``): edgekit's configuration (``edgekit.runtime.load``: onnxruntime with
  its session options) vs onnxruntime with default options (``ort.InferenceSession(path)``, no
  options at all, whatever threads it picks) vs OpenCV DNN (``cv2.dnn.readNetFromONNX``,
  ``cv2.setNumThreads``); each at 1 and 2 threads set explicitly except ORT default.
- "edgekit's chosen configuration": ``load(artifact)`` of the artifact ``<folder>/deploy.json``
  names (written by ``edgekit bench --auto``; ``load`` applies it), else ``load()`` defaults on
  the ONNX at the thread count that was fastest in this run. The result records which.
- TFLite: every ``.tflite`` in edgekit's LiteRT backend (XNNPACK, LiteRT's default delegate) vs
  the same interpreter with ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (TFLite's own kernels).
- OpenVINO: every IR in edgekit's backend vs OpenVINO's ``benchmark_app`` on the same file with
  the same compile configuration (LATENCY hint, threads, inference precision), sync API,
  the same input tensor, each in a fresh process, alternating; the two should agree within
  10 %. edgekit's side also records OpenVINO's own latency of its calls and of the same
  request called back to back (benchmark_app's way), which splits any gap into call overhead
  and model speed.

All engines run in the same rounds (A B C ..., A B C ..., the order rotating each round); per
engine the p50 of every timed iteration; ratios are p50 over p50, with the spread of the
per-round ratios. Outputs are compared across engines (max abs difference) to show they
compute the same thing. Writes ``benchmarks/results/peer-<folder name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import peer_runners as pr  # noqa: E402

ROOT = HERE.parent
SAMPLE_IMAGES = ROOT / "edgekit" / "assets" / "fish_sample" / "test" / "images"
TARGET_OK = 1.5  # the bar: edgekit's chosen configuration >= 1.5x OpenCV DNN
AGREE = 0.10     # edgekit vs benchmark_app on an IR


def artifacts(folder: Path) -> dict[str, Path]:
    """``{target: path}`` of every manifest'ed artifact in an export folder."""
    from edgekit.runtime.runner import find_manifest

    out = {}
    for p in sorted(folder.iterdir()):
        if p.suffix in (".onnx", ".tflite", ".xml"):
            man = find_manifest(p)
            if man:
                out[man["target"]] = p
    return out


def chosen_config(folder: Path) -> dict | None:
    """edgekit's deployment choice: ``deploy.json`` (``edgekit bench --auto``) in ``folder``, or None when absent.

    Read and validated by edgekit itself (:mod:`edgekit.runtime.deploy`); ``options`` is what
    ``load(artifact)`` applies on this machine (None when the file was tuned on another one).
    """
    p = folder / "deploy.json"
    if not p.is_file():
        return None
    from edgekit.runtime.deploy import deploy_options, read_deploy

    raw = json.loads(p.read_text())
    name = raw.get("artifact") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not (folder / name).is_file():
        raise SystemExit(f"{p}: its 'artifact' ({name!r}) is not a file beside it: run `edgekit bench --auto` again")
    art = folder / name
    return {"source": str(p), "artifact": art, "deploy_json": read_deploy(art), "options": deploy_options(art)}


def _stats(blocks) -> dict:
    a = np.concatenate([np.asarray(b, float) for b in blocks])
    return {"p50_ms": round(float(np.median(a)), 3), "p10_ms": round(float(np.percentile(a, 10)), 3),
            "p90_ms": round(float(np.percentile(a, 90)), 3), "n": int(a.size)}


def _deq(outs, infos) -> list:
    """Raw outputs as floats, dequantized with the backend's scales (int8 outputs compare in real units)."""
    res = []
    for a, info in zip(outs, infos):
        a = np.asarray(a)
        if info.quant and a.dtype.kind in "iu":
            a = (a.astype(np.float32) - info.quant[1]) * info.quant[0]
        res.append(a)
    return res


def build_engines(folder: Path, img: np.ndarray, threads: tuple, openvino: bool, bench_niter: int) -> dict:
    """Every engine of the comparison, opened and ready (``run()`` = one inference), plus the OpenVINO pairs."""
    arts = artifacts(folder)
    if "onnx" not in arts:
        raise SystemExit(f"{folder}: no fp32 .onnx artifact with a manifest; export the 'onnx' target first")
    onnx = arts["onnx"]
    c = {"onnx": onnx, "engines": [], "errors": {}, "models": {}, "agree": [],
         "tflite": {tg: p for tg, p in arts.items() if p.suffix == ".tflite"},
         "irs": {tg: p for tg, p in arts.items() if p.suffix == ".xml"} if openvino else {}}
    engines = c["engines"]
    for t in threads:  # ONNX: edgekit vs onnxruntime default vs OpenCV DNN, on one tensor
        e, c["x_onnx"], c["models"][t] = pr.edgekit_engine(onnx, t, img, "onnx", key=f"edgekit-onnxruntime@{t}t")
        engines.append(e)
    c["ref_key"], x = engines[0].key, c["x_onnx"]
    engines.append(pr.ort_default_engine(onnx, x))
    for t in threads:
        try:
            engines.append(pr.opencv_engine(onnx, x, t, [o.name for o in c["models"][t].runner.backend.outputs]))
        except Exception as exc:  # recorded as the result, never hidden
            last = (str(exc).strip().splitlines() or ["?"])[-1][:300]
            c["errors"][f"opencv-dnn@{t}t"] = f"{type(exc).__name__}: {last}"
    c["deploy"] = deploy = chosen_config(folder)
    if deploy:  # load(artifact) with no options applies deploy.json itself: exactly what a user gets
        e, _, dmodel = pr.edgekit_engine(deploy["artifact"], None, img, "onnx", key="edgekit-chosen")
        e.threads = (deploy["options"] or {}).get("threads")
        c["e2e"] = {"edgekit-chosen-predict": (dmodel, e.threads)}
        engines.append(e)
    else:
        c["e2e"] = {f"edgekit-onnxruntime-predict@{t}t": (c["models"][t], t) for t in threads}
    engines += [pr.edgekit_predict_engine(m, img, t, k) for k, (m, t) in c["e2e"].items()]
    for tg, p in c["tflite"].items():  # edgekit's LiteRT backend (XNNPACK) vs no default delegates
        for t in threads:
            e, x, tm = pr.edgekit_engine(p, t, img, "tflite", key=f"{tg}:litert-xnnpack@{t}t")
            e.info["delegate_nodes"] = pr.delegate_nodes(tm.runner.backend.interpreter)
            e.handle = tm.runner.backend.outputs
            b = pr.litert_builtin_engine(p, x, t)
            b.key = f"{tg}:litert-no-xnnpack@{t}t"
            engines += [e, b]
    tmp = c["tmp"] = Path(tempfile.mkdtemp(prefix="peer-compare-"))  # benchmark_app's inputs; removed at the end
    for tg, p in c["irs"].items():  # edgekit's OpenVINO backend here; the benchmark_app pairs between rounds
        for t in threads:
            e, x, m = pr.edgekit_engine(p, t, img, "openvino", key=f"{tg}:edgekit-openvino@{t}t")
            e.info["cpu_pinning"] = m.runner.backend._property("ENABLE_CPU_PINNING")
            engines.append(e)
            prec = str(e.info.get("precision")).lower()
            prec = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}.get(prec, prec)
            c["agree"].append((e.key, pr.OvAgreement(tg, p, t, prec, m.runner.backend.inputs[0].name, x,
                                                     bench_niter, tmp)))
    return c


def summarise(c: dict, times: dict, threads: tuple, img: np.ndarray) -> dict:
    """The tables of the result from the engines and their timings."""
    by_key = {e.key: e for e in c["engines"]}

    def speedup(slow, fast):  # how many times as fast ``fast`` is as ``slow``
        return pr.ratio(times[slow], times[fast]) if slow in times and fast in times else None

    def med(key):
        return _stats(times[key])["p50_ms"] if key in times else None

    onnx_rows = [{"threads": t, "edgekit_p50_ms": med(f"edgekit-onnxruntime@{t}t"),
                  "onnxruntime_default_p50_ms": med("onnxruntime-default"),
                  "opencv_dnn_p50_ms": med(f"opencv-dnn@{t}t"),
                  "edgekit_vs_opencv_dnn": speedup(f"opencv-dnn@{t}t", f"edgekit-onnxruntime@{t}t"),
                  "edgekit_vs_onnxruntime_default": speedup("onnxruntime-default", f"edgekit-onnxruntime@{t}t"),
                  "onnxruntime_default_vs_opencv_dnn": speedup(f"opencv-dnn@{t}t", "onnxruntime-default")}
                 for t in threads]
    deploy = c["deploy"]
    if deploy:
        key, how = "edgekit-chosen", f"deploy.json ({deploy['source']})"
        chosen = {"source": "deploy.json", "artifact": deploy["artifact"].name,
                  "backend": by_key[key].info.get("backend"), "threads": by_key[key].threads,
                  "applied_options": deploy["options"], "applies_here": deploy["options"] is not None,
                  "artifact_precision": by_key[key].info.get("artifact_precision"),
                  "deploy_json": deploy["deploy_json"]}
    else:
        best = min(threads, key=lambda t: pr.p50(times[f"edgekit-onnxruntime@{t}t"]))
        key = f"edgekit-onnxruntime@{best}t"
        how = "no deploy.json: load() defaults on the .onnx, fastest thread count here"
        chosen = {"source": "load() defaults", "artifact": c["onnx"].name, "backend": "onnxruntime", "threads": best}
    head = {"chosen": chosen, "how": how, "chosen_p50_ms": med(key), "bar": TARGET_OK}
    cv_keys = [f"opencv-dnn@{t}t" for t in threads if f"opencv-dnn@{t}t" in times]
    if cv_keys:
        cv_best = min(cv_keys, key=lambda k: pr.p50(times[k]))
        head.update({"opencv_dnn_best": cv_best, "opencv_dnn_best_p50_ms": med(cv_best),
                     "speedup_vs_opencv_dnn": speedup(cv_best, key)})
        if f"opencv-dnn@{chosen['threads']}t" in times:
            head["speedup_vs_opencv_dnn_same_threads"] = speedup(f"opencv-dnn@{chosen['threads']}t", key)
        head["meets_bar"] = head["speedup_vs_opencv_dnn"]["ratio"] >= TARGET_OK
    else:
        head.update({"speedup_vs_opencv_dnn": None, "meets_bar": None,
                     "opencv_dnn_error": next(iter(c["errors"].values()), "not run")})
    e2e = {}
    for k, (m, _) in c["e2e"].items():
        m.predict(img)
        e2e[k] = {**_stats(times[k]), "last_timing_ms": {n: round(v, 3) for n, v in m.last_timing.items()}}
    tfl_rows = []
    for tg, p in c["tflite"].items():
        for t in threads:
            xk, bk = f"{tg}:litert-xnnpack@{t}t", f"{tg}:litert-no-xnnpack@{t}t"
            infos = by_key[xk].handle
            tfl_rows.append({"target": tg, "artifact": p.name, "threads": t, "xnnpack_p50_ms": med(xk),
                             "no_xnnpack_p50_ms": med(bk), "xnnpack_speedup": speedup(bk, xk),
                             "delegate_nodes": {"xnnpack": by_key[xk].info.get("delegate_nodes"),
                                                "no_xnnpack": by_key[bk].info.get("delegate_nodes")},
                             "max_abs_diff": pr.max_abs_diff(_deq(by_key[xk].run(), infos),
                                                             _deq(by_key[bk].run(), infos))})
    # the engines compute the same thing (the int8 and fp16-weight IRs also carry their precision's error)
    ref_key = c["ref_key"]
    ref = by_key[ref_key].run()
    equality = {f"{e.key} vs {ref_key}": pr.max_abs_diff(e.run(), ref) for e in c["engines"]
                if e.group == "onnx" and e.key != ref_key and e.artifact == c["onnx"].name}
    for tg in c["irs"]:
        k = f"{tg}:edgekit-openvino@{threads[0]}t"
        equality[f"{k} vs {ref_key}"] = pr.max_abs_diff(by_key[k].run(), ref)
    profile = {"threads": threads[0]}
    cv_engine = next((e for e in c["engines"] if e.engine == "opencv-dnn"), None)
    if cv_engine is not None:
        import cv2

        cv2.setNumThreads(int(threads[0]))
        profile["opencv_dnn"] = pr.opencv_profile(cv_engine.handle, c["x_onnx"], cv_engine.info["outputs"])
    profile["onnxruntime_edgekit_options"] = pr.ort_profile(c["onnx"], c["x_onnx"], threads[0])
    return {"headline": head, "onnx": onnx_rows, "end_to_end": e2e, "tflite": tfl_rows,
            "openvino": [job.summary(times[k], AGREE) for k, job in c["agree"]],
            "output_max_abs_diff": equality, "errors": c["errors"], "profile": profile,
            "engines": {e.key: {"engine": e.engine, "artifact": e.artifact, "group": e.group, "threads": e.threads,
                                **_stats(times[e.key]), "info": e.info} for e in c["engines"]}}


def compare(folder, threads=(1, 2), rounds: int = 8, iters: int = 15, image=None, openvino: bool = True,
            bench_niter: int = 150, ov_rounds: int = 12, log=lambda s: None) -> dict:
    """Build every engine, time them interleaved, and return the result (see the module doc).

    Example:
        >>> res = compare("runs/export/mobilenetv2_050-yolo", rounds=2, iters=3)  # doctest: +SKIP
        >>> res["headline"]["speedup_vs_opencv_dnn"]["ratio"]  # doctest: +SKIP
    """
    import os

    from edgekit.info import environment_info
    from edgekit.runtime.model import read_image

    folder, threads = Path(folder), tuple(threads)
    image_path = Path(image) if image else sorted(SAMPLE_IMAGES.glob("*.jpg"))[0]
    img = read_image(image_path)
    load_before = os.getloadavg()
    c = build_engines(folder, img, threads, openvino, bench_niter)

    def between(r):
        for _, job in c["agree"]:
            job.run_round(r)

    log(f"{len(c['engines'])} engines, {len(c['agree'])} OpenVINO agreement pairs; "
        f"{rounds} rounds x {iters} iterations")
    t0 = time.perf_counter()
    try:
        times = pr.interleave(c["engines"], rounds, iters, between if c["agree"] else None, log)
        for r in range(rounds, ov_rounds if c["agree"] else 0):  # the pairs are noisier than the in-process rows
            between(r)
            log(f"OpenVINO pairs, round {r + 1}/{ov_rounds}")
    finally:
        shutil.rmtree(c["tmp"], ignore_errors=True)
    wall = time.perf_counter() - t0
    env = environment_info()
    res = {"edgekit": env["edgekit"], "model": folder.name, "folder": str(folder), "image": str(image_path),
           "onnx_artifact": c["onnx"].name,
           "what": "pure model inference on one prepared input tensor per artifact (the manifest's letterbox of one "
                   "real image), engine run only; end-to-end predict timed separately under 'end_to_end'",
           "host": {"platform": env["platform"], "cpu": env["cpu"].get("model"), "cores": env["cpu"].get("cores"),
                    "features": env["cpu"].get("features"), "python": env["python"],
                    "loadavg_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
           "versions": {k: env["packages"][k]["version"] for k in ("numpy", "cv2", "onnxruntime", "ai_edge_litert",
                                                                   "openvino")},
           "benchmark_app": pr.benchmark_app_path(), "threads": list(threads), "rounds": rounds,
           "iterations_per_round": iters, "benchmark_app_niter": bench_niter,
           "openvino_pair_rounds": max(rounds, ov_rounds) if c["agree"] else 0, "wall_s": round(wall, 1),
           "method": "interleaved: each round runs every engine for `iterations_per_round` timed calls after one "
                     "untimed call, the order rotating by one engine per round; after each round the OpenVINO "
                     "agreement pairs run (edgekit and benchmark_app, each a fresh process, alternating order; then "
                     "more pair rounds up to `openvino_pair_rounds`); "
                     "p50 over all timed calls; ratio = slower p50 / faster p50 (x faster), with the per-round spread",
           **summarise(c, times, threads, img)}
    res["note"] = explain(res)
    return res


def _kinds(profile: dict | None) -> dict[str, float]:
    return {r["kind"]: r["ms"] for r in (profile or {}).get("by_kind", [])}


def explain(res: dict) -> str:
    """The note: what the numbers of this run say, and why, written from the numbers themselves."""
    h, out = res["headline"], []
    r = h.get("speedup_vs_opencv_dnn")
    if r:
        same = h.get("speedup_vs_opencv_dnn_same_threads")
        out.append(f"Verdict: edgekit's chosen configuration ({h['chosen']['artifact']}, {h['chosen']['backend']}, "
                   f"{h['chosen']['threads']} thread(s); {h['how']}) runs pure inference {r['ratio']:.2f}x as fast as "
                   f"OpenCV DNN at its best thread count ({h['opencv_dnn_best']})"
                   + (f", {same['ratio']:.2f}x at the same thread count" if same else "")
                   + f": the {h['bar']}x bar is {'met' if h['meets_bar'] else 'NOT met'}.")
        if h["chosen"]["artifact"] != Path(res["onnx_artifact"]).name:
            out[-1] += (f" The chosen artifact is {h['chosen'].get('artifact_precision')}, not the fp32 .onnx OpenCV "
                        "DNN runs; on that same fp32 .onnx, edgekit's onnxruntime configuration is " + ", ".join(
                            f"{_fmt_ratio(row['edgekit_vs_opencv_dnn'])} at {row['threads']} thread(s)"
                            for row in res["onnx"]) + " as fast as OpenCV DNN at the same thread count.")
    else:
        out.append(f"OpenCV DNN could not run this model: {h.get('opencv_dnn_error')}.")
    cv, ort = res["profile"].get("opencv_dnn"), res["profile"].get("onnxruntime_edgekit_options")
    if cv and ort:
        a, b = _kinds(cv), _kinds(ort)
        conv = [k for k in a if k in b and "x" in k]
        parts = [f"{k} {a[k]:.2f} vs {b[k]:.2f} ms ({a[k] / b[k]:.1f}x)" for k in conv if b[k] > 0]
        act = sum(ms for k, ms in a.items() if k.startswith("ReLU") or k in ("Clip", "Sigmoid", "Swish"))
        out.append(f"Why OpenCV DNN is slower: it imported all {cv['layers']} layers natively (OpenCV 4.x has no "
                   f"fallback path: an unsupported op fails to load; activations took {act:.2f} ms, i.e. fused into "
                   "the convolutions), so the gap is in the convolution kernels. Per "
                   f"layer kind, OpenCV DNN's own profile vs onnxruntime's profiler at {res['profile']['threads']} "
                   f"thread (sums of per-layer medians): {'; '.join(parts)}; all layers "
                   f"{cv['sum_of_layer_p50_ms']:.2f} vs {ort['sum_of_node_p50_ms']:.2f} ms. onnxruntime also fuses "
                   f"the graph to {ort['nodes']} nodes "
                   f"(blocked NCHWc layout, activation fused into Conv).")
    ortd = res["engines"].get("onnxruntime-default", {}).get("info", {})
    if ortd:
        ek = {row["threads"]: res["engines"][f"edgekit-onnxruntime@{row['threads']}t"]["info"] for row in res["onnx"]
              if row["threads"] > 1}  # a 1-thread session has no pool of its own
        out.append(f"onnxruntime 'default' is InferenceSession(path) with no options: intra_op_num_threads="
                   f"{ortd.get('intra_op_num_threads')} ({ortd.get('threads_note')}). Its worker threads' CPU "
                   f"affinity: {ortd.get('worker_affinity')} (the default pool pins each worker to one core)"
                   + ("; vs " + "; ".join(f"{ek[t].get('worker_affinity')} for edgekit@{t}t" for t in ek)
                      + " (an explicit thread count leaves the scheduler free)" if ek else "")
                   + ". Otherwise edgekit's session differs only by inter_op 1 and Pad_Fusion disabled (a correctness "
                   "fix). Measured: " + "; ".join(
                       f"edgekit@{row['threads']}t {_fmt_ratio(row['edgekit_vs_onnxruntime_default'])} the default"
                       for row in res["onnx"]) + ".")
        n = len(ortd.get("worker_affinity") or []) + 1  # its pool's workers plus the calling thread
        same = next((row["edgekit_vs_onnxruntime_default"] for row in res["onnx"] if row["threads"] == n), None)
        if same:
            straddle = same["per_round_min"] <= 1 <= same["per_round_max"]
            out[-1] += (f" At the default's own thread count ({n}) the per-round ratios "
                        + ("straddle 1: no difference beyond this host's noise." if straddle else
                           "stay on one side of 1: a consistent difference this run does not explain (the pinning "
                           "above is the one visible difference in threading)."))
    ts = res["threads"]
    if len(ts) > 1:
        scale = {}
        for key, e in res["engines"].items():
            other = res["engines"].get(key.replace(f"@{ts[0]}t", f"@{ts[-1]}t"))
            if key.endswith(f"@{ts[0]}t") and other:
                scale[key.split("@")[0]] = e["p50_ms"] / other["p50_ms"]
        la = res["host"]["loadavg_before_after"]
        out.append(f"Threads: speedup of {ts[-1]} threads over {ts[0]} (p50 at {ts[0]} / p50 at {ts[-1]}; above 1 the "
                   "extra thread helped): " + "; ".join(
            f"{k} {v:.2f}" for k, v in scale.items()) + f". The host's {res['host']['cores']} cores are shared with "
            f"other jobs (1-minute load average {la[0]} before, {la[1]} after, on {res['host']['cores']} cores), so "
            "an extra thread often waits for a busy core: the multi-thread rows measure contention as much as scaling, "
            "and the interleaving keeps the ratios within a row fair, not the absolute figures.")
    if res["tflite"]:
        one = [t for t in res["tflite"] if t["threads"] == res["threads"][0]]
        sp = [t["xnnpack_speedup"]["ratio"] for t in one]
        out.append(f"TFLite: XNNPACK (LiteRT's default delegate, which edgekit keeps) is {min(sp):.1f}-{max(sp):.1f}x "
                   f"as fast as TFLite's builtin kernels at {res['threads'][0]} thread (delegate nodes "
                   f"{one[0]['delegate_nodes']['xnnpack']} vs {one[0]['delegate_nodes']['no_xnnpack']}: it really "
                   "was on and off). Max abs output difference with and without it: " + "; ".join(
                       f"{t['target']} {t['max_abs_diff']:.2g}" for t in one) + " (int8: dequantized; XNNPACK and the "
                   "builtin kernels round requantization differently).")
    for row in res["openvino"]:
        if "edgekit_over_benchmark_app" not in row:
            out.append(f"OpenVINO {row['target']} @{row['threads']}t: no comparison ({'; '.join(row['errors'])}).")
            continue
        bench = row["benchmark_app_median_ms"]
        wall, lat, b2b = (row[k] for k in ("edgekit_p50_ms", "edgekit_request_latency_p50_ms",
                                            "edgekit_back_to_back_p50_ms"))
        txt = (f"OpenVINO {row['target']} @{row['threads']}t: edgekit p50 {wall} ms vs benchmark_app median {bench} ms "
               f"= {row['edgekit_over_benchmark_app']:.2f} (per round {row['per_round_min']}-{row['per_round_max']}, "
               f"edgekit's process slower in {row['edgekit_slower_rounds']} of {row['rounds']} rounds): "
               f"{'within' if row['within_10pct'] else 'outside'} 10 %. In edgekit's process: the Python call "
               f"(binding, input copied in, outputs out) {wall - lat:.2f} ms; OpenVINO's own latency of those calls "
               f"{lat} ms; the same request called as benchmark_app calls it (input set once, infer() back to back) "
               f"{b2b} ms = {b2b / bench:.2f} of benchmark_app.")
        if not row["within_10pct"]:
            if abs(b2b / bench - 1) <= AGREE:
                wake = lat - b2b
                txt += (" So the compiled model is as fast as in benchmark_app, whose figure is OpenVINO's own "
                        "latency of back-to-back calls; the gap is edgekit's call pattern: the Python call around each "
                        f"inference ({(wall - lat) / wall:.0%} of this small model's p50)"
                        + (f", and {wake:.2f} ms of OpenVINO's worker threads waking up after the pause between calls "
                           "(back-to-back calls never let them sleep)" if wake > 0.05 else "")
                        + ". An application pays that call on every frame, so edgekit's figure is the one it sees.")
            elif 0.25 <= row["back_to_back_slower_rounds"] / row["rounds"] <= 0.75:
                txt += (" Even back to back it differs, but the rounds disagree on which process is faster "
                        f"(back to back slower in {row['back_to_back_slower_rounds']} of {row['rounds']}): the two "
                        "fresh processes met different contention from other jobs on this shared host.")
            else:
                txt += (" Even back to back, with the same compiled configuration (benchmark_app_config vs "
                        "edgekit_config), edgekit's process was slower in most rounds: this run does not explain "
                        "it; rerun on a quiet host.")
        out.append(txt)
    if res["openvino"]:
        out.append("Both sides of each OpenVINO pair run in fresh processes with the same compile configuration "
                   "(LATENCY hint, INFERENCE_NUM_THREADS, INFERENCE_PRECISION_HINT from edgekit's describe(), given to "
                   "benchmark_app through -load_config because it refuses -nthreads with -hint latency), sync API, -ip "
                   "f32 and edgekit's prepared tensor as -i (not random u8 filling). The in-process edgekit OpenVINO "
                   "p50 (sharing a process with every other engine's thread pool) is in edgekit_in_process_p50_ms.")
    eq = res["output_max_abs_diff"]
    if eq:
        out.append("Outputs (max abs difference to edgekit's onnxruntime run of the .onnx): " + "; ".join(
            f"{k.split(' vs ')[0]} {'-' if v is None else f'{v:.2g}'}" for k, v in eq.items())
            + ". The fp32 engines agree to ~1e-5; the 'openvino' IR stores fp16 weights and the int8 IR is "
              "quantized, so those differences are the artifacts' precision, not engine disagreement.")
    return "\n\n".join(out)


def _fmt_ratio(r) -> str:
    return "-" if not r else f"{r['ratio']:.2f}x [{r['per_round_min']:.2f}-{r['per_round_max']:.2f}]"


def render_markdown(res: dict) -> str:
    """A short Markdown view of the result (the JSON is the data)."""
    h = res["headline"]
    lines = [f"# Peer comparison: {res['model']}", "",
             f"Host: {res['host']['cpu']} ({res['host']['cores']} cores, shared: read ratios, not absolute ms). "
             f"{res['rounds']} interleaved rounds x {res['iterations_per_round']} iterations; {res['what']}.", "",
             f"Command: `{res['command']}`" if "command" in res else "", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()), "",
             f"**Chosen configuration** ({h['how']}): {h['chosen']['artifact']} on {h['chosen']['backend']} at "
             f"{h['chosen']['threads']} thread(s), p50 {h['chosen_p50_ms']} ms; vs OpenCV DNN at its best "
             f"({h.get('opencv_dnn_best', '-')}): **{_fmt_ratio(h.get('speedup_vs_opencv_dnn'))}** "
             f"(bar {h['bar']}x: {'met' if h.get('meets_bar') else 'NOT met'})", "",
             "| threads | edgekit p50 ms | ORT default p50 ms | OpenCV DNN p50 ms | edgekit vs OpenCV "
             "| edgekit vs ORT default | ORT default vs OpenCV |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["onnx"]:
        lines.append(f"| {r['threads']} | {r['edgekit_p50_ms']} | {r['onnxruntime_default_p50_ms']} | "
                     f"{r['opencv_dnn_p50_ms'] or '-'} | {_fmt_ratio(r['edgekit_vs_opencv_dnn'])} | "
                     f"{_fmt_ratio(r['edgekit_vs_onnxruntime_default'])} | "
                     f"{_fmt_ratio(r['onnxruntime_default_vs_opencv_dnn'])} |")
    lines += ["", "Ratios: x faster, p50 over p50, [min-max of the per-round ratios].", ""]
    if res["tflite"]:
        lines += ["| TFLite artifact | threads | XNNPACK p50 ms | no XNNPACK p50 ms | XNNPACK speedup | max abs diff |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in res["tflite"]:
            lines.append(f"| {r['target']} | {r['threads']} | {r['xnnpack_p50_ms']} | {r['no_xnnpack_p50_ms']} | "
                         f"{_fmt_ratio(r['xnnpack_speedup'])} | {r['max_abs_diff']:.3g} |")
        lines.append("")
    if res["openvino"]:
        lines += ["| OpenVINO IR | threads | edgekit p50 ms | its OpenVINO latency ms | same request back to back ms "
                  "| benchmark_app median ms | edgekit / benchmark_app | within 10 % |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in res["openvino"]:
            if "edgekit_p50_ms" not in r:
                lines.append(f"| {r['target']} | {r['threads']} | - | - | - | - | - | {'; '.join(r['errors'])[:200]} |")
                continue
            lines.append(f"| {r['target']} | {r['threads']} | {r['edgekit_p50_ms']} | "
                         f"{r['edgekit_request_latency_p50_ms']} | {r['edgekit_back_to_back_p50_ms']} | "
                         f"{r['benchmark_app_median_ms']} | {r['edgekit_over_benchmark_app']} "
                         f"[{r['per_round_min']}-{r['per_round_max']}] | {r['within_10pct']} |")
        lines.append("")
    if res["end_to_end"]:
        lines += ["End-to-end predict (letterbox + inference + decode + NMS): " + "; ".join(
            f"{k} p50 {v['p50_ms']} ms (last: {v['last_timing_ms']})" for k, v in res["end_to_end"].items()), ""]
    lines += ["Outputs, max abs difference: " + "; ".join(
        f"{k}: {'-' if v is None else f'{v:.3g}'}" for k, v in res["output_max_abs_diff"].items()), ""]
    if res["errors"]:
        lines += ["Errors: " + "; ".join(f"{k}: {v}" for k, v in res["errors"].items()), ""]
    if res.get("note"):
        lines += ["## Note", "", res["note"], ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", help="export folder (edgekit export --out) holding the .onnx and the other artifacts")
    p.add_argument("--threads", default="1,2", help="thread counts, comma separated (default 1,2)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--iters", type=int, default=15, help="timed iterations per engine per round")
    p.add_argument("--bench-niter", type=int, default=150, help="benchmark_app -niter per round")
    p.add_argument("--ov-rounds", type=int, default=12,
                   help="rounds of each edgekit/benchmark_app pair (at least --rounds)")
    p.add_argument("--image", help="input image (default: the first fish sample test image)")
    p.add_argument("--no-openvino", action="store_true", help="skip the OpenVINO IRs and benchmark_app")
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    a = p.parse_args(argv)
    threads = tuple(int(t) for t in a.threads.split(","))
    res = compare(a.folder, threads, a.rounds, a.iters, a.image, not a.no_openvino, a.bench_niter, a.ov_rounds,
                  log=lambda s: print(s, file=sys.stderr))
    res["command"] = " ".join(["python benchmarks/peer_compare.py", *(argv if argv is not None else sys.argv[1:])])
    from edgekit.io import atomic_write_text

    dest = Path(a.out) / f"peer-{res['model']}.json"
    atomic_write_text(dest, json.dumps(res, indent=1))
    atomic_write_text(dest.with_suffix(".md"), render_markdown(res))
    print(render_markdown(res))
    print(f"-> {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
