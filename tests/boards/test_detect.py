"""Board detection from captured /proc/device-tree and /proc/cpuinfo texts (tests/boards/data)."""

import json
import platform
import re
from pathlib import Path

import pytest

from edgekit.boards.detect import _model_hits, detect_board, usb_ids
from edgekit.boards.profiles import list_profiles
from edgekit.cli.main import main

DATA = Path(__file__).resolve().parent / "data"
CAPTURED = {"rpi3bplus": "rpi3bplus", "rpi4": "rpi4", "rpi5": "rpi5", "jetson-nano": "jetson-nano",
            "jetson-orin-nano": "jetson-orin-nano", "imx8mp": "imx8mp", "coral-devboard": "coral-devboard"}
ON_X86 = platform.machine() in ("x86_64", "AMD64")


def read(name, kind):
    path = DATA / f"{name}.{kind}"
    if not path.exists():
        return b"" if kind != "cpuinfo" else ""
    return path.read_bytes() if kind != "cpuinfo" else path.read_text()


def without_board_lines(cpuinfo):
    return "\n".join(line for line in cpuinfo.splitlines() if not re.match(r"(Hardware|Revision|Serial|Model)\b", line))


@pytest.mark.parametrize("capture, board", sorted(CAPTURED.items()))
def test_each_captured_board_is_identified_exactly(capture, board):
    model = read(capture, "model")
    assert model.endswith(b"\0")  # as the kernel writes it
    d = detect_board(model, read(capture, "cpuinfo"), compatible_text=read(capture, "compatible"), usb=[])
    assert (d.name, d.confidence, d.method) == (board, "exact", "device-tree")
    assert d.model == model.decode().rstrip("\0") and d.candidates == (board,)
    # the model string alone decides, and only one profile claims it
    boards = [p for p in list_profiles() if p.kind == "board"]
    assert [p.name for p in _model_hits(d.model, boards)] == [board]


@pytest.mark.parametrize("capture, board", sorted(CAPTURED.items()))
def test_compatible_alone_identifies_the_board(capture, board):
    d = detect_board(b"", "", "aarch64", compatible_text=read(capture, "compatible"), usb=[])
    assert (d.name, d.confidence, d.method) == (board, "exact", "compatible")


def test_what_was_read_is_reported():
    d = detect_board(read("rpi5", "model"), read("rpi5", "cpuinfo"), usb=[])
    assert d.machine == "aarch64" and d.cpu["cores"] == 4 and d.cpu["layout"] == {"0xd0b": 4}
    assert {"neon", "dotprod", "fp16"} <= set(d.cpu["features"])
    assert d.cpu["model"] == "Raspberry Pi 5 Model B Rev 1.0" and d.compatible == ()
    orin = detect_board(read("jetson-orin-nano", "model"), read("jetson-orin-nano", "cpuinfo"), usb=[])
    assert orin.cpu["layout"] == {"0xd42": 6} and "dotprod" in orin.cpu["features"]
    assert json.loads(json.dumps(d.to_dict()))["board"] == "rpi5"


def test_pi_cpuinfo_model_line_without_device_tree():
    # 32-bit Raspberry Pi OS: ARMv7 feature names, Hardware BCM2835 and the Model line
    d = detect_board("", read("rpi3bplus-armv7l", "cpuinfo"), compatible_text="", usb=[])
    assert (d.name, d.confidence, d.method, d.machine) == ("rpi3bplus", "exact", "cpuinfo-model", "armv7l")
    assert d.cpu["features"] == ["neon"] and d.cpu["hardware"] == "BCM2835"


@pytest.mark.parametrize("capture, board", [("rpi4", "rpi4"), ("rpi5", "rpi5"), ("jetson-nano", "jetson-nano"),
                                            ("jetson-orin-nano", "jetson-orin-nano")])
def test_cpu_parts_identify_boards_with_unique_cores(capture, board):
    d = detect_board("", without_board_lines(read(capture, "cpuinfo")), compatible_text="", usb=[])
    assert (d.name, d.confidence, d.method) == (board, "cpu", "cpu-part")


