"""Board profiles: every shipped YAML loads and validates; bad files fail with one clear line."""

import dataclasses
import json
from pathlib import Path

import pytest

from edgekit.boards.profiles import (BoardProfile, list_profiles, load_profile, profile_from_dict,
                                     profile_names)
from edgekit.cli.main import main
from edgekit.errors import EdgekitError

BOARDS = Path(__file__).resolve().parents[2] / "boards"
EXPECTED = {"rpi3bplus", "rpi4", "rpi5", "rpizero2w", "jetson-nano", "jetson-orin-nano", "coral-devboard",
            "coral-usb", "imx8mp", "rk3588", "x86-64"}


def test_the_issue_boards_are_all_shipped():
    assert set(profile_names()) == EXPECTED
    assert {p.name for p in list_profiles()} == EXPECTED
    assert [p.name for p in list_profiles("accelerator")] == ["coral-usb"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_profile_loads_and_is_complete(name):
    p = load_profile(name)
    assert isinstance(p, BoardProfile) and p.name == name and p.soc and p.title
    from edgekit.export.targets import TARGETS

    assert set(p.recommended_targets) <= set(TARGETS) and p.recommended_targets
    assert p.runtimes and p.sources and all(s.url.startswith("https://") for s in p.sources)
    for acc in p.accelerators:
        assert acc.delegate is None or p.delegate(acc.delegate)
    if p.kind == "board":
        assert p.arch == "aarch64" and p.cores and all(c.part and c.count and c.clock_ghz for c in p.cores)
        assert "neon" in p.isa and p.memory and p.memory.bandwidth_gbs
        assert p.thermal.zones and p.match.model
    # the same file read by path gives the same profile
    assert load_profile(BOARDS / f"{name}.yaml") == p


def test_a_misspelt_target_is_one_line_naming_the_key():
    from edgekit.errors import EdgekitError

    import yaml

    data = yaml.safe_load((BOARDS / "rpi4.yaml").read_text())
    data["recommended_targets"] = ["tflite_int8"]
    with pytest.raises(EdgekitError, match=r"recommended_targets\[0\]' is 'tflite_int8'"):
        profile_from_dict(data, "x.yaml", "rpi4")


def test_figures_match_the_published_anchors():
    # ANCHORS.md: 4-core FP32 peak 44.8 (Pi 3B+, 1.4 GHz), 57.6 (Pi 4, 1.8 GHz), 153.6 (Pi 5, 2.4 GHz)
    assert [load_profile(n).cpu_peak_gflops() for n in ("rpi3bplus", "rpi4", "rpi5")] == [44.8, 57.6, 153.6]
    assert load_profile("rpi5").isa == ("neon", "dotprod", "fp16", "fp16-simd")
    assert "dotprod" not in load_profile("rpi4").isa
    assert load_profile("rpi4").memory.type == "LPDDR4-3200" and load_profile("rpi5").memory.type == "LPDDR4X-4267"
    rk = load_profile("rk3588")
    assert [(c.type, c.count, c.part) for c in rk.cores] == [("cortex-a76", 4, "0xd0b"), ("cortex-a55", 4, "0xd05")]
    assert rk.core_count() == 8 and load_profile("x86-64").core_count() is None


def test_accelerators_and_delegates():
    assert load_profile("imx8mp").delegate("vx") == "/usr/lib/libvx_delegate.so"
    assert load_profile("imx8mp").accelerators[0].int8_tops == 2.3
    assert load_profile("rk3588").delegate("rknn") == "/usr/lib/librknnrt.so"
    assert load_profile("jetson-orin-nano").delegate("tensorrt").startswith("/usr/lib/aarch64-linux-gnu/libnvinfer")
    for name in ("coral-devboard", "coral-usb"):
        p = load_profile(name)
        assert p.delegate("edgetpu") == "libedgetpu.so.1" and p.recommended_targets == ("tflite-int8",)
        assert any("edgetpu_compiler" in n for n in p.notes)  # Edge TPU needs a compiled int8 model
    usb = load_profile("coral-usb")
    assert usb.kind == "accelerator" and usb.cores == () and usb.match.usb_ids == ("1a6e:089a", "18d1:9302")
    assert load_profile("rpi4").delegate("edgetpu") is None


def test_aliases_resolve_and_do_not_collide():
    assert load_profile("pi4").name == "rpi4" and load_profile("PI5").name == "rpi5"
    aliases = [a for p in list_profiles() for a in p.aliases]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & EXPECTED


def test_profiles_are_frozen_and_serialise():
    p = load_profile("rpi4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.soc = "x"
    d = json.loads(json.dumps(p.to_dict()))
    assert d["delegates"] == {"xnnpack": "builtin"} and d["cores"][0]["part"] == "0xd08"
    assert d["match"]["compatible"] == ["raspberrypi,4-model-b"]


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(EdgekitError, match=r"unknown board 'rpi9'.*rpi4, rpi5"):
        load_profile("rpi9")
    with pytest.raises(EdgekitError, match="does not exist"):
        load_profile("nowhere/board.yaml")


def _broken(tmp_path, old, new, name="myboard"):
    text = (BOARDS / "rpi4.yaml").read_text().replace("name: rpi4", f"name: {name}")
    assert old in text
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("old, new, expected", [
    ("soc: Broadcom BCM2711", "soc_name: Broadcom BCM2711", r"unknown key 'soc_name' \(did you mean 'soc'\?\): rename"),
    ("soc: Broadcom BCM2711\n", "", r"missing required key 'soc': add it"),
    ("    count: 4", "    count: four", r"'cores\[0\].count' should be an integer or null, not str 'four': fix"),
    ("    clock_ghz: 1.8", "    clock: 1.8", r"unknown key 'cores\[0\].clock' \(did you mean 'clock_ghz'\?\)"),
    ("isa: [neon]", "isa: neon", r"'isa' should be a list of strings, not str"),
    ("isa: [neon]", "isa: [neon, dotprd]", r"'isa\[1\]' is 'dotprd': use one of"),
    ("recommended_targets: [tflite-int8,", "recommended_targets: [tflite-int9,", r"'recommended_targets\[0\]' is 'tflite-int9'"),
    ('compatible: ["raspberrypi,4-model-b"]', "compatible: [raspberrypi,4-model-b]", r"write vendor,device in quotes"),
    ('part: "0xd08"', 'part: "0xd0b"', r"'cores\[0\]' has part 0xd0b, which is cortex-a76, but type 'cortex-a72'"),
    ("kind: board", "kind: computer", r"'kind' is 'computer': use one of board, accelerator, host"),
    ("  xnnpack: builtin", "  xnnpack: 3", r"'delegates' should be a mapping of name: string"),
    ("sources:\n", "sources: []\nx_sources:\n", r"unknown key 'x_sources'"),
])
def test_bad_profiles_fail_with_file_key_and_fix(tmp_path, old, new, expected):
    path = _broken(tmp_path, old, new)
    with pytest.raises(EdgekitError, match=expected) as info:
        load_profile(path)
    message = str(info.value)
    assert message.startswith(f"board profile {path}:") and "\n" not in message


def test_name_must_match_file_and_yaml_must_parse(tmp_path):
    with pytest.raises(EdgekitError, match=r"'name' is 'rpi4': it must equal the file name 'other'"):
        load_profile(_broken(tmp_path, "kind: board", "kind: board", name="rpi4").rename(tmp_path / "other.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncores: [\n")
    with pytest.raises(EdgekitError, match=r"not valid YAML at line \d+ .*: fix the syntax"):
        load_profile(bad)
    with pytest.raises(EdgekitError, match="should be a mapping"):
        profile_from_dict(["not", "a", "mapping"], "x.yaml", "x")


def test_cli_list_json_has_name_soc_cores(capsys):
    assert main(["boards", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == EXPECTED
    for r in rows:
        assert r["soc"] and isinstance(r["cores"], list)
    assert next(r for r in rows if r["name"] == "rpi4")["cores"][0]["type"] == "cortex-a72"
    assert main(["boards", "--json"]) == 0  # list is the default action
    assert len(json.loads(capsys.readouterr().out)) == len(EXPECTED)


def test_cli_table_show_and_errors(capsys, tmp_path):
    assert main(["boards"]) == 0
    table = capsys.readouterr().out
    assert "rpi4" in table and "4x cortex-a72 @ 1.8 GHz" in table and "npu VeriSilicon (Vivante) NPU 2.3 TOPS" in table
    assert main(["boards", "show", "orin-nano"]) == 0
    assert "name: jetson-orin-nano" in capsys.readouterr().out
    assert main(["boards", "show", "imx8mp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["delegates"]["vx"] == "/usr/lib/libvx_delegate.so"
    assert main(["boards", "show", "rpi9"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "known boards are" in err and "rpi4" in err
    assert main(["boards", "show", str(_broken(tmp_path, "soc:", "soc_x:"))]) == 1
    assert "unknown key 'soc_x'" in capsys.readouterr().err
