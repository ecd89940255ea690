"""edgekit: take vision models from the workstation to embedded boards, with proof.

The host side (``edgekit``, ``edgekit.export``) trains, converts and verifies models;
the device side (``edgekit.runtime``, ``edgekit.boards``) runs them with numpy and one
interpreter. Importing ``edgekit`` imports nothing heavy: no torch, no probing.
"""

__version__ = "0.1.0"
