"""Hypothesis profiles for the property tests: a few examples in ``make test``, many in ``make fuzz``.

``HYPOTHESIS_PROFILE=fuzz`` (what ``make fuzz`` sets) runs each property many times with no deadline;
``FUZZ_COUNTS=file.json`` makes the session write how many examples each property ran.
"""

from __future__ import annotations

import json
import os
from collections import Counter

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=40, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "3000")), deadline=None,
                          print_blob=True, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

EXAMPLES: Counter = Counter()


def count(name: str) -> None:
    """One example of property ``name`` ran (the figure ``make fuzz`` reports)."""
    EXAMPLES[name] += 1


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("FUZZ_COUNTS")
    if path:
        with open(path, "w") as f:
            json.dump({"examples": dict(EXAMPLES), "failed": session.testsfailed}, f)
