"""``edgekit info``: what this install can do here."""
from __future__ import annotations

def add_parser(sub):
    p = sub.add_parser("info", help="edgekit version, Python, runtimes and converters, CPU features")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)

def run(args) -> int:
    import json
    from edgekit.info import environment_info, format_info
    info = environment_info()
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0
