"""``--single-cls`` and ``--map-classes`` in ``edgekit val`` and ``edgekit eval`` (issue 19: evaluation that travels).

The shipped fish detector (seven species ids) is scored on a set labelled with one class,
"Fish", as another underwater set would be: refused without a mapping, scored
class-agnostically with one. COCO files are remapped the same way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

WEIGHTS = Path(__file__).resolve().parents[2] / "edgekit" / "assets" / "weights" / "mobilenetv2_050-yolo-p3-fish4knowledge-320.pt"


@pytest.fixture(scope="module")
def one_class_set(tmp_path_factory, sample_yaml) -> Path:
    """The sample's test split relabelled as a one-class set named "Fish" (another dataset's convention)."""
    root = tmp_path_factory.mktemp("fish1")
    src = sample_yaml.parent / "test"
    shutil.copytree(src / "images", root / "test" / "images")
    (root / "test" / "labels").mkdir(parents=True)
    for lab in (src / "labels").glob("*.txt"):
        lines = [ln.split() for ln in lab.read_text().splitlines() if ln.strip()]
        (root / "test" / "labels" / lab.name).write_text("".join("0 " + " ".join(p[1:]) + "\n" for p in lines))
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: test/images\nval: test/images\ntest: test/images\nnames: [Fish]\n")
    return data


def _val(capsys, *args) -> tuple[int, str, str]:
    from edgekit.cli.main import main

    code = main(["val", "--weights", str(WEIGHTS), *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_other_label_set_is_refused_without_a_mapping(one_class_set, capsys):
    code, _, err = _val(capsys, "--data", one_class_set, "--split", "test")
    assert code == 1 and err.count("\n") == 1 and "--single-cls" in err and "Traceback" not in err


def test_single_cls_scores_the_species_detector_on_a_one_class_set(one_class_set, sample_yaml, capsys):
    code, out, _ = _val(capsys, "--data", one_class_set, "--split", "test", "--single-cls", "--json")
    r = json.loads(out)
    assert code == 0 and r["classes_evaluated"] == ["object"] and r["class_map"] == "single-cls"
    agnostic = r["map50"]
    code, out, _ = _val(capsys, "--data", sample_yaml, "--split", "test", "--single-cls", "--json")
    same_boxes = json.loads(out)["map50"]
    assert agnostic == pytest.approx(same_boxes, abs=1e-9), "the same boxes under another class name score the same"
    code, out, _ = _val(capsys, "--data", sample_yaml, "--split", "test", "--json")
    per_species = json.loads(out)["map50"]
    assert agnostic > per_species > 0.05  # finding fish is easier than naming the species


def test_map_classes_merges_renames_and_drops(one_class_set, tmp_path, capsys):
    table = tmp_path / "map.yaml"
    table.write_text('"0": Fish\n"1": Fish\n"2": Fish\n"5": Fish\n"6": Fish\n"7": Fish\n"8": null\n')
    code, out, _ = _val(capsys, "--data", one_class_set, "--split", "test", "--map-classes", table, "--json")
    r = json.loads(out)
    assert code == 0 and r["classes_evaluated"] == ["Fish"] and r["class_map"]["8"] is None


@pytest.mark.parametrize("args, msg", [
    (["--single-cls", "--map-classes", "x.yaml"], "both given"),
    (["--map-classes", "/no/such.yaml"], "does not exist"),
])
def test_bad_class_options_are_one_line(sample_yaml, capsys, args, msg):
    code, _, err = _val(capsys, "--data", sample_yaml, *args)
    assert code == 1 and msg in err and err.count("\n") == 1


def test_eval_single_cls_and_map_classes_on_coco_files(tmp_path, capsys):
    from edgekit.cli.main import main

    gt = {"images": [{"id": 1, "width": 100, "height": 100}],
          "categories": [{"id": 1, "name": "cod"}, {"id": 2, "name": "eel"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900},
                          {"id": 2, "image_id": 1, "category_id": 2, "bbox": [50, 50, 30, 30], "area": 900}]}
    swapped = [{"image_id": 1, "category_id": 2, "bbox": [10, 10, 30, 30], "score": 0.9},
               {"image_id": 1, "category_id": 1, "bbox": [50, 50, 30, 30], "score": 0.8}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(swapped))
    (tmp_path / "map.yaml").write_text("cod: fish\neel: fish\n")
    base = ["eval", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"), "--json"]
    results = {}
    for name, extra in {"plain": [], "single": ["--single-cls"], "map": ["--map-classes", str(tmp_path / "map.yaml")]}.items():
        assert main(base + extra) == 0
        results[name] = json.loads(capsys.readouterr().out)["map50"]
    assert results["plain"] == 0.0 and results["single"] == pytest.approx(1.0) and results["map"] == pytest.approx(1.0)
    assert json.loads(json.dumps(gt)) == json.loads((tmp_path / "gt.json").read_text())  # input untouched
