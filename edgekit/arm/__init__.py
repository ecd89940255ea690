"""Run artifacts on emulated aarch64 (QEMU user mode): the host side of ``edgekit arm`` and ``verify --arm``.

``edgekit arm setup`` prepares, once, an arm64 Debian Python, the aarch64 wheels of edgekit's
lean extras and QEMU (:mod:`edgekit.arm.setup`); :mod:`edgekit.arm.run` starts a Python in it
on a named Cortex core (:mod:`edgekit.arm.cores`); :mod:`edgekit.arm.verify` compares an
artifact's outputs there with the x86 run; :mod:`edgekit.arm.count` reads the instruction
counts of the TCG plugin (``plugin/insn_count.c``). :mod:`edgekit.arm.guest` is the one module
that runs inside the emulated userland: it imports only numpy and ``edgekit.runtime``, as a board does.

Nothing here is imported by the runtime, and nothing downloads outside ``edgekit arm setup``.
"""
