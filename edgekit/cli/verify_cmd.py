"""``edgekit verify ARTIFACT --ref MODEL [--data DATA.yaml]``: re-check an artifact against its source.

Raw-output parity on real images (per-precision tolerances) and, with labelled data, the
mAP gate: the same checks ``edgekit export`` runs on every artifact. Exit 1 when one fails.

``edgekit verify ARTIFACT --arm cortex-a53|cortex-a72|cortex-a76 [--ref MODEL] [--data DATA] [--count]``
runs the artifact on an emulated Cortex core from the aarch64 board install (prepared by
``edgekit arm setup``) and compares it with this host's run of the same file
(:func:`edgekit.arm.verify.verify_arm`); ``--ref`` adds the ARM run's parity with the source.
"""

from __future__ import annotations

from edgekit.cli.ranges import fraction, whole

ARM_CORES = ("cortex-a53", "cortex-a72", "cortex-a76")


def add_parser(sub):
    p = sub.add_parser("verify", help="check an exported artifact against its source model (parity, mAP)")
    p.add_argument("artifact", help=".onnx, .tflite, OpenVINO .xml or ncnn .param with its manifest")
    p.add_argument("--ref", help="the model it was exported from (.pt, .cfg or .onnx); needed unless --arm")
    p.add_argument("--data", help="data.yaml: also compare mAP on its test (else val) split")
    p.add_argument("--split", help="split for mAP (default test, else val)")
    p.add_argument("--max-map-drop", type=fraction(), help="allowed mAP@0.5 drop (default 0.02 int8, 0.005 float)")
    p.add_argument("--backend", help="run the artifact in this backend instead of the manifest's")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    arm = p.add_argument_group("emulated aarch64 (after `edgekit arm setup`)")
    arm.add_argument("--arm", choices=ARM_CORES, metavar="CORE",
                     help=f"run on this emulated core ({', '.join(ARM_CORES)}) and compare with the x86 run")
    arm.add_argument("--precision", help="pin the ARM runtime's compute precision (fp32, fp16, bf16), or 'native': "
                                         "what the runtime picks itself on that core (default: edgekit's fp32)")
    arm.add_argument("--count", action="store_true", help="also count executed instructions per inference, by class")
    arm.add_argument("--images", type=whole(1, 64), default=4, help="real images compared (default 4; emulation is slow)")
    arm.add_argument("--map-images", type=whole(1, 500), default=16, help="labelled images for the mAP with --data (default 16)")
    arm.add_argument("--cache", help="the `edgekit arm setup` cache (default $EDGEKIT_ARM_CACHE, else ~/.cache/edgekit/arm)")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from edgekit.errors import EdgekitError

    if args.arm:
        return run_arm(args)
    if args.ref is None:
        raise EdgekitError("give the source model with --ref MODEL, or an emulated core with --arm CORE")
    if args.count or args.precision:
        raise EdgekitError("--count and --precision go with --arm CORE")
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


def run_arm(args) -> int:
    import json

    from edgekit.arm.verify import verify_arm
    from edgekit.errors import EdgekitError

    if args.backend:
        raise EdgekitError("--backend does not go with --arm: the ARM run uses the artifact's own runtime")
    r = verify_arm(args.artifact, args.arm, ref=args.ref, data=args.data, split=args.split, precision=args.precision,
                   count=args.count, images=args.images, map_images=args.map_images, cache=args.cache)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0 if r["match"] else 1
    switched = f" (the runtime computed in {r['precision']})" if r["precision"] != r["x86"]["precision"] else ""
    print(f"{r['artifact']} ({r['target']}) on emulated {r['core']}, {r['runtime']} {r['runtime_version']}, "
          f"{r['precision']}{switched}")
    verdict = "outputs match" if r["match"] else "outputs DIFFER"
    print(f"  {verdict} the x86 run on {r['images']} images (max abs {r['max_abs_err']:.3g}, cosine {r['cosine']:.6f}; "
          f"tolerance {r['tolerance']})")
    native = r.get("native_precision")
    if native and native != "fp32" and native not in r["precision"]:  # fp32 is what edgekit pins anyway
        print(f"  left to itself, {r['runtime']} computes in {native} on {r['core']} "
              f"(--precision native checks that)")
    for warning in r.get("runtime_warnings", []):
        print(f"  {r['runtime']} on {r['core']}: {warning}")
    if "map50" in r:
        print(f"  mAP50 under emulation {r['map50']:.4f} vs x86 {r['x86_map50']:.4f} on {r['images']} labelled images")
    if "ref" in r:
        f = r["ref"]
        print(f"  vs source {f['ref']}: {'ok' if f['passed'] else 'FAIL'} (max abs {f['max_abs_err']:.3g}, "
              f"cosine {f['cosine']:.5f}; tolerance {f['tolerance']})")
    if "instructions" in r:
        n = r["instructions"]
        print(f"  instructions per inference: {n['total']:,} (SIMD/FP {n['simd']:,}, loads/stores {n['loads_stores']:,}, "
              f"SDOT/UDOT {n['dot']:,}, FMLA {n['fma']:,})")
    if r.get("host_only_importable"):
        print(f"  warning: the board install can import {', '.join(r['host_only_importable'])}")
    return 0 if r["match"] else 1
