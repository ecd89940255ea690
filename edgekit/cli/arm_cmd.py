"""``edgekit arm setup [--cache DIR] [--runtimes onnx,tflite,openvino,ncnn] [--json]``: the emulated aarch64 userland.

The one step that downloads: QEMU (apt), Debian's arm64 Python, the aarch64 board install of each
runtime extra, the instruction-count plugin. ``edgekit verify ARTIFACT --arm CORE`` then runs offline.
"""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("arm", help="prepare emulated aarch64 (Cortex-A53/A72/A76) for `verify --arm`")
    actions = p.add_subparsers(dest="arm_action", metavar="ACTION")
    s = actions.add_parser("setup", help="install QEMU, an arm64 Python and the aarch64 runtimes (cached, idempotent)")
    s.add_argument("--cache", help="where to keep it (default $EDGEKIT_ARM_CACHE, else ~/.cache/edgekit/arm)")
    s.add_argument("--runtimes", default="onnx,tflite,openvino,ncnn",
                   help="comma-separated runtime extras to install for aarch64 (default all four)")
    s.add_argument("--no-count", action="store_true", help="skip qemu-user and the instruction-count plugin")
    s.add_argument("--json", action="store_true", help="print what is installed as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from edgekit.arm.setup import cache_dir, setup
    from edgekit.errors import EdgekitError

    if getattr(args, "arm_action", None) != "setup":
        raise EdgekitError("give an action: `edgekit arm setup`")
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    state = setup(args.cache, runtimes, counting=not args.no_count)
    if args.json:
        print(json.dumps({"cache": str(cache_dir(args.cache)), **state}, indent=1))
        return 0
    print(f"emulated aarch64 ready in {cache_dir(args.cache)}")
    print(f"  qemu: {', '.join(state.get('qemu', {}).values())}")
    print(f"  python: {state.get('python')}")
    for extra, site in state.get("site", {}).items():
        if extra in runtimes:
            print(f"  edgekit[{extra}] for aarch64: {site['bytes'] / 1e6:.0f} MB installed "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(site['versions'].items()))})")
    if state.get("plugin"):
        print(f"  instruction-count plugin: {state['plugin']}")
    return 0
