"""edgekit's COCO mAP against pycocotools' COCOeval, number by number (to within 1e-4)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.metrics import GroundTruth, Predictions, evaluate_coco, evaluate_detections, load_coco_json

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

TOL = 1e-4
BCCD = Path(__file__).resolve().parents[3] / "shared" / "data" / "bccd"


# --------------------------------------------------------------------------- helpers

def reference(gt: dict, preds: list, max_dets: int = 100):
    """pycocotools' precision (T,R,K,A), recall (T,K,A) and, for max_dets=100, its 12 stats."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        res = coco.loadRes(copy.deepcopy(preds))
        ev = COCOeval(coco, res, "bbox")
        ev.params.maxDets = [1, 10, 100] if max_dets == 100 else [max_dets]
        ev.evaluate()
        ev.accumulate()
        stats = None
        if max_dets == 100:
            ev.summarize()
            stats = ev.stats
    return ev.eval["precision"][..., -1], ev.eval["recall"][..., -1], stats


def as_ref(v):
    return -1.0 if v is None else v


def assert_matches_pycocotools(gt, preds, max_dets=100):
    r = evaluate_coco(gt, preds, max_dets=max_dets, areas=True)
    prec, rec, stats = reference(gt, preds, max_dets)
    assert r.precision.shape == prec.shape
    np.testing.assert_allclose(r.precision, prec, atol=TOL, rtol=0)
    np.testing.assert_allclose(r.recall, rec, atol=TOL, rtol=0)
    if stats is not None:
        ours = [r.map50_95, r.map50, r.map75, r.map_small, r.map_medium, r.map_large,
                r.mar, r.mar_small, r.mar_medium, r.mar_large]
        theirs = [stats[i] for i in (0, 1, 2, 3, 4, 5, 8, 9, 10, 11)]
        np.testing.assert_allclose([as_ref(v) for v in ours], theirs, atol=TOL, rtol=0)
    else:
        def mean(x):
            x = x[x > -1]
            return float(x.mean()) if x.size else -1.0
        np.testing.assert_allclose(as_ref(r.map50_95), mean(prec[..., 0]), atol=TOL)
        np.testing.assert_allclose(as_ref(r.map50), mean(prec[0, ..., 0]), atol=TOL)
        np.testing.assert_allclose(as_ref(r.mar), mean(rec[..., 0]), atol=TOL)
    cat_ids = sorted(c["id"] for c in gt["categories"])
    names = {c["id"]: c["name"] for c in gt["categories"]}
    for k, cid in enumerate(cat_ids):
        p = prec[:, :, k, 0]
        ap = float(p.mean()) if (p > -1).any() else -1.0
        ap50 = float(p[0].mean()) if (p > -1).any() else -1.0
        assert as_ref(r.per_class[names[cid]]) == pytest.approx(ap, abs=TOL)
        assert as_ref(r.per_class_map50[names[cid]]) == pytest.approx(ap50, abs=TOL)
    return r


def random_case(seed: int, n_images: int = 40, gt_cats=(1, 3, 7), extra_cats=(9,)):
    """Random COCO GT and jittered detections: crowds, tiny and large boxes, exact IoU ties."""
    rng = np.random.default_rng(seed)
    cats = [{"id": c, "name": f"c{c}"} for c in (*gt_cats, *extra_cats)]
    ids = rng.permutation(np.arange(n_images) * 3 + 2).tolist()   # sparse, unsorted image ids
    images = [{"id": int(i), "width": 640, "height": 480} for i in ids]
    anns, preds = [], []

    def det(img, cat, box, score=None):
        s = round(float(rng.uniform(0.05, 1.0)), 1) if score is None else score   # coarse: many ties
        preds.append({"image_id": img, "category_id": int(cat), "bbox": [float(v) for v in box], "score": s})

    for im in images[: n_images - 3]:                      # the last 3 images have no GT
        for _ in range(int(rng.integers(0, 9))):
            cat = int(rng.choice(gt_cats))
            size = rng.choice(["small", "medium", "large"])
            lo, hi = {"small": (1, 30), "medium": (28, 100), "large": (90, 320)}[size]
            w, h = rng.uniform(lo, hi, 2)
            exact = rng.random() < 0.3
            if exact:                                      # integers: IoUs exactly 0.5 / 0.75 below
                w, h = float(4 * max(1, round(w / 4))), float(4 * max(1, round(h / 4)))
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            if exact:
                x, y = float(round(x)), float(round(y))
            area = w * h if rng.random() < 0.5 else w * h * rng.uniform(0.4, 1.0)
            crowd = int(rng.random() < 0.08)
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": cat,
                         "bbox": [x, y, w, h], "area": float(area), "iscrowd": crowd})
            for _ in range(int(rng.choice([0, 1, 1, 1, 2, 3]))):
                c = cat if rng.random() < 0.9 else int(rng.choice([*gt_cats, *extra_cats]))
                if exact and rng.random() < 0.5:
                    det(im["id"], c, [x, y, w, h * rng.choice([0.5, 0.75])])
                else:
                    j = rng.normal(0, 0.12, 4) * [w, h, w, h]
                    det(im["id"], c, [x + j[0], y + j[1], max(0.5, w + j[2]), max(0.5, h + j[3])])
    for im in images:                                      # false positives everywhere
        for _ in range(int(rng.integers(0, 4))):
            w, h = rng.uniform(2, 200, 2)
            det(im["id"], rng.choice([*gt_cats, *extra_cats]), [rng.uniform(0, 440), rng.uniform(0, 280), w, h])
    order = rng.permutation(len(preds))
    preds = [preds[i] for i in order]
    return {"images": images, "annotations": anns, "categories": cats}, preds


