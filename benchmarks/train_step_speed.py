"""Seconds per training step (forward + loss + backward + AdamW): NCHW vs channels-last, and bf16 autocast.

    python benchmarks/train_step_speed.py --models mobilenetv2_050-yolo,mobilenetv2_050-yolo-p3 --imgsz 320 --threads 2

Why edgekit trains in channels-last on CPU: oneDNN's depthwise and 1x1 convolutions are
faster in that layout. ``channels_last_bf16`` runs the forward pass and loss under
``torch.autocast("cpu", dtype=torch.bfloat16)`` (the issue-19 recipe question: does this host's
AVX-512 BF16 shorten a step?). The variants are timed interleaved (median of ``--steps`` each,
after one warm-up step) on random images with a fixed set of boxes, so the ratio holds on
a noisy shared host. Writes ``benchmarks/results/train-step-speed.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def step_seconds(model, loss_fn, opt, x, targets, bf16: bool = False) -> float:
    import torch

    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss, _ = loss_fn(model(x), targets)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="mobilenetv2_050-yolo,mobilenetv2_050-yolo-p3")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int)
    a = p.parse_args(argv)

    import torch

    from edgekit.models import create_model
    from edgekit.train.loss import YoloLoss

    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    for name in a.models.split(","):
        torch.manual_seed(0)
        x = torch.rand(a.batch, 3, a.imgsz, a.imgsz)
        targets = torch.tensor([[i % a.batch, i % 7, 50.0, 50.0, 62.0, 61.0] for i in range(3 * a.batch)])
        runs = {}
        for layout in ("nchw", "channels_last", "channels_last_bf16"):
            fmt = torch.contiguous_format if layout == "nchw" else torch.channels_last
            model = create_model(name, num_classes=7, imgsz=a.imgsz).train().to(memory_format=fmt)
            runs[layout] = (model, YoloLoss(model.head_spec), torch.optim.AdamW(model.parameters(), 1e-3),
                            x.contiguous(memory_format=fmt), [], layout.endswith("bf16"))
            step_seconds(*runs[layout][:4], targets, runs[layout][5])  # warm-up
        for _ in range(a.steps):
            for model, loss_fn, opt, xin, times, bf16 in runs.values():
                times.append(step_seconds(model, loss_fn, opt, xin, targets, bf16))
        med = {k: statistics.median(v[4]) for k, v in runs.items()}
        rows.append({"model": name, "nchw_s": round(med["nchw"], 3), "channels_last_s": round(med["channels_last"], 3),
                     "speedup": round(med["nchw"] / med["channels_last"], 2),
                     "channels_last_bf16_s": round(med["channels_last_bf16"], 3),
                     "bf16_speedup": round(med["channels_last"] / med["channels_last_bf16"], 2)})
        print(f"{name}: NCHW {med['nchw']:.3f} s/step, channels-last {med['channels_last']:.3f} s/step "
              f"({rows[-1]['speedup']:.2f}x), channels-last + bf16 autocast {med['channels_last_bf16']:.3f} s/step "
              f"({rows[-1]['bf16_speedup']:.2f}x of channels-last)", flush=True)
    from edgekit.boards.cpu import cpu_info
    from edgekit.io import atomic_write_text

    result = {"imgsz": a.imgsz, "cpu_flags": [f for f in ("avx512_bf16", "amx_bf16", "avx512_vnni")
                                              if f in open("/proc/cpuinfo").read()], "batch": a.batch, "steps": a.steps, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "cpu": cpu_info()["model"], "rows": rows,
              "command": " ".join(["train_step_speed.py", *(argv if argv is not None else sys.argv[1:])])}
    atomic_write_text(HERE / "results" / "train-step-speed.json", json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
