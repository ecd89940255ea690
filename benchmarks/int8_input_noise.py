"""Which convolutions amplify the rounding of their INT8 input: per-layer SQNR with only the input quantized.

    python benchmarks/int8_input_noise.py runs/yolo-fastest-1.1-f4k-full-ft-2.pt \\
        --data ../shared/data/fish4knowledge/data.yaml --name yolo-fastest-1.1-f4k-full-ft-2

Per-tensor INT8 activations round a conv's input to steps of (max - min) / 255. A conv whose
batch-norm-folded filters are large while its output is small (taps that cancel) multiplies that
rounding noise: the layer loses SQNR however well its weights quantize, and keeping the layer
in float does not help while its input stays INT8. For every ``Conv2d`` this runs the float
model on ``--images`` training images, rounds the conv's input to 256 levels over its observed
min..max (what a min/max calibrator does), and measures the SQNR of the conv + batch norm
output against float, alongside the largest folded filter norm per output channel relative to
that channel's output std (the amplification). Nothing else is quantized, so each row is that
layer's own share. Writes ``benchmarks/results/int8-input-noise-<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of ``test`` against ``ref``, dB.

    >>> round(sqnr_db(np.array([1.0, -1.0]), np.array([1.1, -0.9])), 1)
    20.0
    """
    noise = float(np.mean((ref - test) ** 2))
    return 99.0 if noise == 0 else round(10 * np.log10(float(np.mean(ref ** 2)) / noise), 2)


def round_per_tensor(x, levels: int = 256):
    """``x`` rounded to ``levels`` steps over its own min..max (a min/max INT8 calibration of one tensor)."""
    lo, hi = float(x.min()), float(x.max())
    step = (hi - lo) / (levels - 1) or 1.0
    return ((x - lo) / step).round() * step + lo


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a detector checkpoint")
    p.add_argument("--data", required=True, help="data.yaml: images from its train split")
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--name", required=True)
    p.add_argument("--top", type=int, default=12, help="rows printed (the file has all)")
    a = p.parse_args(argv)

    import torch

    from edgekit.data import load_dataset
    from edgekit.models.checkpoint import load_checkpoint
    from edgekit.runtime.preprocess import fit_image
    from edgekit.runtime.model import read_image

    torch.set_num_threads(1)
    model, ck = load_checkpoint(a.model)
    model.eval()
    imgsz, resize = ck.get("imgsz", 320), ck.get("resize", "letterbox")
    recs = load_dataset(a.data).split("train")
    recs = [recs[i] for i in np.linspace(0, len(recs) - 1, min(a.images, len(recs))).astype(int)]
    x = np.stack([fit_image(read_image(r.path)[..., ::-1], imgsz, resize=resize)[0] for r in recs]).astype(np.float32) / 255
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    # each conv with the batch norm right after it (its parent's .bn, as edgekit's ConvBNAct has it)
    pairs = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Conv2d):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            bn = getattr(parent, "bn", None) if getattr(parent, "conv", None) is mod else None
            pairs.append((name, mod, bn if isinstance(bn, torch.nn.BatchNorm2d) else None))
    inputs: dict[str, torch.Tensor] = {}
    hooks = [conv.register_forward_hook(lambda m, i, o, n=name: inputs.__setitem__(n, i[0].detach()))
             for name, conv, _ in pairs]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()

    rows = []
    with torch.no_grad():
        for name, conv, bn in pairs:
            if name not in inputs:
                continue
            inp = inputs[name]
            post = (lambda t: bn(t)) if bn is not None else (lambda t: t)
            ref, got = post(conv(inp)), post(conv(round_per_tensor(inp)))
            w = conv.weight
            if bn is not None:  # the filters the INT8 model runs: batch norm folded in
                w = w * (bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(-1, 1, 1, 1)
            gain = (w.flatten(1).norm(dim=1) / ref.std(dim=(0, 2, 3)).clamp_min(1e-12)).max()
            rows.append({"layer": name, "groups": conv.groups, "out_channels": conv.out_channels,
                         "input_range": [round(float(inp.min()), 3), round(float(inp.max()), 3)],
                         "input_sqnr_db": sqnr_db(inp.numpy(), round_per_tensor(inp).numpy()),
                         "output_sqnr_db": sqnr_db(ref.numpy(), got.numpy()),
                         "max_filter_norm_over_output_std": round(float(gain), 2)})
    worst = sorted(rows, key=lambda r: r["output_sqnr_db"])
    out = {"model": a.model, "data": a.data, "images": len(recs), "imgsz": imgsz, "resize": resize,
           "method": "per conv: input rounded to 256 levels over its min..max, everything else float; SQNR of "
                     "conv + batch norm output vs float", "layers": rows,
           "worst": [r["layer"] for r in worst[:a.top]],
           "command": "python benchmarks/int8_input_noise.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    path = HERE / "results" / f"int8-input-noise-{a.name}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    for r in worst[:a.top]:
        print(f"{r['layer']:24s} groups {r['groups']:3d}  input {r['input_sqnr_db']:5.1f} dB -> output "
              f"{r['output_sqnr_db']:5.1f} dB  filter/output {r['max_filter_norm_over_output_std']:6.1f}")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
