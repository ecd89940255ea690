"""A quiet, scriptable CLI: stdout is the result only, converter noise stays captured unless --verbose.

The export checks run ``python -m edgekit`` as a subprocess (descriptors 1 and 2 are the real
ones there, as in a user's shell): one ``--target all --json`` run covers every target
installed here, and one ``--verbose`` run of the noisiest targets shows the capture keeps what
it hides.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.export.export_helpers import make_checkpoint

from edgekit.export.targets import TARGETS

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "edgekit" / "assets" / "fish_sample"
CALIB = SAMPLE / "train" / "images"

# what the converters print when nothing holds it back (seen on this machine: litert-torch, TF/absl,
# torchao, JAX's fork warning, NNCF's rich bars, OpenVINO's conversion summary)
NOISE = [re.compile(p, re.M) for p in (
    r"Warning\b",                    # FutureWarning, RuntimeWarning, UserWarning, ...
    r"^WARNING",                     # absl's "WARNING: All log messages before absl::InitializeLog()", logging
    r"^[IWEF]\d{4} ",                # absl/glog lines: I0000 00:00:..., W1202 03:17:43...
    r"Applying",                     # "Applying Fast Bias correction", "Applying Transformations"
    r"Statistics collection",        # NNCF
    r"os\.fork\(\)",                 # JAX
    r"XNNPACK",                      # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
    r"Traceback",
)]


def edgekit(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=900)


def noise_in(text: str) -> list[str]:
    return [m.group(0) for rx in NOISE for m in [rx.search(text)] if m]


def own_line(line: str, targets) -> bool:
    """edgekit's progress lines during an export: one per stage."""
    return (line.startswith(("calibration: ", "warning: calibrating on only ", "parity images: ", "torch -> ONNX in ",
                             "source mAP on ", "edgekit: error: "))
            or any(line.startswith(f"{t}: ") for t in targets))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "yolo-lite.pt", "yolo-lite", 64)


@pytest.fixture(scope="module")
def all_run(checkpoint, tmp_path_factory):
    """One quiet ``export --target all --json`` (every target installed here)."""
    out = tmp_path_factory.mktemp("all")
    r = edgekit("export", checkpoint, "--target", "all", "--calib", CALIB, "--calib-images", 4, "--out", out, "--json")
    return r, out


def test_export_all_json_is_one_document_with_every_target(all_run):
    r, out = all_run
    doc = json.loads(r.stdout)  # the whole of stdout: nothing before or after the document
    assert r.returncode == 0, r.stderr
    rows = {row["target"]: row for row in doc["targets"]}
    available = [t.name for t in TARGETS.values() if t.available()]
    assert available and list(rows) == available
    for name in available:
        assert rows[name]["status"] == "ok", f"{name}: {rows[name]['reason']}"
        assert Path(rows[name]["path"]).is_file()
    assert json.loads((out / "export_report.json").read_text())["targets"] == doc["targets"]


def test_export_stderr_has_only_edgekit_lines(all_run):
    r, _ = all_run
    assert not noise_in(r.stderr), r.stderr
    lines = r.stderr.splitlines()
    strays = [ln for ln in lines if not own_line(ln, TARGETS)]
    assert not strays, strays
    for t in (t.name for t in TARGETS.values() if t.available()):  # one line as it starts, one as it ends
        assert f"{t}: converting ..." in lines and any(ln.startswith(f"{t}: ok -> ") for ln in lines)


