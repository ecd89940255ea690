"""``--keep-float auto`` on openvino-int8 and tflite-int8 walks the ranking and says when nothing passed.

An impossible gate (``--max-map-drop -1``) rejects every try, so ``auto`` must rank the layers
with the target's own quantizer, keep more of them float at each try, and end rejected with the
plain INT8 try and the layers it tried recorded; a passing plain INT8 ends at once with nothing
kept float.
"""

from __future__ import annotations

import pytest

from tests.export.export_helpers import small_test_split


@pytest.fixture(scope="module")
def two_test_images(sample_yaml, tmp_path_factory):
    return small_test_split(sample_yaml, tmp_path_factory.mktemp("two-test"), 2)


def test_openvino_auto_walks_the_ranking_then_says_it_failed(tiny_detector, two_test_images, tmp_path):
    from edgekit.export import export

    rep = export(tiny_detector, ["openvino-int8"], data=two_test_images, calib_images=8, out=tmp_path,
                 max_map_drop=-1.0, keep_float="auto", parity_images=2)
    (row,) = rep.results
    assert row.status == "rejected" and "--keep-float auto: still rejected" in row.reason
    assert row.kept_float["tries"] >= 3 and row.kept_float["plain_int8"]["status"] == "rejected"
    assert all(n.startswith("/inner/") for n in row.kept_float["nodes"]) and row.kept_float["layers"] >= 2
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".xml", ".bin")]


def test_tflite_auto_stops_at_a_passing_plain_int8(tiny_detector, two_test_images, tmp_path):
    from edgekit.export import export
    from edgekit.runtime.runner import read_manifest

    rep = export(tiny_detector, ["tflite-int8"], data=two_test_images, calib_images=8, out=tmp_path,
                 max_map_drop=1.0, keep_float="auto", parity_images=2)
    (row,) = rep.results
    assert row.ok and row.kept_float == {"nodes": [], "layers": 0, "tries": 1, "plain_int8": None}
    assert read_manifest(tmp_path / row.file)["conversion"]["kept_float"] == []
