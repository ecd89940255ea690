"""Tests follow the registries: every target x every registered model, through ``export()``.

Random (well-scaled) weights at 64 px: float targets must pass their parity tolerance;
INT8 targets on random weights are judged loosely (cosine > 0.9; random weights are not
what INT8 is calibrated for: ``test_map_gate.py`` judges INT8 by mAP on a trained model).
The yolo-lite row runs in ``make test`` on the session's shared tiny exports (``fast_exports``:
the same model at the same size through the same ``export()``, made once for the runtime tests
too, where every target must pass); the other models' rows export their own and are ``slow``.
"""

from __future__ import annotations

import pytest

from edgekit.export.targets import TARGETS
from edgekit.models import list_models
from tests.export.export_helpers import TINY_CALIB, TINY_IMGSZ, TINY_MODEL

CASES = [pytest.param(m, t, marks=() if m == TINY_MODEL else pytest.mark.slow, id=f"{m}-{t}")
         for m in list_models() for t in TARGETS]


@pytest.mark.parametrize("model,target", CASES)
def test_export_roundtrip(model, target, tiny_checkpoint, sample_yaml, tmp_path, request):
    from edgekit.export import export
    from edgekit.runtime.runner import ArtifactRunner, read_manifest

    if not TARGETS[target].available():
        pytest.skip(f"{target} needs {TARGETS[target].missing()}")
    if model == TINY_MODEL:
        art = request.getfixturevalue("fast_exports")[target]  # exported (and checked ok) once per session
    else:
        rep = export(tiny_checkpoint(model, TINY_IMGSZ), [target], calib=sample_yaml.parent / "train" / "images",
                     calib_images=TINY_CALIB, out=tmp_path)
        r = rep.results[0]
        if TARGETS[target].quantized:
            assert r.parity and r.parity["cosine"] > 0.9, r.reason
            if not r.ok:
                return
        assert r.ok, r.reason
        art = tmp_path / r.file
    man = read_manifest(art)
    assert man["target"] == target and man["verification"]["parity"]["passed"]
    if TARGETS[target].simulator:  # verified in its toolkit's simulator (RKNN); its runtime is board-only
        assert man["verification"]["simulated"] and man["verification"]["host_latency_ms"] is None
        return
    runner = ArtifactRunner(art, threads=1)
    import cv2

    img = cv2.imread(str(next((sample_yaml.parent / "test" / "images").glob("*.jpg"))))
    maps, _ = runner.infer(img)
    assert [list(m.shape) for m in maps] == [list(o["shape"]) for o in sorted(man["outputs"], key=lambda o: o["decode_index"])]
