"""An arm64 Debian userland without chroot or emulated install scripts: a private apt, then ``dpkg -x``.

apt gets its own state, cache and sources under the edgekit ARM cache (an arm64-only config in
``APT_CONFIG``), so the host's dpkg database is never touched and no root-owned apt state is
needed for the arm64 side. The same private apt fetches Debian's qemu source package, whose
``qemu-plugin.h`` the instruction-count plugin is compiled against (Debian ships no header).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from edgekit.errors import EdgekitError

MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
# what an arm64 Python needs to start and to load the runtimes' C++ extensions; apt adds the rest
SYSROOT_PACKAGES = ("python3.11", "libstdc++6", "libgcc-s1")
PYTHON = "usr/bin/python3.11"


def codename() -> str:
    """The Debian suite of this host (``bookworm``), for the arm64 packages that match its QEMU era.

    Example:
        >>> codename()  # doctest: +SKIP
        'bookworm'
    """
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"') or "bookworm"
    except OSError:
        pass
    return "bookworm"


def private_apt(work: Path, arch: str = "arm64", source: bool = False) -> dict:
    """Write a private apt config under ``work``; the environment that makes apt-get use it."""
    suite = codename()
    state = work / "state"
    for d in (state / "lists" / "partial", work / "cache" / "archives" / "partial"):
        d.mkdir(parents=True, exist_ok=True)
    (state / "status").touch()
    kind = "deb-src" if source else f"deb [arch={arch}]"
    lines = [f"{kind} {MIRROR} {suite} main", f"{kind} {MIRROR} {suite}-updates main",
             f"{kind} {SECURITY} {suite}-security main"]
    (work / "sources.list").write_text("\n".join(lines) + "\n")
    conf = work / "apt.conf"
    conf.write_text(
        f'APT::Architecture "{arch}"; APT::Architectures {{ "{arch}"; }};\n'
        f'Dir::State "{state}"; Dir::State::Lists "{state}/lists"; Dir::State::status "{state}/status";\n'
        f'Dir::Cache "{work}/cache"; Dir::Etc::SourceList "{work}/sources.list"; Dir::Etc::SourceParts "-";\n'
        'pkgCacheGen::Essential "none"; APT::Install-Recommends "false"; Debug::NoLocking "1";\n'
        'APT::Sandbox::User "root";\n')
    return {**os.environ, "APT_CONFIG": str(conf), "DEBIAN_FRONTEND": "noninteractive"}


def _apt(env: dict, *args: str, cwd: Path | None = None) -> None:
    if shutil.which("apt-get") is None:
        raise EdgekitError("apt-get is not on this machine: the arm64 userland comes from Debian packages (use Debian/Ubuntu)")
    r = subprocess.run(["apt-get", "-q", *args], env=env, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise EdgekitError(f"apt-get {' '.join(args[:2])} failed ({last[0][:200]})")


def apt_install(packages: list[str], log) -> None:
    """Install Debian packages with the host's apt (root only); waits for another apt's lock."""
    if shutil.which("apt-get") is None:
        raise EdgekitError(f"{' '.join(packages)}: apt-get is not on this machine; install them with your package manager")
    if os.geteuid() != 0:
        raise EdgekitError(f"{' '.join(packages)} are not installed and installing them needs root: "
                           f"sudo apt-get install {' '.join(packages)}")
    log(f"apt-get install {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *lock, *packages],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:  # stale lists on a fresh machine: update once, then retry
        subprocess.run(["apt-get", "update", "-qq", *lock], env=env, capture_output=True)
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *lock, *packages],
                           env=env, capture_output=True, text=True)
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise EdgekitError(f"apt-get install {' '.join(packages)} failed ({why[:200]})")


def build_sysroot(dest: Path, work: Path, log) -> Path:
    """Download the arm64 Python and its libraries with the private apt and unpack them into ``dest``.

    Example:
        >>> build_sysroot(Path("~/.cache/edgekit/arm/sysroot"), Path("/tmp/apt"), print)  # doctest: +SKIP
    """
    env = private_apt(work)
    log("arm64 sysroot: apt-get update (private arm64 lists)")
    _apt(env, "update")
    log(f"arm64 sysroot: downloading {' '.join(SYSROOT_PACKAGES)} and their dependencies")
    _apt(env, "install", "-y", "--download-only", *SYSROOT_PACKAGES)
    debs = sorted((work / "cache" / "archives").glob("*_arm64.deb")) + sorted((work / "cache" / "archives").glob("*_all.deb"))
    if not debs:
        raise EdgekitError("apt downloaded no arm64 packages")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"arm64 sysroot: unpacking {len(debs)} packages with dpkg -x")
    for deb in debs:
        r = subprocess.run(["dpkg", "-x", str(deb), str(tmp)], capture_output=True, text=True)
        if r.returncode != 0:
            raise EdgekitError(f"dpkg -x {deb.name} failed ({r.stderr.strip()[:200]})")
    if not (tmp / PYTHON).is_file():
        raise EdgekitError(f"the arm64 packages hold no {PYTHON}")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def plugin_header(dest: Path, work: Path, log) -> Path:
    """``qemu-plugin.h`` of the installed QEMU, from Debian's qemu source package (header only is kept).

    Example:
        >>> plugin_header(Path("/tmp/inc"), Path("/tmp/apt-src"), print).name  # doctest: +SKIP
        'qemu-plugin.h'
    """
    header = dest / "qemu-plugin.h"
    if header.is_file():
        return header
    env = private_apt(work, arch="amd64", source=True)
    log("qemu plugin header: apt-get source --download-only qemu (private deb-src lists)")
    _apt(env, "update")
    work.mkdir(parents=True, exist_ok=True)
    _apt(env, "source", "--download-only", "qemu", cwd=work)
    origs = sorted(work.glob("qemu_*.orig.tar.*"))
    if not origs:
        raise EdgekitError("the qemu source package has no orig tarball")
    with tarfile.open(origs[-1]) as tar:
        member = next((m for m in tar if m.name.endswith("include/qemu/qemu-plugin.h")), None)
        if member is None:
            raise EdgekitError(f"{origs[-1].name} holds no include/qemu/qemu-plugin.h")
        data = tar.extractfile(member).read()
    dest.mkdir(parents=True, exist_ok=True)
    header.write_bytes(data)
    for f in work.glob("qemu_*"):  # 24 MB of source: only the header is needed
        f.unlink()
    return header
