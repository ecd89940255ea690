"""Reading Darknet ``.cfg`` files into sections, with errors that name the line.

The format is INI-like: ``[section]`` headers, ``key=value`` lines, ``#`` or ``;``
comments. Darknet removes every blank inside a line before splitting at ``=`` (so
``anchors = 10,14,  23,27`` works); this reader does the same. Host side, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import EdgekitError

# Darknet's own short names for sections
ALIASES = {"conv": "convolutional", "max": "maxpool", "avg": "avgpool", "network": "net",
           "drop": "dropout", "soft": "softmax"}

_REQUIRED = object()


@dataclass
class Section:
    """One ``[kind]`` block of a cfg and its options (values kept as text).

    Attributes:
        kind: section name, aliases resolved (``conv`` -> ``convolutional``).
        options: key -> raw value.
        line: 1-based line of the header, for messages.
        source: file name, for messages.
    """

    kind: str
    line: int
    source: str = "cfg"
    options: dict[str, str] = field(default_factory=dict)

    def where(self) -> str:
        return f"{self.source} line {self.line} [{self.kind}]"

    def error(self, msg: str) -> EdgekitError:
        """An EdgekitError prefixed with the file, line and section."""
        return EdgekitError(f"{self.where()}: {msg}")

    def _get(self, key: str, default, cast, what: str):
        if key not in self.options:
            if default is _REQUIRED:
                raise self.error(f"missing '{key}='")
            return default
        raw = self.options[key]
        try:
            return cast(raw)
        except ValueError:
            raise self.error(f"'{key}={raw}' is not {what}") from None

    def get_int(self, key: str, default=_REQUIRED) -> int:
        """Integer option (Darknet accepts ``1.0`` where it wants an int: so do we)."""
        return self._get(key, default, lambda s: int(float(s)), "a number")

    def get_float(self, key: str, default=_REQUIRED) -> float:
        return self._get(key, default, float, "a number")

    def get_str(self, key: str, default=_REQUIRED) -> str:
        return self._get(key, default, str, "text")

    def get_ints(self, key: str, default=_REQUIRED) -> list[int]:
        """Comma-separated integers; empty items (a trailing comma) are skipped."""
        return self._get(key, default, lambda s: [int(float(v)) for v in s.split(",") if v], "a list of numbers")

    def get_floats(self, key: str, default=_REQUIRED) -> list[float]:
        return self._get(key, default, lambda s: [float(v) for v in s.split(",") if v], "a list of numbers")


def parse_cfg_text(text: str, source: str = "cfg") -> list[Section]:
    """Split cfg text into sections; the first must be ``[net]``.

    Args:
        text: the file's content.
        source: name used in error messages.

    Returns:
        All sections, ``[net]`` first.

    Example:
        >>> s = parse_cfg_text("[net]\\nwidth=32\\nheight=32\\n[conv]\\nfilters = 8\\n")
        >>> [x.kind for x in s], s[1].get_int("filters")
        (['net', 'convolutional'], 8)
    """
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = "".join(raw.split("#", 1)[0].split())
        if not line or line[0] == ";":
            continue
        if line[0] == "[":
            if not line.endswith("]") or len(line) < 3:
                raise EdgekitError(f"{source} line {lineno}: malformed section header '{raw.strip()}'")
            kind = line[1:-1].lower()
            sections.append(Section(ALIASES.get(kind, kind), lineno, source))
        elif "=" in line:
            if not sections:
                raise EdgekitError(f"{source} line {lineno}: option '{raw.strip()}' before any [section]")
            key, value = line.split("=", 1)
            if not key:
                raise EdgekitError(f"{source} line {lineno}: option without a name: '{raw.strip()}'")
            sections[-1].options[key.lower()] = value
        else:
            raise EdgekitError(f"{source} line {lineno}: expected [section] or key=value, got '{raw.strip()}'")
    if not sections:
        raise EdgekitError(f"{source}: no sections: not a Darknet .cfg")
    if sections[0].kind != "net":
        raise EdgekitError(f"{source} line {sections[0].line}: the first section must be [net], got [{sections[0].kind}]")
    if len(sections) == 1:
        raise EdgekitError(f"{source}: [net] but no layers")
    return sections


def read_cfg(path: str | Path) -> list[Section]:
    """Read and parse a ``.cfg`` file (see :func:`parse_cfg_text`).

    Example:
        >>> read_cfg("missing.cfg")
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: Darknet cfg not found: missing.cfg
    """
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"Darknet cfg not found: {path}")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise EdgekitError(f"{path}: not a text file: is it the .weights instead of the .cfg?") from None
    return parse_cfg_text(text, path.name)