# --------------------------------------------------------------------------- against pycocotools

@pytest.mark.parametrize("seed", range(8))
def test_random_cases_match_pycocotools(seed):
    gt, preds = random_case(seed)
    r = assert_matches_pycocotools(gt, preds)
    assert r.per_class["c9"] is None                       # detections but no GT: excluded
    assert 0.0 < r.map50_95 < r.map50 < 1.0


def test_max_dets_cut_matches_pycocotools():
    gt, preds = random_case(100, n_images=20)
    rng = np.random.default_rng(0)
    for _ in range(60):                                    # crowd one image with detections
        preds.append({"image_id": gt["images"][0]["id"], "category_id": 1, "score": round(float(rng.random()), 1),
                      "bbox": [float(v) for v in rng.uniform(0, 200, 4)]})
    for max_dets in (1, 5, 100):
        assert_matches_pycocotools(gt, preds, max_dets=max_dets)


def test_in_memory_api_matches_coco_api():
    gt, preds = random_case(3)
    r_coco = evaluate_coco(gt, preds, areas=True)
    cat_index = {1: 0, 3: 1, 7: 2, 9: 3}
    ids = sorted(im["id"] for im in gt["images"])

    def xyxy(b):
        return [b[0], b[1], b[0] + b[2], b[1] + b[3]]
    gts = [{"boxes": [xyxy(a["bbox"]) for a in gt["annotations"] if a["image_id"] == i],
            "classes": [cat_index[a["category_id"]] for a in gt["annotations"] if a["image_id"] == i],
            "iscrowd": [a["iscrowd"] for a in gt["annotations"] if a["image_id"] == i],
            "area": [a["area"] for a in gt["annotations"] if a["image_id"] == i]} for i in ids]
    dts = [{"boxes": [xyxy(p["bbox"]) for p in preds if p["image_id"] == i],
            "scores": [p["score"] for p in preds if p["image_id"] == i],
            "classes": [cat_index[p["category_id"]] for p in preds if p["image_id"] == i]} for i in ids]
    r = evaluate_detections(gts, dts, ["c1", "c3", "c7", "c9"], areas=True)
    np.testing.assert_allclose(r.precision, r_coco.precision, atol=1e-9)
    assert r.per_class.keys() == r_coco.per_class.keys()
    assert r.map50_95 == pytest.approx(r_coco.map50_95, abs=1e-9)


