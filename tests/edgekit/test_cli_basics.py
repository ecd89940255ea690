"""`edgekit --version`, `edgekit info`, and the error contract (one line, exit 1, --debug)."""

from __future__ import annotations

import json
import subprocess
import sys

from edgekit import __version__


def run(*args):
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True)


def test_version():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"edgekit {__version__}"


def test_info_json_names_runtimes_and_cpu_features():
    r = run("info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["edgekit"] == __version__ and info["python"].startswith("3.")
    assert info["packages"]["numpy"]["version"] and "onnxruntime" in info["packages"]
    assert isinstance(info["cpu"]["features"], list) and info["cpu"]["cores"] >= 1
    assert "edgekit" in run("info").stdout


def test_info_imports_nothing_heavy():
    code = ("import sys, json; from edgekit.info import environment_info; environment_info(); "
            "print(json.dumps(sorted(m for m in ('torch', 'tensorflow', 'onnx', 'onnxruntime', 'nncf') if m in sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert json.loads(r.stdout) == []


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    r = run("data", "check", str(tmp_path / "missing.yaml"))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("edgekit: error:")
    d = run("--debug", "data", "check", str(tmp_path / "missing.yaml"))
    assert d.returncode == 1 and "Traceback" in d.stderr


def test_no_command_prints_help():
    r = run()
    assert r.returncode == 1 and "COMMAND" in r.stdout
