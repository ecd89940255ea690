"""The board-profile schema and its checks: one clear line per mistake (file, key, fix).

Used by :mod:`edgekit.boards.profiles`; kept apart so the data classes stay short. Types and
names only, no I/O: :func:`validate` takes the parsed YAML.
"""

from __future__ import annotations

import difflib
import re

from edgekit.boards.cpu import ARM_FEATURES, ARM_PARTS, X86_FEATURES
from edgekit.errors import EdgekitError

KINDS = ("board", "accelerator", "host")
ARCHES = ("aarch64", "armv7l", "x86_64", "any")
ACCELERATOR_KINDS = ("gpu", "npu", "tpu", "dsp")
ISA_NAMES = frozenset(ARM_FEATURES.values()) | frozenset(X86_FEATURES.values())
# an export target name is format[-precision] (the target registry is host-side, above this layer:
# tests/boards check every shipped profile's targets against edgekit.export.targets.TARGETS)
TARGET_NAME = re.compile(r"[a-z0-9]+(-(fp32|fp16|bf16|int8|int4|uint8))?")
EXAMPLE = "boards/rpi4.yaml"

# the schema: key -> (type, required). Types: "str", "int", "num" (int or float), "?" suffix
# for "may be null", [spec] for a list, "map" for a name -> string mapping, a dict for a section.
CORE = {"type": ("str", True), "count": ("int?", True), "clock_ghz": ("num?", True), "part": ("str?", False),
        "fp32_flops_per_cycle": ("int?", False), "fp16_flops_per_cycle": ("int?", False),
        "int8_ops_per_cycle": ("int?", False), "pipeline": ("str?", False), "note": ("str", False)}
PIPELINES = ("in-order", "out-of-order")  # the latency estimator's core-type factor (edgekit.estimate)
MEMORY = {"type": ("str", True), "sizes_gb": (["num"], True), "bus_bits": ("int?", False),
          "bandwidth_gbs": ("num?", False), "note": ("str", False)}
ACCELERATOR = {"kind": ("str", True), "name": ("str", True), "int8_tops": ("num?", False),
               "fp16_tflops": ("num?", False), "precision": (["str"], False), "delegate": ("str?", False),
               "note": ("str", False)}
THERMAL = {"zones": (["str"], False), "commands": (["str"], False), "throttle_c": ("num?", False), "note": ("str", False)}
MATCH = {"model": (["str"], False), "compatible": (["str"], False), "hardware": (["str"], False),
         "machine": (["str"], False), "usb_ids": (["str"], False)}
SOURCE = {"what": ("str", True), "url": ("str", True)}
SCHEMA = {"name": ("str", True), "title": ("str", True), "kind": ("str", True), "soc": ("str", True),
          "arch": ("str", True), "cores": ([CORE], True), "isa": (["str"], True), "memory": (MEMORY, False),
          "accelerators": ([ACCELERATOR], False), "runtimes": (["str"], True), "delegates": ("map", False),
          "recommended_targets": (["str"], True), "thermal": (THERMAL, False), "match": (MATCH, True),
          "aliases": (["str"], False), "notes": (["str"], False), "sources": ([SOURCE], True)}


def _fail(src: str, message: str) -> EdgekitError:
    return EdgekitError(f"board profile {src}: {message}")


def _describe(spec) -> str:
    if isinstance(spec, dict):
        return "a mapping"
    if isinstance(spec, list):
        return f"a list of {_describe(spec[0]).removeprefix('a ').removeprefix('an ')}s"
    base = {"str": "a string", "int": "an integer", "num": "a number", "map": "a mapping of name: string"}[spec.rstrip("?")]
    return base + (" or null" if spec.endswith("?") else "")


def _check(value, spec, where: str, src: str) -> None:
    def wrong():
        shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
        return _fail(src, f"'{where}' should be {_describe(spec)}, not {type(value).__name__} {shown}: fix the value")

    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise wrong()
        prefix = f"{where}." if where else ""
        for key in value:
            if key not in spec:
                # a renamed key usually leaves its real name missing: suggest that first
                missing = [k for k in spec if k not in value]
                close = ([k for k in missing if k in str(key) or str(key) in k]
                         or difflib.get_close_matches(str(key), missing, n=1, cutoff=0.5)
                         or difflib.get_close_matches(str(key), list(spec), n=1))
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise _fail(src, f"unknown key '{prefix}{key}'{hint}: rename or remove it "
                                 f"(allowed: {', '.join(spec)})")
        for key, (_, required) in spec.items():
            if required and key not in value:
                raise _fail(src, f"missing required key '{prefix}{key}': add it (see {EXAMPLE} for a complete profile)")
        for key, item in value.items():
            _check(item, spec[key][0], prefix + str(key), src)
    elif isinstance(spec, list):
        if not isinstance(value, list):
            raise wrong()
        for i, item in enumerate(value):
            _check(item, spec[0], f"{where}[{i}]", src)
    elif spec == "map":
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise wrong()
    else:
        if value is None and spec.endswith("?"):
            return
        base = spec.rstrip("?")
        ok = {"str": isinstance(value, str), "int": isinstance(value, int) and not isinstance(value, bool),
              "num": isinstance(value, (int, float)) and not isinstance(value, bool)}[base]
        if not ok:
            raise wrong()


