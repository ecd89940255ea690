"""Every dataset reader on real data, and the malformed inputs each must survive."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.data import load_dataset
from edgekit.data.voc import parse_voc_xml
from edgekit.errors import DatasetError


def kinds(ds):
    return sorted({i.kind for i in ds.issues})


def test_sample_yolo_reads_splits_and_pixels(sample_yaml):
    ds = load_dataset(sample_yaml)
    assert ds.format == "yolo" and ds.names == ["0", "1", "2", "5", "6", "7", "8"]
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 120, "val": 40, "test": 40}
    rec = ds.split("train")[0]
    assert (rec.width, rec.height) == (360, 202)
    # boxes are pixels inside the image, matching the normalised txt
    line = (sample_yaml.parent / "train" / "labels" / f"{rec.path.stem}.txt").read_text().split("\n")[0].split()
    cx, cy, w, h = map(float, line[1:])
    np.testing.assert_allclose(rec.boxes[0], [(cx - w / 2) * 360, (cy - h / 2) * 202, (cx + w / 2) * 360, (cy + h / 2) * 202], atol=1e-3)
    assert ds.issues == []


def test_fish4knowledge_roboflow_paths(shared_dir):
    ds = load_dataset(shared_dir / "data" / "fish4knowledge" / "data.yaml")
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 1315, "val": 376, "test": 188}
    assert sum(len(r.classes) for r in ds.split("train")) == 5285


def test_bccd_voc_yaml_and_folder(bccd_yaml, shared_dir):
    ds = load_dataset(bccd_yaml)
    assert ds.format == "voc" and ds.names == ["RBC", "WBC", "Platelets"]
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 205, "val": 87, "test": 72}
    degenerate = [i for i in ds.issues if i.kind == "degenerate_box"]
    assert sorted(i.path.rsplit("/", 1)[1] for i in degenerate) == ["BloodImage_00338.xml", "BloodImage_00343.xml"]
    folder = load_dataset(shared_dir / "data" / "bccd")
    assert folder.names == ["Platelets", "RBC", "WBC"]  # sorted names when the yaml gives none
    assert sum(len(v) for v in folder.splits.values()) == 364


def test_label_problems_are_recorded_not_fatal(sample_copy):
    labels = sample_copy.parent / "train" / "labels"
    first, second, third = sorted(labels.glob("*.txt"))[:3]
    first.write_text("9 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1 0.1\n")  # class out of range + a good one
    second.write_text("0 0.5 0.5 0 0.2\nabc 1 2 3 4\n0 0.5\n")  # degenerate, malformed, too few fields
    third.write_text("0 1.2 0.5 0.2 0.2\n")  # out of bounds: clipped
    ds = load_dataset(sample_copy)
    assert {"class_out_of_range", "degenerate_box", "malformed_label", "box_out_of_bounds"} <= set(kinds(ds))
    rec = next(r for r in ds.split("train") if r.path.stem == first.stem)
    assert rec.classes.tolist() == [0]
    clipped = next(r for r in ds.split("train") if r.path.stem == third.stem)
    assert clipped.boxes[0, 2] == pytest.approx(360.0)


def test_missing_images_and_orphan_labels(sample_copy):
    images = sample_copy.parent / "valid" / "images"
    victim = sorted(images.glob("*.jpg"))[0]
    victim.unlink()
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    ds = load_dataset(sample_copy)
    assert "label_without_image" in kinds(ds) and "unreadable_image" in kinds(ds)
    assert len(ds.split("val")) == 39  # one removed; the broken file is not a record


def test_txt_split_list_and_names_dict(sample_copy):
    root = sample_copy.parent
    listing = root / "val.txt"
    listing.write_text("\n".join(f"valid/images/{p.name}" for p in sorted((root / "valid" / "images").glob("*.jpg"))[:5]))
    sample_copy.write_text("path: .\ntrain: train/images\nval: val.txt\nnames: {0: a, 1: b, 2: c, 3: d, 4: e, 5: f, 6: g}\n")
    ds = load_dataset(sample_copy)
    assert len(ds.split("val")) == 5 and ds.names[0] == "a"
    listing.write_text("valid/images/nope.jpg\n")
    assert "missing_image" in kinds(load_dataset(sample_copy))


@pytest.mark.parametrize("text, message", [
    ("train: [unclosed", "not valid YAML"),
    ("- a\n- b\n", "YAML mapping"),
    ("train: train/images\n", "no 'names'"),
    ("train: nowhere/images\nnames: [a]\n", "does not exist"),
    ("names: [a]\n", "no train/val/test"),
    ("train: train/images\nnames: [a]\nnc: 3\n", "nc is 3"),
    ("format: pascal\nnames: [a]\n", "unknown format"),
])
def test_bad_data_yaml_is_one_clear_error(sample_copy, text, message):
    sample_copy.write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_dataset(sample_copy)


def test_voc_entity_bomb_and_malformed_xml_are_refused(tmp_path):
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
                    + "".join(f'<!ENTITY lol{i} "{"&lol%s;" % ("" if i == 1 else i - 1) * 10}">' for i in range(1, 10))
                    + ']>\n<annotation><filename>&lol9;</filename></annotation>\n')
    with pytest.raises(ValueError, match="unsafe XML"):
        parse_voc_xml(bomb)
    broken = tmp_path / "broken.xml"
    broken.write_text("<annotation><object><name>RBC</name>")
    with pytest.raises(ValueError, match="malformed XML"):
        parse_voc_xml(broken)
    nonum = tmp_path / "nonum.xml"
    nonum.write_text("<annotation><object><name>a</name><bndbox><xmin>x</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax></bndbox></object></annotation>")
    with pytest.raises(ValueError, match="not a number"):
        parse_voc_xml(nonum)


def test_voc_bad_annotation_is_an_issue_not_a_crash(tmp_path, sample_yaml):
    import shutil
    root = tmp_path / "voc"
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True)
    img = sorted((sample_yaml.parent / "train" / "images").glob("*.jpg"))[0]
    shutil.copy(img, root / "JPEGImages" / "a.jpg")
    shutil.copy(img, root / "JPEGImages" / "b.jpg")
    (root / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>360</width><height>202</height></size>"
        "<object><name>fish</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object>"
        "<object><name>crab</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object></annotation>")
    (root / "Annotations" / "b.xml").write_text('<!DOCTYPE x [<!ENTITY e "e">]><annotation>&e;</annotation>')
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nb\nc\n")
    (root / "data.yaml").write_text("format: voc\npath: .\ntrain: ImageSets/Main/train.txt\nnames: [fish]\n")
    ds = load_dataset(root / "data.yaml")
    assert [r.path.name for r in ds.split("train")] == ["a.jpg"]
    assert {"malformed_label", "unknown_class", "missing_image"} <= set(kinds(ds))


def test_coco_json_reader_and_errors(tmp_path, sample_yaml):
    img = sorted((sample_yaml.parent / "train" / "images").glob("*.jpg"))[0]
    doc = {"images": [{"id": 7, "file_name": img.name, "width": 360, "height": 202},
                      {"id": 8, "file_name": "missing.jpg", "width": 10, "height": 10}],
           "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 20, 30, 40], "iscrowd": 0},
                           {"id": 2, "image_id": 7, "category_id": 5, "bbox": [0, 0, 5, 5], "iscrowd": 1},
                           {"id": 3, "image_id": 7, "category_id": 99, "bbox": [0, 0, 5, 5]},
                           {"id": 4, "image_id": 999, "category_id": 3, "bbox": [0, 0, 5, 5]}],
           "categories": [{"id": 5, "name": "crab"}, {"id": 3, "name": "fish"}]}
    gt = img.parent / "gt.json"
    import shutil
    d = tmp_path / "coco"
    d.mkdir()
    shutil.copy(img, d / img.name)
    gt = d / "gt.json"
    gt.write_text(json.dumps(doc))
    ds = load_dataset(gt)
    assert ds.names == ["fish", "crab"] and ds.category_ids == [3, 5]
    rec = ds.split("val")[0]
    assert rec.image_id == 7 and rec.classes.tolist() == [0, 1] and rec.iscrowd.tolist() == [False, True]
    np.testing.assert_allclose(rec.boxes[0], [10, 20, 40, 60])
    assert {"missing_image", "class_out_of_range", "label_without_image"} <= set(kinds(ds))
    gt.write_text(json.dumps(doc)[:-40])
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_dataset(gt)
    gt.write_text("[]")
    with pytest.raises(DatasetError, match="not COCO ground truth"):
        load_dataset(gt)
