"""Run ``edgekit ARGV`` in this process and send it a real signal at a chosen point (used by test_interruption.py).

    python interrupt_child.py SIGNAL HOOK -- edgekit-argv...

HOOK is ``module:function:N`` (the signal is sent to this process on the N-th call of that
function, just before the call runs: a deterministic point inside the command) or ``timer:SECONDS``.
Nothing of the command is replaced: the hook calls the real function after signalling.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading

sig_name, hook, sep, *argv = sys.argv[1:]
assert sep == "--", sys.argv
sig = getattr(signal, sig_name)

if hook.startswith("timer:"):
    threading.Timer(float(hook.split(":")[1]), os.kill, (os.getpid(), sig)).start()
else:
    mod_name, attr, n = hook.split(":")
    mod = importlib.import_module(mod_name)
    real, calls = getattr(mod, attr), [0]

    def signalling(*args, **kwargs):
        calls[0] += 1
        if calls[0] == int(n):
            os.kill(os.getpid(), sig)
            if sig == signal.SIGKILL:  # never returns; a stop here is a stop mid-work
                signal.pause()
        return real(*args, **kwargs)

    setattr(mod, attr, signalling)

from edgekit.cli.main import main  # noqa: E402

sys.exit(main(argv))
