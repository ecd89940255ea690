"""What the SoC is doing right now: temperature, CPU clocks, governor, throttling.

Benchmarks read this before and after a run: a Pi 4 without a heatsink reaches its 80 C soft
limit in a minute of inference and the firmware lowers the ARM clock, so an FPS figure without
the temperature and throttling state next to it cannot be trusted. Sources, each optional
(an absent sensor gives None, never an error):

- temperature: the board profile's ``thermal.zones`` when given, else every
  ``/sys/class/thermal/thermal_zone*/temp`` (millidegrees C);
- clocks: ``/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq`` (kHz), else the
  ``cpu MHz`` lines of ``/proc/cpuinfo`` (x86 VMs without cpufreq);
- governor: ``scaling_governor`` of each CPU;
- throttling: ``vcgencmd get_throttled`` (Raspberry Pi firmware) when the binary is on PATH,
  decoded bit by bit, plus the kernel's cooling devices (``cur_state > 0`` = being cooled
  down) and whether ``scaling_max_freq`` is below the hardware maximum.

Standard library only.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

# bits of `vcgencmd get_throttled` (Raspberry Pi documentation, "vcgencmd" section)
THROTTLE_BITS = {
    0: "under-voltage", 1: "arm-frequency-capped", 2: "throttled", 3: "soft-temperature-limit",
    16: "under-voltage-occurred", 17: "arm-frequency-capping-occurred", 18: "throttling-occurred",
    19: "soft-temperature-limit-occurred",
}


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip()
    except OSError:
        return None


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def decode_throttled(value: int | str) -> dict:
    """Decode the bit field of ``vcgencmd get_throttled`` (``throttled=0x50005`` or an int).

    Example:
        >>> d = decode_throttled("throttled=0x50005")
        >>> d["now"], d["since_boot"], d["flags"]
        (True, True, ['under-voltage', 'throttled', 'under-voltage-occurred', 'throttling-occurred'])
    """
    if isinstance(value, str):
        m = re.search(r"0x[0-9a-fA-F]+|\d+", value.split("=")[-1])
        value = int(m.group(0), 0) if m else 0
    flags = [name for bit, name in THROTTLE_BITS.items() if value >> bit & 1]
    return {"raw": hex(value), "flags": flags, "now": bool(value & 0xF), "since_boot": bool(value & 0xF0000)}


def vcgencmd_throttled(timeout: float = 2.0) -> dict | None:
    """``vcgencmd get_throttled`` decoded, or None where the binary is absent or fails.

    Example:
        >>> vcgencmd_throttled() is None or "flags" in vcgencmd_throttled()
        True
    """
    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        res = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0 or "throttled=" not in res.stdout:
        return None
    return decode_throttled(res.stdout.strip())


def temperatures(zones: list[str] | tuple[str, ...] | None = None, root: str = "/") -> dict[str, float]:
    """``{sensor name: degrees C}`` of the given sysfs files or glob patterns, else of every thermal zone.

    A thermal zone is named by its ``type`` file (``cpu-thermal``, ``x86_pkg_temp``), a hwmon
    input by the chip's ``name`` and the input's ``label``.

    Example:
        >>> isinstance(temperatures(["/sys/class/thermal/thermal_zone*/temp"]), dict)
        True
    """
    patterns = list(zones) if zones else ["/sys/class/thermal/thermal_zone*/temp"]
    paths = []
    for pattern in patterns:
        full = os.path.join(root, str(pattern).lstrip("/"))
        paths += sorted(glob.glob(full)) if any(c in full for c in "*?[") else [full]
    out = {}
    for p in dict.fromkeys(paths):
        milli = _num(_read(p))
        if milli is None:
            continue
        parent = Path(p).parent
        name = _read(parent / "type") or _read(parent / "name") or parent.name
        label = _read(str(p).replace("_input", "_label")) if str(p).endswith("_input") else None
        name = f"{name}/{label}" if label else name
        key, k = name, 2
        while key in out:  # several zones of one type (e.g. two "acpitz")
            key, k = f"{name}#{k}", k + 1
        # sysfs reports millidegrees; a few old drivers plain degrees
        out[key] = round(milli / 1000.0 if abs(milli) > 200 else milli, 1)
    return out


def cpu_clocks(root: str = "/") -> dict:
    """Current clock of each CPU in MHz, where it came from, and the governors in use.

    Example:
        >>> sorted(cpu_clocks())
        ['freq_capped', 'governor', 'mhz', 'source']
    """
    base = os.path.join(root, "sys/devices/system/cpu")
    cpus = sorted(glob.glob(os.path.join(base, "cpu[0-9]*")), key=lambda p: int(re.sub(r"\D", "", Path(p).name) or 0))
    mhz, governors, capped = [], [], False
    for cpu in cpus:
        cur = _num(_read(os.path.join(cpu, "cpufreq/scaling_cur_freq")))
        if cur is not None:
            mhz.append(round(cur / 1000.0, 1))
        gov = _read(os.path.join(cpu, "cpufreq/scaling_governor"))
        if gov:
            governors.append(gov)
        hw_max = _num(_read(os.path.join(cpu, "cpufreq/cpuinfo_max_freq")))
        sw_max = _num(_read(os.path.join(cpu, "cpufreq/scaling_max_freq")))
        if hw_max and sw_max and sw_max < hw_max:
            capped = True
    source = "cpufreq" if mhz else None
    if not mhz:
        text = _read(os.path.join(root, "proc/cpuinfo")) or ""
        mhz = [round(float(v), 1) for v in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.MULTILINE)]
        source = "cpuinfo" if mhz else None
    governor = None
    if governors:
        governor = governors[0] if len(set(governors)) == 1 else ",".join(sorted(set(governors)))
    return {"mhz": mhz, "source": source, "governor": governor, "freq_capped": capped if source == "cpufreq" else None}


def cooling_devices(root: str = "/") -> list[dict]:
    """Kernel cooling devices that are active now (``cur_state > 0``): CPU frequency or fan throttling.

    Example:
        >>> isinstance(cooling_devices(), list)
        True
    """
    out = []
    for dev in sorted(glob.glob(os.path.join(root, "sys/class/thermal/cooling_device*"))):
        cur, top = _num(_read(os.path.join(dev, "cur_state"))), _num(_read(os.path.join(dev, "max_state")))
        if cur:
            out.append({"type": _read(os.path.join(dev, "type")), "state": int(cur), "max_state": int(top or 0)})
    return out


def system_state(zones: list[str] | tuple[str, ...] | None = None, root: str = "/", vcgencmd: bool = True) -> dict:
    """Temperature, clocks, governor and throttling now; every absent sensor is None.

    Args:
        zones: thermal zone files to read (a board profile's ``thermal.zones``); None reads all.
        root: filesystem root (tests point it at a captured tree).
        vcgencmd: ask the Raspberry Pi firmware (when the binary exists) for its throttling flags.

    Example:
        >>> s = system_state()
        >>> sorted(s)
        ['clock_source', 'cooling', 'cpu_mhz', 'cpu_mhz_mean', 'freq_capped', 'governor', 'load_avg', 'soc_temp_c', 'temps_c', 'throttled']
    """
    temps = temperatures(zones, root)
    clocks = cpu_clocks(root)
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    mhz = clocks["mhz"]
    return {
        # the hottest sensor is the one the firmware throttles on
        "soc_temp_c": max(temps.values()) if temps else None,
        "temps_c": temps or None,
        "cpu_mhz": mhz or None,
        "cpu_mhz_mean": round(sum(mhz) / len(mhz), 1) if mhz else None,
        "clock_source": clocks["source"],
        "governor": clocks["governor"],
        "freq_capped": clocks["freq_capped"],
        "cooling": cooling_devices(root) if os.path.isdir(os.path.join(root, "sys/class/thermal")) else None,
        "throttled": vcgencmd_throttled() if vcgencmd and root == "/" else None,
        "load_avg": load,
    }
