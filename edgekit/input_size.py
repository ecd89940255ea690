"""A model's input size: one int for a square input, (height, width) for a rectangular one.

Wide frames waste compute at a square input (a 16:9 camera stretched or letterboxed to 320x320 spends
44 % of it on pads or on stretching); ``--imgsz 384x224`` trains, validates and exports at 384 wide by
224 high. The checkpoint keeps an int for a square size (as before) and ``[h, w]`` otherwise.

Example:
    >>> input_hw(320), input_hw([224, 384]), stored_size((320, 320)), stored_size((224, 384))
    ((320, 320), (224, 384), 320, [224, 384])
    >>> size_text((224, 384))
    '384x224'
"""

from __future__ import annotations


def input_hw(imgsz) -> tuple[int, int]:
    """(height, width) of an int (square) or an (h, w) pair."""
    if isinstance(imgsz, (list, tuple)):
        h, w = imgsz
        return int(h), int(w)
    return int(imgsz), int(imgsz)


def stored_size(imgsz) -> int | list[int]:
    """The checkpoint's ``imgsz``: an int when square, else ``[h, w]``."""
    h, w = input_hw(imgsz)
    return h if h == w else [h, w]


def size_text(imgsz) -> str:
    """As ``--imgsz`` takes it: ``320`` or ``WIDTHxHEIGHT``."""
    h, w = input_hw(imgsz)
    return str(h) if h == w else f"{w}x{h}"
