"""The ``edgekit bench`` HTML report in a real browser: headless Chromium renders it, screenshots it, dumps the DOM.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped with that reason where it
is missing. The report comes from a real ``edgekit bench --compare`` run of the shipped detector.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli.main import main

SHIPPED = Path(__file__).resolve().parents[2] / "edgekit" / "assets" / "weights" / "mobilenetv2_050-yolo-fish4knowledge-320.pt"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed: apt-get install -y chromium")


class Page(HTMLParser):
    """The parts of the rendered DOM the test checks: comparison-table rows and cells, images."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.headers: list[str] = []
        self.images: list[str] = []
        self._table = self._cell = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "comparison":
            self._table = True
        elif tag == "tr" and self._table:
            self.rows.append([])
        elif tag in ("td", "th") and self._table:
            self._cell = tag
            if tag == "td":
                self.rows[-1].append("")
        elif tag == "img":
            self.images.append(a.get("src") or "")

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = False
        elif tag in ("td", "th"):
            self._cell = False

    def handle_data(self, data):
        if self._cell == "td":
            self.rows[-1][-1] += data
        elif self._cell == "th":
            self.headers.append(data.strip())


@pytest.fixture(scope="module")
def report(tmp_path_factory, sample_yaml) -> Path:
    from edgekit.export import export

    out = tmp_path_factory.mktemp("bench-html")
    rep = export(SHIPPED, ["onnx", "onnx-int8"], data=sample_yaml, calib_images=8, out=out / "export")
    assert rep.ok, [(r.target, r.reason) for r in rep.results]
    assert main(["bench", "--compare", str(out / "export"), "--frames", "15", "--warmup", "2", "--threads", "1,2",
                 "--data", str(sample_yaml), "--report", str(out / "report")]) == 0
    return out / "report" / "bench.html"


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}",
           "--window-size=1400,2000", *args, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(tmp_path)})


def test_dom_has_the_comparison_table_and_every_plot(report, tmp_path):
    res = chromium(report, tmp_path, "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    page = Page()
    page.feed(res.stdout)
    assert {"target", "size MB", "mAP50", "p50 ms", "FPS"} <= set(page.headers)
    body = [r for r in page.rows if r]
    assert len(body) == 4  # onnx and onnx-int8, at 1 and 2 threads
    col = page.headers.index
    assert sorted({r[col("target")] for r in body}) == ["onnx", "onnx-int8"]
    assert sorted(r[col("threads")] for r in body) == ["1", "1", "2", "2"]
    for r in body:
        assert float(r[col("p50 ms")]) > 0 and float(r[col("FPS")]) > 0 and 0 <= float(r[col("mAP50")]) <= 1
    assert len(page.images) == 4  # latency, FPS by threads, time split, accuracy vs latency
    import cv2

    for src in page.images:  # inline PNGs that decode, nothing fetched from elsewhere
        assert src.startswith("data:image/png;base64,")
        img = cv2.imdecode(np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] > 100 and img.shape[1] > 200


def test_screenshot_shows_the_table_and_plots(report, tmp_path):
    shot = tmp_path / "bench.png"
    res = chromium(report, tmp_path, f"--screenshot={shot}")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    import cv2

    img = cv2.imread(str(shot))
    assert img.shape[:2] == (2000, 1400)
    ink = (img.min(axis=2) < 200).mean()  # share of non-white pixels: text, table borders, plots
    colour = (img.max(axis=2).astype(int) - img.min(axis=2) > 60).mean()  # the plots' coloured bars and boxes
    assert ink > 0.03 and colour > 0.005, (ink, colour)
