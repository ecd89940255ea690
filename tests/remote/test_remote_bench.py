"""edgekit bench --host against real OpenSSH servers on loopback ports (tests/remote/sshd.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from tests.remote.conftest import edgekit, parse_json
from tests.remote.sshd import keygen

pytestmark = pytest.mark.network

FAST = ("--frames", "5", "--warmup", "1", "--threads", "1")


def _env(home):
    return {k: v for k, v in home.items() if k != "SSH_AUTH_SOCK"}  # the test key only, never an agent's


def _remote_args(client_key, known_hosts, *servers):
    hosts = [a for s in servers for a in ("--host", s.spec)]
    return [*hosts, "--identity", client_key, "--known-hosts", known_hosts]


def test_remote_rows_join_the_report_with_local_and_estimated_rows(tiny_onnx_tflite, sshd_factory, client_key, home, tmp_path):
    from edgekit.runtime.bench import host_info

    board = sshd_factory()
    kh = tmp_path / "known_hosts"
    kh.write_text(board.known_hosts_line())
    onnx = tiny_onnx_tflite["onnx"]
    rep = parse_json(edgekit("bench", onnx, *FAST, *_remote_args(client_key, kh, board), "--estimate", "rpi4",
                             "--report", tmp_path / "report", "--json", env=_env(home)))
    local = [r for r in rep["results"] if not r.get("remote")]
    remote = [r for r in rep["results"] if r.get("remote")]
    assert len(local) == 1 and len(remote) == 1
    # the "board" is this machine: the remote edgekit detected it exactly as the local one does
    assert remote[0]["remote"] == {"host": board.spec, "board": host_info()["board"],
                                   "board_title": host_info()["board_title"]}
    assert remote[0]["p50_ms"] > 0 and remote[0]["threads"] == 1 and remote[0]["artifact"] == onnx.name
    assert rep["remote"][0]["ok"] and rep["remote"][0]["host"] == board.spec
    est = rep["estimates"]
    assert len(est) == 1 and est[0]["board"] == "rpi4" and est[0]["low_ms"] < est[0]["latency_ms"] < est[0]["high_ms"]
    md = (tmp_path / "report" / "bench.md").read_text()
    html = (tmp_path / "report" / "bench.html").read_text()
    for page in (md, html):  # each row says where it comes from
        assert "this host" in page and f"({board.spec})" in page and "ESTIMATE for rpi4" in page
    assert "Estimates (not measured)" in md and "Remote boards" in md
    # the artifact was benched from a temporary folder on the board, removed afterwards
    assert remote[0]["path"].startswith(str(board.tmp / "edgekit-bench."))
    assert not list(board.tmp.glob("edgekit-bench.*"))


def test_changed_host_key_is_refused_even_with_accept_new(tiny_onnx_tflite, sshd_factory, client_key, home, tmp_path):
    board = sshd_factory()
    other = keygen(tmp_path / "another_host_key")
    kh = tmp_path / "known_hosts"
    kh.write_text(board.known_hosts_line(other.with_suffix(".pub")))
    before = kh.read_text()
    for extra in ([], ["--accept-new"]):
        res = edgekit("bench", tiny_onnx_tflite["onnx"], *FAST, "--no-local", *_remote_args(client_key, kh, board), *extra,
                      env=_env(home))
        assert res.returncode == 1 and "Traceback" not in res.stderr
        assert "REFUSED" in res.stderr and "does not match" in res.stderr and "ssh-keygen -R" in res.stderr
        assert kh.read_text() == before  # never rewritten
    assert not board.running_bench()


def test_unknown_host_refused_then_recorded_with_accept_new(tiny_onnx_tflite, sshd_factory, client_key, home, tmp_path):
    board = sshd_factory()
    kh = tmp_path / "known_hosts"  # absent: first contact
    res = edgekit("bench", tiny_onnx_tflite["onnx"], *FAST, "--no-local", *_remote_args(client_key, kh, board), env=_env(home))
    assert res.returncode == 1 and "host key not in" in res.stderr and "--accept-new" in res.stderr
    assert not kh.exists()
    rep = parse_json(edgekit("bench", tiny_onnx_tflite["onnx"], *FAST, "--no-local", *_remote_args(client_key, kh, board),
                             "--accept-new", "--json", env=_env(home)))
    assert [r["remote"]["host"] for r in rep["results"]] == [board.spec]
    server_key = board.host_key.with_suffix(".pub").read_text().split()[:2]
    assert kh.read_text().split() == [f"[127.0.0.1]:{board.port}", *server_key]


def test_a_host_dropping_mid_run_loses_only_its_own_rows(tiny_onnx_tflite, sshd_factory, client_key, home, tmp_path):
    good, bad = sshd_factory("good"), sshd_factory("bad")
    kh = tmp_path / "known_hosts"
    kh.write_text(good.known_hosts_line() + bad.known_hosts_line())
    cmd = [sys.executable, "-m", "edgekit", "bench", str(tiny_onnx_tflite["onnx"]), "--frames", "200", "--warmup", "1",
           "--threads", "1", "--no-local", *map(str, _remote_args(client_key, kh, good, bad)), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home))
    killed = threading.Event()

    def drop_when_benching():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if bad.running_bench():  # the bad board's `edgekit bench` is running: pull its plug
                bad.kill()
                killed.set()
                return
            time.sleep(0.02)

    t = threading.Thread(target=drop_when_benching)
    t.start()
    out, err = proc.communicate(timeout=300)
    t.join()
    assert killed.is_set(), "the bad board's bench never started: " + err[-2000:]
    assert proc.returncode == 0, err[-3000:]
    rep = json.loads(out)
    assert {r["remote"]["host"] for r in rep["results"]} == {good.spec}
    outcome = {r["host"]: r for r in rep["remote"]}
    assert outcome[good.spec]["ok"] and not outcome[bad.spec]["ok"]
    assert bad.spec in outcome[bad.spec]["error"] and "dropped" in outcome[bad.spec]["error"]
    assert f"remote {bad.spec}: failed" in err


def test_missing_edgekit_on_the_board_names_the_install_line(tiny_onnx_tflite, sshd_factory, client_key, home, tmp_path):
    board = sshd_factory()
    kh = tmp_path / "known_hosts"
    kh.write_text(board.known_hosts_line())
    res = edgekit("bench", tiny_onnx_tflite["onnx"], *FAST, "--no-local", *_remote_args(client_key, kh, board),
                  "--remote-edgekit", "/nonexistent/venv/bin/edgekit", env=_env(home))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "edgekit is not installed there" in res.stderr and "pip install 'edgekit[onnx]'" in res.stderr


def test_host_options_without_host_are_refused(tiny_onnx_tflite, home):
    res = edgekit("bench", tiny_onnx_tflite["onnx"], "--identity", "/tmp/key", env=_env(home))
    assert res.returncode == 1 and "--identity goes with --host" in res.stderr
    res = edgekit("bench", tiny_onnx_tflite["onnx"], "--no-local", env=_env(home))
    assert res.returncode == 1 and "--no-local needs --host" in res.stderr
