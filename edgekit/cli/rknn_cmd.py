"""``edgekit rknn setup [--env DIR] [--json]``: rknn-toolkit2 in a cached venv of its own.

The one step of the ``rknn``/``rknn-int8`` targets that downloads: the toolkit and the packages its
converter and simulator import, from the package index, into ``~/.cache/edgekit/rknn`` (or
``$EDGEKIT_RKNN_ENV``, or ``--env``). Idempotent: a second run reads one file. ``edgekit export
--target rknn-int8`` then converts offline.
"""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("rknn", help="prepare rknn-toolkit2 (its own venv) for the rknn / rknn-int8 targets")
    actions = p.add_subparsers(dest="rknn_action", metavar="ACTION")
    s = actions.add_parser("setup", help="build the rknn-toolkit2 venv from the package index (cached, idempotent)")
    s.add_argument("--env", help="where to build it (default $EDGEKIT_RKNN_ENV, else ~/.cache/edgekit/rknn)")
    s.add_argument("--json", action="store_true", help="print what is installed as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import sys

    from edgekit.errors import EdgekitError
    from edgekit.export.rknn_env import env_dir, setup

    if getattr(args, "rknn_action", None) != "setup":
        raise EdgekitError("give an action: `edgekit rknn setup`")
    state = setup(args.env, log=lambda msg: print(f"rknn setup: {msg}", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({"env": str(env_dir(args.env)), **state}, indent=1))
        return 0
    print(f"rknn-toolkit2 {state['toolkit']} ready in {env_dir(args.env)} ({state['bytes'] / 1e6:.0f} MB, "
          f"built in {state['build_s']:.0f} s; {', '.join(f'{k} {v}' for k, v in sorted(state['versions'].items()))})")
    return 0
