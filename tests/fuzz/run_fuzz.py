"""``make fuzz``: run the property tests of tests/fuzz again and again, with fresh random inputs, for a time.

    python tests/fuzz/run_fuzz.py [SECONDS] [EXAMPLES_PER_ROUND]

Each round is one pytest session under the ``fuzz`` hypothesis profile (EXAMPLES_PER_ROUND examples per
property, no deadline); hypothesis keeps any failing example in .hypothesis/ and replays it first in
the next run. Prints one JSON summary (rounds, examples per property, failures) and writes it to
build/fuzz.json; exits 1 at the first failing round.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(seconds: float = 600.0, per_round: int = 400) -> int:
    t0 = time.monotonic()
    totals: Counter = Counter()
    rounds, failed = 0, 0
    while time.monotonic() - t0 < seconds:  # the last round may run past: at least `seconds` of fuzzing
        counts = Path(tempfile.mkstemp(suffix=".json")[1])
        env = {**os.environ, "HYPOTHESIS_PROFILE": "fuzz", "FUZZ_EXAMPLES": str(per_round), "FUZZ_COUNTS": str(counts)}
        r0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/fuzz"], cwd=ROOT,
                             env=env, capture_output=True, text=True)
        last_round = time.monotonic() - r0
        rounds += 1
        try:
            data = json.loads(counts.read_text())
        except (OSError, ValueError):
            data = {"examples": {}, "failed": 1}
        counts.unlink(missing_ok=True)
        totals.update(data["examples"])
        print(f"round {rounds}: {sum(data['examples'].values())} examples in {last_round:.0f} s, "
              f"{data['failed']} failed", file=sys.stderr, flush=True)
        if res.returncode != 0:
            failed = data["failed"] or 1
            print(res.stdout[-6000:], file=sys.stderr)
            break
    summary = {"seconds": round(time.monotonic() - t0), "rounds": rounds, "examples": sum(totals.values()),
               "per_property": dict(sorted(totals.items())), "failed_tests": failed}
    out = ROOT / "build" / "fuzz.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*(float(a) if i == 0 else int(a) for i, a in enumerate(sys.argv[1:]))))