def test_big_little_layout_is_rk3588():
    little = "BogoMIPS\t: 48.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid " \
             "asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
    text = "\n".join(f"processor\t: {i}\n{little}CPU variant\t: {'0x2' if i < 4 else '0x4'}\n"
                     f"CPU part\t: {'0xd05' if i < 4 else '0xd0b'}\nCPU revision\t: 0\n" for i in range(8))
    d = detect_board("", text, compatible_text="", usb=[])
    assert (d.name, d.confidence) == ("rk3588", "cpu") and d.cpu["layout"] == {"0xd05": 4, "0xd0b": 4}
    assert detect_board("Radxa ROCK 5B\0", text, usb=[]).confidence == "exact"
    assert detect_board("", text, compatible_text=b"radxa,rock-5b\0rockchip,rk3588\0", usb=[]).name == "rk3588"


def test_quad_a53_is_ambiguous_and_says_so():
    text = without_board_lines(read("imx8mp", "cpuinfo"))
    d = detect_board("", text, compatible_text="", usb=[])
    assert d.confidence == "ambiguous" and d.method == "cpu-part"
    assert set(d.candidates) == {"coral-devboard", "imx8mp", "rpi3bplus", "rpizero2w"}
    assert d.name == d.candidates[0] and "the CPU (4x cortex-a53) fits" in d.reason
    # a Raspberry Pi kernel's Hardware line narrows it to the A53 Pis
    pi = detect_board("", text + "\nHardware\t: BCM2835\n", compatible_text="", usb=[])
    assert set(pi.candidates) == {"rpi3bplus", "rpizero2w"}


def test_captured_x86_host_is_generic():
    d = detect_board("", read("x86-host", "cpuinfo"), compatible_text="", usb=[])
    assert (d.name, d.confidence, d.method, d.machine) == ("x86-64", "generic", "machine", "x86_64")
    assert d.cpu["cores"] == 2 and {"avx2", "fma"} <= set(d.cpu["features"])


def test_unknown_machine_gives_no_profile():
    d = detect_board("", "processor\t: 0\nisa\t\t: rv64imafdc\n", "riscv64", compatible_text="", usb=[])
    assert d.profile is None and d.confidence == "unknown" and "no profile matches" in d.reason
    assert detect_board("Some Vendor Board\0", "", "aarch64", compatible_text="", usb=[]).confidence == "unknown"


def test_reads_a_board_filesystem_and_attached_coral(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(read("rpi5", "model"))
    (tmp_path / "proc/device-tree/compatible").write_bytes(read("rpi5", "compatible"))
    (tmp_path / "proc/cpuinfo").write_text(read("rpi5", "cpuinfo"))
    for dev, ids in {"1-1": ("18d1", "9302"), "usb1": ("1d6b", "0002")}.items():
        (tmp_path / "sys/bus/usb/devices" / dev).mkdir(parents=True)
        (tmp_path / "sys/bus/usb/devices" / dev / "idVendor").write_text(ids[0] + "\n")
        (tmp_path / "sys/bus/usb/devices" / dev / "idProduct").write_text(ids[1] + "\n")
    assert usb_ids(tmp_path) == ["18d1:9302", "1d6b:0002"]
    d = detect_board(root=tmp_path)
    assert (d.name, d.method, d.accelerators) == ("rpi5", "device-tree", ("coral-usb",))
    assert d.model == "Raspberry Pi 5 Model B Rev 1.0" and d.compatible == ("raspberrypi,5-model-b", "brcm,bcm2712")
    # before the runtime loads its firmware the accelerator enumerates as 1a6e:089a
    assert detect_board(b"", "", "x86_64", compatible_text="", usb=["1a6e:089a"]).accelerators == ("coral-usb",)


@pytest.mark.skipif(not ON_X86, reason="this host is not x86-64")
def test_this_host_and_cli_detect_json(capsys):
    d = detect_board()
    assert (d.name, d.confidence) == ("x86-64", "generic") and d.cpu["cores"] >= 1
    assert main(["boards", "detect", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["board"] == "x86-64" and out["profile"]["name"] == "x86-64" and out["read"]["machine"] == "x86_64"
    assert main(["boards", "detect"]) == 0
    assert "board:       x86-64" in capsys.readouterr().out