def test_verbose_shows_the_converters_output_on_stderr_only(checkpoint, tmp_path):
    noisy = [t for t in ("tflite-int8", "openvino-int8") if t in TARGETS and TARGETS[t].available()]
    if not noisy:
        pytest.skip("neither tflite-int8 nor openvino-int8 can be converted here")
    args = [a for t in noisy for a in ("--target", t)]
    r = edgekit("--verbose", "export", checkpoint, *args, "--calib", CALIB, "--calib-images", 2, "--out", tmp_path,
                "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # NNCF's bars go to stdout when left alone: here they are replayed on stderr
    assert [row["status"] for row in doc["targets"]] == ["ok"] * len(noisy)
    for t in noisy:
        assert f"--- {t} conversion output ---" in r.stderr
    assert noise_in(r.stderr), r.stderr
    if "tflite-int8" in noisy:
        assert re.search(r"^[IW]\d{4} ", r.stderr, re.M) and "FutureWarning" in r.stderr
    if "openvino-int8" in noisy:
        assert "Statistics collection" in r.stderr
    # the flag is also accepted after the command
    q = edgekit("export", "--list", "--json", "--verbose")
    assert q.returncode == 0 and json.loads(q.stdout)


def test_commands_with_json_print_one_document(all_run, checkpoint, tmp_path):
    _, out = all_run
    image = sorted((SAMPLE / "test" / "images").glob("*.jpg"))[0]
    onnx = out / "yolo-lite-onnx.onnx"
    runs = [
        ("info", "--json"),
        ("models", "--json"),
        ("boards", "list", "--json"),
        ("export", "--list", "--json"),
        ("data", "check", SAMPLE / "data.yaml", "--no-decode", "--json"),
        ("data", "convert", SAMPLE / "data.yaml", "--to", "coco", "--link", "--out", tmp_path / "coco", "--json"),
        ("verify", onnx, "--ref", checkpoint, "--json"),
        ("bench", out, "--frames", 2, "--warmup", 0, "--threads", 1, "--json"),
    ]
    for suffix in (".onnx", ".tflite", ".xml", ".param"):  # one artifact per runtime
        runs += [("predict", a, image, "--json") for a in sorted(out.glob(f"*{suffix}"))[:1]]
    problems = []  # every command's problem at once
    for argv in runs:
        r = edgekit(*argv)
        if r.returncode != 0 or "Traceback" in r.stderr:
            problems.append(f"{argv[0]}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
            continue
        try:
            json.loads(r.stdout)
        except json.JSONDecodeError as exc:
            problems.append(f"{argv}: stdout is not one JSON document ({exc}): {r.stdout[:300]!r}")
    assert not problems, "\n".join(problems)
    conv = json.loads(edgekit("data", "convert", SAMPLE / "data.yaml", "--to", "voc", "--link",
                              "--out", tmp_path / "voc", "--json").stdout)
    assert conv["format"] == "voc" and conv["counts"]["train"]["images"] == 120


def test_errors_stay_one_line_with_json(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    for model in (tmp_path / "missing.pt", bad):
        r = edgekit("export", model, "--target", "onnx", "--json")
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.startswith("edgekit: error: ") and r.stderr.count("\n") == 1, r.stderr


# ---- the mechanism itself ----

def test_captured_catches_every_channel_and_leaves_stdout_clean():
    script = textwrap.dedent("""
        import ctypes, json, logging, os, subprocess, sys, warnings
        from edgekit.export.capture import captured
        logging.basicConfig()
        with captured("step") as cap:
            print("py-stdout")
            print("py-stderr", file=sys.stderr)
            os.write(1, b"fd-one\\n")
            os.write(2, b"fd-two\\n")
            ctypes.CDLL(None).printf(b"c-printf-unflushed")
            warnings.warn("future-thing", FutureWarning)
            logging.getLogger("lib").warning("log-line")
            subprocess.run(["sh", "-c", "echo child-out; echo child-err >&2"])
        print(json.dumps(cap.text))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = json.loads(r.stdout)  # the only thing on stdout
    for marker in ("py-stdout", "py-stderr", "fd-one", "fd-two", "c-printf-unflushed", "FutureWarning: future-thing",
                   "log-line", "child-out", "child-err"):
        assert marker in text, (marker, text)


def test_failed_step_keeps_its_output_for_the_error(capfd):
    import os
    import warnings

    from edgekit.errors import EdgekitError
    from edgekit.export.capture import captured, step

    with pytest.raises(EdgekitError) as info:
        with step("conversion"):
            os.write(1, b"op Foo is not supported\n")
            with captured("inner") as inner:  # nested: adds to the outer capture
                warnings.warn("deprecated thing", FutureWarning)
            raise EdgekitError("the converter failed")
    assert inner.nested
    msg = str(info.value)
    assert msg.startswith("the converter failed [conversion output: op Foo is not supported | ")
    assert "FutureWarning: deprecated thing" in msg and "\n" not in msg
    with pytest.raises(ValueError) as info:
        with captured("x"):
            print("half done")
            raise ValueError("boom")
    assert info.value.captured_output == "half done\n"
    with captured("v", verbose=True):
        os.write(1, b"shown with verbose\n")
    out, err = capfd.readouterr()
    assert out == "" and err == "--- v output ---\nshown with verbose\n--- end ---\n"


def test_a_crashing_converter_fails_its_target_in_one_line(tmp_path, capfd):
    import os

    from edgekit.export.exporter import _one_target
    from edgekit.export.targets import ConvertJob

    class Crashing:  # a target whose converter prints C-level noise, then raises something not ours
        name, precision = "crashing", "fp32"

        def convert(self, job):
            os.write(1, b"E0000 converter.cc:1] unsupported op Foo\n")
            raise RuntimeError("Foo\nmore lines of the converter's message")

        def files(self, main):
            return [main]

    logs = []
    res = _one_target(Crashing(), ConvertJob(source=None, out=tmp_path / "staging" / "m.bin"), [], None, tmp_path,
                      logs.append)
    assert res.status == "failed" and "\n" not in res.reason
    assert res.reason == ("the converter crashed (RuntimeError: Foo) "
                          "[converter output: E0000 converter.cc:1] unsupported op Foo]")
    assert logs == ["crashing: converting ...", "crashing: FAILED: " + res.reason]
    assert capfd.readouterr() == ("", "")


def test_a_closed_stdout_pipe_ends_quietly():
    """`edgekit ... | head -1`: the reader goes away; no BrokenPipeError traceback, nothing on stderr."""
    p = subprocess.Popen([sys.executable, "-m", "edgekit", "boards", "list"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) != 0 and err == "", err