@pytest.mark.shared
@pytest.mark.skipif(not (BCCD / "Annotations").is_dir(), reason=f"BCCD dataset not found at {BCCD} (../shared absent)")
def test_bccd_subset_matches_pycocotools():
    from defusedxml import ElementTree

    files = sorted((BCCD / "Annotations").glob("*.xml"))[:40]
    cat_ids = {"RBC": 2, "WBC": 5, "Platelets": 11}
    gt = {"images": [], "annotations": [], "categories": [{"id": v, "name": k} for k, v in cat_ids.items()]}
    for i, f in enumerate(files, start=1):
        root = ElementTree.parse(f).getroot()
        gt["images"].append({"id": i, "file_name": root.findtext("filename")})
        for obj in root.iter("object"):
            bb = obj.find("bndbox")
            x1, y1, x2, y2 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            if x2 <= x1 or y2 <= y1 or obj.findtext("name") not in cat_ids:
                continue
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i, "iscrowd": 0,
                                      "category_id": cat_ids[obj.findtext("name")],
                                      "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
    assert len(gt["annotations"]) > 200
    rng = np.random.default_rng(7)
    preds = []
    for a in gt["annotations"]:
        if rng.random() < 0.85:
            x, y, w, h = a["bbox"]
            j = rng.normal(0, 0.1, 4) * [w, h, w, h]
            preds.append({"image_id": a["image_id"], "category_id": a["category_id"], "score": round(float(rng.random()), 2),
                          "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]})
    for im in gt["images"]:
        for _ in range(3):
            preds.append({"image_id": im["id"], "category_id": int(rng.choice(list(cat_ids.values()))),
                          "score": round(float(rng.random()) * 0.5, 2),
                          "bbox": [float(v) for v in (*rng.uniform(0, 500, 2), *rng.uniform(10, 150, 2))]})
    r = assert_matches_pycocotools(gt, preds)
    assert set(r.per_class) == set(cat_ids) and 0.2 < r.map50_95 < 0.95


# --------------------------------------------------------------------------- edge cases

def coco(anns, cats=(1, 2), n_images=2):
    return {"images": [{"id": i} for i in range(1, n_images + 1)],
            "categories": [{"id": c, "name": f"k{c}"} for c in cats],
            "annotations": [{"id": i + 1, "image_id": a[0], "category_id": a[1], "bbox": list(a[2]),
                             "area": a[2][2] * a[2][3], "iscrowd": a[3] if len(a) > 3 else 0}
                            for i, a in enumerate(anns)]}


def pred(img, cat, box, score):
    return {"image_id": img, "category_id": cat, "bbox": list(box), "score": score}


def test_category_with_gt_but_no_detections_scores_zero():
    gt = coco([(1, 1, (10, 10, 50, 50)), (1, 2, (100, 100, 40, 40))])
    r = assert_matches_pycocotools(gt, [pred(1, 1, (10, 10, 50, 50), 0.9)])
    assert r.per_class["k2"] == 0.0 and r.per_class["k1"] == pytest.approx(1.0)
    assert r.map50_95 == pytest.approx(0.5)


def test_detections_of_category_without_gt_are_excluded():
    gt = coco([(1, 1, (10, 10, 50, 50))])
    base = evaluate_coco(gt, [pred(1, 1, (10, 10, 50, 50), 0.9)])
    r = assert_matches_pycocotools(gt, [pred(1, 1, (10, 10, 50, 50), 0.9), pred(1, 2, (0, 0, 9, 9), 0.95)])
    assert r.per_class["k2"] is None and r.per_class_map50["k2"] is None
    assert r.map50_95 == base.map50_95 == pytest.approx(1.0)
    assert r.to_dict()["per_class"]["k2"] is None


def test_image_without_gt_contributes_false_positives():
    gt = coco([(1, 1, (10, 10, 50, 50))], n_images=2)
    r = assert_matches_pycocotools(gt, [pred(1, 1, (10, 10, 50, 50), 0.5), pred(2, 1, (10, 10, 50, 50), 0.9)])
    assert r.map50 == pytest.approx(0.5, abs=0.01) and r.num_images == 2


def test_perfect_detections_score_one():
    gt, _ = random_case(11)
    preds = [pred(a["image_id"], a["category_id"], a["bbox"], 0.9) for a in gt["annotations"] if not a["iscrowd"]]
    r = assert_matches_pycocotools(gt, preds)
    for v in (r.map50_95, r.map50, r.map75, r.mar):
        assert v == pytest.approx(1.0, abs=1e-9)


def test_empty_predictions_score_zero():
    gt = coco([(1, 1, (10, 10, 50, 50)), (2, 2, (0, 0, 200, 200))])
    r = evaluate_coco(gt, [], areas=True)
    assert (r.map50_95, r.map50, r.map75, r.mar) == (0.0, 0.0, 0.0, 0.0)
    assert r.per_class == {"k1": 0.0, "k2": 0.0}
    assert r.map_small is None and r.map_medium == 0.0 and r.map_large == 0.0
    assert r.num_gt == {"k1": 1, "k2": 1}


def test_crowd_absorbs_detections_and_only_crowd_class_is_undefined():
    gt = coco([(1, 1, (0, 0, 100, 100), 1), (1, 2, (0, 0, 100, 100), 1), (1, 2, (200, 200, 20, 20))])
    preds = [pred(1, 1, (10, 10, 20, 20), 0.9), pred(1, 2, (5, 5, 30, 30), 0.8), pred(1, 2, (40, 40, 10, 10), 0.85),
             pred(1, 2, (200, 200, 20, 20), 0.7)]
    r = assert_matches_pycocotools(gt, preds)
    assert r.per_class["k1"] is None                       # only a crowd: nothing to find
    assert r.per_class["k2"] == pytest.approx(1.0)         # both crowd hits are ignored, not false
    assert r.num_gt == {"k1": 0, "k2": 1}


def test_iou_exactly_at_threshold_matches():
    gt = coco([(1, 1, (0, 0, 20, 20))], cats=(1,), n_images=1)
    r = assert_matches_pycocotools(gt, [pred(1, 1, (0, 0, 20, 15), 0.9)])   # IoU exactly 0.75
    assert r.precision[5, 0, 0, 0] == pytest.approx(1.0) and r.precision[6, 0, 0, 0] == 0.0


def test_equal_ious_go_to_the_later_gt():
    # the first detection overlaps both GT equally; pycocotools gives it the later one, which
    # leaves the earlier one for the second detection (2 hits instead of a hit and a miss)
    gt = coco([(1, 1, (0, 0, 10, 10)), (1, 1, (2, 0, 10, 10))], cats=(1,), n_images=1)
    r = assert_matches_pycocotools(gt, [pred(1, 1, (1, 0, 10, 10), 0.9), pred(1, 1, (-2, 0, 10, 10), 0.8)])
    assert r.per_class_map50["k1"] == pytest.approx(1.0)


def test_in_memory_ignore_flag_and_area_field():
    gts = [{"boxes": [[0, 0, 10, 10], [50, 50, 60, 60]], "classes": [0, 0], "ignore": [0, 1], "area": [5000, 100]}]
    preds = [{"boxes": [[50, 50, 60, 60], [0, 0, 10, 10]], "scores": [0.9, 0.8], "classes": [0, 0]}]
    r = evaluate_detections(gts, preds, ["a"], areas=True)
    assert r.num_gt == {"a": 1} and r.map50_95 == pytest.approx(1.0)   # hit on an ignored box: no false positive
    assert r.map_medium == pytest.approx(1.0) and r.map_small is None and r.map_large is None


def test_coco_ignore_key_is_used_only_on_request():
    gt = coco([(1, 1, (0, 0, 10, 10)), (1, 1, (50, 50, 10, 10))], cats=(1,), n_images=1)
    gt["annotations"][1]["ignore"] = 1
    preds = [pred(1, 1, (50, 50, 10, 10), 0.9), pred(1, 1, (0, 0, 10, 10), 0.8)]
    r = assert_matches_pycocotools(gt, preds)             # pycocotools overwrites 'ignore' with iscrowd
    assert r.num_gt == {"k1": 2}
    r = evaluate_coco(gt, preds, use_ignore_flag=True)
    assert r.num_gt == {"k1": 1} and r.map50_95 == pytest.approx(1.0)


def test_dataclass_inputs_and_numpy_arrays():
    gts = [GroundTruth(boxes=np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), classes=np.array([0, 1])),
           GroundTruth(boxes=np.zeros((0, 4)), classes=np.zeros(0, int))]
    preds = [Predictions(boxes=np.array([[0, 0, 10, 10]]), scores=np.array([0.7]), classes=np.array([0])),
             Predictions(boxes=np.array([[0, 0, 5, 5]]), scores=np.array([0.9]), classes=np.array([1]))]
    r = evaluate_detections(gts, preds, ["a", "b"])
    assert r.per_class["a"] == pytest.approx(1.0) and r.per_class["b"] == 0.0 and r.num_images == 2


def test_to_dict_is_json_and_areas_optional():
    gt, preds = random_case(5, n_images=10)
    d = evaluate_coco(gt, preds).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert {"map50_95", "map50", "map75", "mar", "per_class", "per_class_map50"} <= d.keys()
    assert "map_small" not in d
    assert "map_small" in evaluate_coco(gt, preds, areas=True).to_dict()


@pytest.mark.parametrize("gts, preds, match", [
    ([{"boxes": [], "classes": []}], [], "1 ground-truth images but 0"),
    ([{"boxes": [[0, 0, 1, 1]], "classes": [2]}], [{"boxes": [], "scores": [], "classes": []}], "class 2 is not in 0..1"),
    ([{"boxes": [[0, 0, 1, 1]], "classes": [0]}], [{"boxes": [[0, 0, 1, 1]], "scores": [], "classes": [0]}], "'scores' has 0"),
    ([{"boxes": [[5, 0, 1, 1]], "classes": [0]}], [{"boxes": [], "scores": [], "classes": []}], "x2 < x1"),
    ([{"boxes": [[0, 0, 1, 1]], "classes": [0]}], [{"boxes": [[0, 0, math.nan, 1]], "scores": [1], "classes": [0]}], "NaN"),
])
def test_in_memory_errors(gts, preds, match):
    with pytest.raises(EdgekitError, match=match):
        evaluate_detections(gts, preds, ["a", "b"])


def test_unknown_ids_in_predictions_are_errors():
    gt = coco([(1, 1, (10, 10, 50, 50))])
    with pytest.raises(EdgekitError, match="image_id 99, which is not among"):
        evaluate_coco(gt, [pred(99, 1, (0, 0, 1, 1), 0.5)])
    with pytest.raises(EdgekitError, match="category_id 5, which is not a ground-truth category"):
        evaluate_coco(gt, [pred(1, 5, (0, 0, 1, 1), 0.5)])


@pytest.mark.parametrize("text, kind, match", [
    ('{"images": [], "annotations": [', "gt", r"not valid JSON \(line 1, column 32"),
    ("[]", "gt", "is a list, not COCO ground truth"),
    ('{"images": [], "categories": [{"id": 1, "name": "a"}]}', "gt", "no 'annotations' list"),
    ('{"images": [{"id": 1}], "annotations": [{"image_id": 1, "category_id": 1}], "categories": [{"id": 1, "name": "a"}]}',
     "gt", r"annotations\[0\] has no 'bbox'"),
    ('{"images": [{"id": 1}], "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, -2, 3]}], '
     '"categories": [{"id": 1, "name": "a"}]}', "gt", "negative width or height"),
    ('{"x": 1}', "pred", "is an object, not a COCO results list"),
    ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 3]}]', "pred", "entry 0 has no 'score'"),
    ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, NaN, 3], "score": 1}]', "pred", "4 finite numbers"),
    ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 3], "score": Infinity}]', "pred", "score inf"),
])
def test_loader_errors(tmp_path, text, kind, match):
    p = tmp_path / "f.json"
    p.write_text(text)
    with pytest.raises(EdgekitError, match=match) as info:
        load_coco_json(p, kind=kind)
    assert "\n" not in str(info.value) and str(p) in str(info.value)