def _check_values(data: dict, stem: str, src: str) -> None:
    """Checks beyond types: names, enumerations, target names, regexes, cross-references."""
    def one_of(key, value, allowed):
        if value not in allowed:
            raise _fail(src, f"'{key}' is '{value}': use one of {', '.join(allowed)}")

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", data["name"]) or data["name"] != stem:
        raise _fail(src, f"'name' is '{data['name']}': it must equal the file name '{stem}' (lower case, digits, '-')")
    one_of("kind", data["kind"], KINDS)
    one_of("arch", data["arch"], ARCHES)
    if not data["cores"] and data["kind"] != "accelerator":
        raise _fail(src, "'cores' is empty: list the CPU clusters (only accelerator profiles have none)")
    for i, core in enumerate(data["cores"]):
        if core.get("pipeline") is not None:
            one_of(f"cores[{i}].pipeline", core["pipeline"], PIPELINES)
        known = ARM_PARTS.get((core.get("part") or "").lower())
        if known and core["type"] != known:
            raise _fail(src, f"'cores[{i}]' has part {core['part']}, which is {known}, but type '{core['type']}': "
                             f"fix the type or the part")
    for i, isa in enumerate(data["isa"]):
        one_of(f"isa[{i}]", isa, sorted(ISA_NAMES))
    for i, target in enumerate(data["recommended_targets"]):
        if not TARGET_NAME.fullmatch(target):
            raise _fail(src, f"'recommended_targets[{i}]' is '{target}': write an export target name, format or "
                             f"format-precision in lower case (see `edgekit export --list`)")
    for i, rt in enumerate(data["runtimes"]):
        if not re.fullmatch(r"[a-z0-9-]+(\+[a-z0-9-]+)?", rt):
            raise _fail(src, f"'runtimes[{i}]' is '{rt}': write runtime or runtime+delegate in lower case")
    delegates = data.get("delegates") or {}
    for i, acc in enumerate(data.get("accelerators") or []):
        one_of(f"accelerators[{i}].kind", acc["kind"], ACCELERATOR_KINDS)
        if acc.get("delegate") and acc["delegate"] not in delegates:
            raise _fail(src, f"'accelerators[{i}].delegate' is '{acc['delegate']}' but 'delegates' has no such "
                             f"entry: add it there with its library path")
    match = data["match"]
    for key in ("model", "hardware"):
        for i, rx in enumerate(match.get(key) or []):
            try:
                re.compile(rx)
            except re.error as exc:
                raise _fail(src, f"'match.{key}[{i}]' is not a valid regular expression ({exc}): fix it") from None
    for i, compat in enumerate(match.get("compatible") or []):
        if not re.fullmatch(r"[a-z0-9-]+,[\w.+-]+", compat):
            raise _fail(src, f"'match.compatible[{i}]' is '{compat}': write vendor,device in quotes "
                             f"(YAML splits an unquoted [a,b] list at the comma)")
    for i, usb in enumerate(match.get("usb_ids") or []):
        if not re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{4}", usb):
            raise _fail(src, f"'match.usb_ids[{i}]' is '{usb}': write vendor:product in lower-case hex, e.g. 18d1:9302")
    if not data["sources"]:
        raise _fail(src, "'sources' is empty: cite where the figures come from ({what, url})")
    for i, s in enumerate(data["sources"]):
        if not s["url"].startswith(("https://", "http://")):
            raise _fail(src, f"'sources[{i}].url' is '{s['url']}': give a web address (https://...)")


def validate(data, src: str, stem: str) -> None:
    """Check parsed YAML against :data:`SCHEMA` and the value rules; ``stem`` is the expected name.

    Raises:
        EdgekitError: ``board profile FILE: <what is wrong with which key>: <the fix>``.

    Example:
        >>> validate({"name": "x"}, "x.yaml", "x")
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: board profile x.yaml: missing required key 'title': add it (see boards/rpi4.yaml for a complete profile)
    """
    _check(data, SCHEMA, "", src)
    _check_values(data, stem, src)
