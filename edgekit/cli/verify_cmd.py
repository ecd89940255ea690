"""``edgekit verify ARTIFACT --ref MODEL [--data DATA.yaml]``: re-check an artifact against its source.

Raw-output parity on real images (per-precision tolerances) and, with labelled data, the
mAP gate: the same checks ``edgekit export`` runs on every artifact. Exit 1 when one fails.
"""

from __future__ import annotations

from edgekit.cli.ranges import fraction


def add_parser(sub):
    p = sub.add_parser("verify", help="check an exported artifact against its source model (parity, mAP)")
    p.add_argument("artifact", help=".onnx, .tflite, OpenVINO .xml or ncnn .param with its manifest")
    p.add_argument("--ref", required=True, help="the model it was exported from (.pt, .cfg or .onnx)")
    p.add_argument("--data", help="data.yaml: also compare mAP on its test (else val) split")
    p.add_argument("--split", help="split for mAP (default test, else val)")
    p.add_argument("--max-map-drop", type=fraction(), help="allowed mAP@0.5 drop (default 0.02 int8, 0.005 float)")
    p.add_argument("--backend", help="run the artifact in this backend instead of the manifest's")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from edgekit.export.verify import verify_artifact

    r = verify_artifact(args.artifact, args.ref, args.data, args.split, args.max_map_drop, backend=args.backend,
                        verbose=args.verbose)
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        p = r["parity"]
        print(f"{r['artifact']} ({r['target']}) vs {r['ref']}")
        if "error" in p:
            print(f"  parity: FAIL ({p['error']})")
        else:
            steps = f", {p['max_steps']:.1f} quantization steps" if "max_steps" in p else ""
            print(f"  parity on {p['images']} images: {'ok' if p['passed'] else 'FAIL'} (max abs {p['max_abs']:.3g}, "
                  f"cosine {p['cosine']:.5f}{steps}; tolerance {p['tolerance']})")
        if r["map"]:
            m = r["map"]
            ci = m.get("delta_map50_ci95")
            ci = f" [95% {-ci[1]:+.3f}..{-ci[0]:+.3f}]" if ci else ""
            print(f"  mAP50 {m['map50']:.4f} vs source {m['source_map50']:.4f} (delta {-m['delta_map50']:+.4f}{ci}, "
                  f"allowed -{m['max_map_drop']}) on {m['images']} {m['split']} images: {'ok' if m['passed'] else 'FAIL'}")
    return 0 if r["passed"] else 1