def test_loader_reads_valid_files_and_missing_file_is_error(tmp_path):
    gt = coco([(1, 1, (10, 10, 50, 50))])
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": [pred(1, 1, (10, 10, 50, 50), 0.9)]}))
    assert load_coco_json(tmp_path / "gt.json", "gt") == gt
    assert load_coco_json(tmp_path / "pred.json", "pred")[0]["score"] == 0.9
    with pytest.raises(EdgekitError, match="does not exist"):
        load_coco_json(tmp_path / "nope.json", "gt")


def test_paired_bootstrap_agrees_with_the_map_and_brackets_the_delta():
    """The bootstrap's full-set delta is exactly evaluate_detections' difference; the interval brackets it."""
    from edgekit.metrics import evaluate_detections
    from edgekit.metrics.bootstrap import paired_bootstrap_map50

    rng = np.random.default_rng(3)
    gts, a, b = [], [], []
    for _ in range(60):
        n = int(rng.integers(0, 4))
        xy = rng.uniform(0, 80, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 20, (n, 2))], 1)
        cls = rng.integers(0, 3, n)
        gts.append({"boxes": boxes, "classes": cls})
        for preds, noise in ((a, 1.0), (b, 4.0)):  # b: sloppier boxes, one extra false positive
            off = rng.normal(0, noise, (n, 2))
            jit = boxes + np.concatenate([off, off], 1)
            fp = np.array([[5.0, 5.0, 15.0, 15.0]])
            preds.append({"boxes": np.concatenate([jit, fp]), "scores": np.concatenate([rng.uniform(0.3, 1, n), [0.5]]),
                          "classes": np.concatenate([cls, [0]])})
    names = ["a", "b", "c"]
    r = paired_bootstrap_map50(gts, a, b, names, resamples=100)
    want = evaluate_detections(gts, b, names).map50 - evaluate_detections(gts, a, names).map50
    assert r["delta"] == pytest.approx(want, abs=1e-6) and r["delta"] < 0
    lo, hi = r["ci95"]
    assert lo <= r["delta"] <= hi and hi - lo > 0.01
    assert paired_bootstrap_map50(gts, a, b, names, resamples=100) == r  # seeded: reproducible
    same = paired_bootstrap_map50(gts, a, a, names, resamples=50)
    assert same["delta"] == 0 and same["ci95"] == [0, 0]
