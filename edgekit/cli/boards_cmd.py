"""``edgekit boards [list|show NAME|detect] [--json]``: board profiles and board detection."""
from __future__ import annotations

import argparse


def add_parser(sub):
    p = sub.add_parser("boards", help="board profiles (list, show NAME) and which board this is (detect)")
    p.add_argument("--json", action="store_true", help="print JSON")
    actions = p.add_subparsers(dest="boards_action", metavar="ACTION")
    # SUPPRESS: a sub-command's default must not overwrite a --json given before the action
    a = actions.add_parser("list", help="every profile: name, SoC, cores, accelerators (the default)")
    a.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print a JSON list of profiles")
    a = actions.add_parser("show", help="one profile in full")
    a.add_argument("name", help="profile name or alias (rpi4, pi5, jetson-orin-nano) or a profile .yaml path")
    a.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the profile as JSON")
    a = actions.add_parser("detect", help="identify this machine from /proc/device-tree and /proc/cpuinfo")
    a.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the detection as JSON")
    p.set_defaults(func=run)


def list_rows() -> list[dict]:
    """Every shipped profile as a dict (``name``, ``soc``, ``cores``, ... as in its YAML file).

    Example:
        >>> {"name", "soc", "cores"} <= set(list_rows()[0])
        True
    """
    from edgekit.boards.profiles import list_profiles

    return [p.to_dict() for p in list_profiles()]


def format_table() -> str:
    """The ``edgekit boards list`` table."""
    from edgekit.boards.profiles import list_profiles

    rows = [(p.name, p.kind, p.soc, p.cores_summary(), p.accelerators_summary()) for p in list_profiles()]
    head = ("name", "kind", "soc", "cores", "accelerators")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in [head, *rows]]
    return "\n".join(lines)


def format_detection(d) -> str:
    """Human-readable lines for a :class:`~edgekit.boards.detect.DetectedBoard`."""
    cpu = d.cpu
    lines = [f"board:       {d.name or 'unknown'}" + (f" ({d.profile.title})" if d.profile else ""),
             f"confidence:  {d.confidence} (by {d.method})",
             f"why:         {d.reason}"]
    if len(d.candidates) > 1:
        lines.append(f"candidates:  {', '.join(d.candidates)}")
    lines.append(f"read:        model={d.model or '-'}  machine={d.machine or '-'}  cores={cpu.get('cores', 0)}"
                 f"  cpu={cpu.get('model') or '-'}")
    lines.append(f"features:    {', '.join(cpu.get('features', [])) or '-'}")
    if d.accelerators:
        lines.append(f"attached:    {', '.join(d.accelerators)}")
    if d.profile:
        lines.append(f"runtimes:    {', '.join(d.profile.runtimes)}")
        lines.append(f"targets:     {', '.join(d.profile.recommended_targets)} (recommended, best first)")
    return "\n".join(lines)


def run(args) -> int:
    import json

    import yaml

    action = args.boards_action or "list"
    if action == "list":
        print(json.dumps(list_rows(), indent=2) if args.json else format_table())
    elif action == "show":
        from edgekit.boards.profiles import load_profile

        data = load_profile(args.name).to_dict()
        print(json.dumps(data, indent=2) if args.json else yaml.safe_dump(data, sort_keys=False, width=110).rstrip())
    else:
        from edgekit.boards.detect import detect_board

        d = detect_board()
        print(json.dumps(d.to_dict(), indent=2) if args.json else format_detection(d))
    return 0
