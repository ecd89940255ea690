"""CPU feature parsing from captured /proc/cpuinfo texts."""

from edgekit.boards.cpu import cpu_info, parse_cpuinfo

PI5 = "\n".join(
    f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n" for i in range(4))
PI4 = "\n".join(
    f"processor\t: {i}\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n" for i in range(4))
X86 = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni avx512_bf16\n"


def test_arm_features():
    pi5 = parse_cpuinfo(PI5, "aarch64")
    assert pi5["cores"] == 4 and pi5["cpu_parts"] == ["0xd0b"]
    assert {"neon", "dotprod", "fp16"} <= set(pi5["features"])
    pi4 = parse_cpuinfo(PI4, "aarch64")
    assert pi4["features"] == ["neon"]


def test_x86_features():
    x = parse_cpuinfo(X86, "x86_64")
    assert x["model"] == "AMD EPYC 9R14"
    assert {"avx2", "avx512f", "avx512-vnni", "avx512-bf16"} <= set(x["features"])


def test_this_machine_and_missing_proc(tmp_path):
    assert cpu_info()["cores"] >= 1
    assert cpu_info(str(tmp_path / "none"))["features"] == []
