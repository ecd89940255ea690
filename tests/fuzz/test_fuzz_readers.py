"""Property tests (hypothesis) of what edgekit reads from users: YOLO/COCO/VOC labels, manifests, model YAMLs.

The property of a reader: whatever the bytes, it returns a well-formed result or raises its one-line
EdgekitError (VOC's XML parser: ValueError, turned into an issue by its caller); never another
exception, never an out-of-range box. ``make fuzz`` runs them for 10 minutes.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from edgekit.errors import EdgekitError
from tests.fuzz.conftest import count

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-2, 3).map(lambda v: f"{v:.6f}"),
    st.integers(-10, 10).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "-0", "0x10", "1_0", "", "٣", "1e-400", "+.5", "9" * 30]),
)
LINES = st.one_of(st.lists(NUMBERS, min_size=0, max_size=10).map(" ".join), st.text(max_size=40))
JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=8),
                       lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
                       max_leaves=12)
TMP = Path(tempfile.mkdtemp(prefix="edgekit-fuzz-"))


def _image_dir() -> Path:
    d = TMP / "images"
    if not (d / "0.png").exists():
        import cv2

        d.mkdir(exist_ok=True)
        cv2.imwrite(str(d / "0.png"), np.zeros((40, 60, 3), np.uint8))
    return d


@given(lines=st.lists(LINES, max_size=12), nc=st.integers(1, 5), w=st.integers(1, 5000), h=st.integers(1, 5000))
def test_yolo_label_parser(lines, nc, w, h):
    from edgekit.data.yolo import parse_label_file

    count("yolo-labels")
    issues = []
    boxes, classes = parse_label_file("\n".join(lines), nc, w, h, "train", "x.txt", issues)
    assert boxes.shape == (len(classes), 4) and boxes.dtype == np.float32
    assert np.isfinite(boxes).all()
    assert ((boxes[:, [0, 2]] >= 0) & (boxes[:, [0, 2]] <= w)).all() and ((boxes[:, [1, 3]] >= 0) & (boxes[:, [1, 3]] <= h)).all()
    assert ((classes >= 0) & (classes < nc)).all()
    dropped = sum(i.kind in ("malformed_label", "class_out_of_range") for i in issues)
    assert len(classes) + dropped == sum(1 for ln in "\n".join(lines).splitlines() if ln.split())


COCO_IMAGE = st.fixed_dictionaries({"id": st.one_of(st.integers(-3, 5), JSONISH), "file_name": st.sampled_from(["0.png", "none.png", ""]) | JSONISH},
                                   optional={"width": st.integers(-5, 30000) | JSONISH, "height": st.integers(-5, 30000) | JSONISH})
COCO_ANN = st.fixed_dictionaries({"image_id": st.integers(-3, 5) | JSONISH},
                                 optional={"bbox": st.lists(st.floats() | st.integers(-100, 100), max_size=5) | JSONISH,
                                           "category_id": st.integers(0, 4) | JSONISH, "iscrowd": JSONISH | st.integers(0, 1),
                                           "id": JSONISH})
COCO_CAT = st.fixed_dictionaries({"id": st.integers(0, 4) | JSONISH, "name": st.text(max_size=5) | JSONISH})
COCO_DOC = st.one_of(JSONISH, st.fixed_dictionaries({"images": st.lists(COCO_IMAGE, max_size=5)},
                                                   optional={"annotations": st.lists(COCO_ANN, max_size=8) | JSONISH,
                                                             "categories": st.lists(COCO_CAT, max_size=4) | JSONISH}))


@given(doc=COCO_DOC, raw=st.booleans())
def test_coco_reader(doc, raw):
    from edgekit.data.coco import read_coco_split

    count("coco-json")
    path = TMP / "ann.json"
    path.write_text(json.dumps(doc)[:-1] if raw and json.dumps(doc) else json.dumps(doc))  # raw: a truncated file
    issues = []
    try:
        ids, names, recs = read_coco_split(path, _image_dir(), "val", issues)
    except EdgekitError as exc:
        assert "\n" not in str(exc)
        return
    assert len(ids) == len(names)
    for r in recs:
        assert r.width > 0 and r.height > 0 and np.isfinite(r.boxes).all()
        assert ((r.classes >= 0) & (r.classes < len(names))).all()


TAGS = st.sampled_from(["annotation", "object", "name", "bndbox", "xmin", "ymin", "xmax", "ymax", "size", "width",
                        "height", "difficult", "filename"])
XML_NODE = st.recursive(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8).map(
    lambda t: t.replace("<", "&lt;").replace("&", "&amp;")),
    lambda kids: st.tuples(TAGS, st.lists(kids, max_size=4)).map(lambda t: f"<{t[0]}>{''.join(t[1])}</{t[0]}>"),
    max_leaves=16)
XML_DOC = st.one_of(
    XML_NODE.map(lambda x: f"<annotation>{x}</annotation>"),
    st.text(max_size=60),
    st.builds(lambda n, x1, y1, x2, y2, w, h: (
        f"<annotation><size><width>{w}</width><height>{h}</height></size><object><name>{n}</name><bndbox>"
        f"<xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object></annotation>"),
        st.text(max_size=4).map(lambda t: t.replace("<", "").replace("&", "")), NUMBERS, NUMBERS, NUMBERS, NUMBERS,
        NUMBERS, NUMBERS),
    st.just('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "bb">]><annotation>&b;</annotation>'),
)


@given(xml=XML_DOC)
def test_voc_xml_parser(xml):
    from edgekit.data.voc import parse_voc_xml

    count("voc-xml")
    path = TMP / "a.xml"
    path.write_text(xml, encoding="utf-8", errors="surrogatepass")
    try:
        ann = parse_voc_xml(path)
    except ValueError as exc:  # read_voc_split makes it a malformed_label issue
        assert "\n" not in str(exc)
        return
    assert isinstance(ann["width"], int) and isinstance(ann["height"], int)
    for name, box, difficult in ann["objects"]:
        assert isinstance(name, str) and len(box) == 4 and all(math.isfinite(v) for v in box)


VALID_MANIFEST = json.loads((Path(__file__).with_name("valid_manifest.json")).read_text())


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(VALID_MANIFEST) if p]


@given(edits=st.lists(st.tuples(st.sampled_from(ALL_PATHS), st.one_of(st.just(KeyError), JSONISH)), min_size=1, max_size=4))
def test_manifest_reader(edits):
    from edgekit.runtime.contract import check_manifest

    count("manifest")
    m = copy.deepcopy(VALID_MANIFEST)
    for path, value in edits:
        node = m
        try:
            for k in path[:-1]:
                node = node[k]
            if value is KeyError:
                del node[path[-1]]
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced the parent
    try:
        check_manifest(m, "x.onnx.json")
    except EdgekitError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("x.onnx.json: manifest ")


SPEC_KEYS = st.sampled_from(["task", "names", "input", "output", "size", "layout", "color", "mean", "std", "resize",
                             "boxes", "scores", "box_format", "normalized", "score_activation", "background_class",
                             "model", "classes", "logits", "anchors"])
YAMLISH = st.recursive(st.none() | st.booleans() | st.integers(-5, 500) | st.floats(-1e3, 1e3) | st.text(max_size=6),
                       lambda kids: st.lists(kids, max_size=4) | st.dictionaries(SPEC_KEYS, kids, max_size=5),
                       max_leaves=16)


@given(doc=st.one_of(st.dictionaries(SPEC_KEYS, YAMLISH, max_size=6), YAMLISH), text=st.none() | st.text(max_size=60))
def test_model_yaml_reader(doc, text):
    import yaml

    from edgekit.runtime.model_yaml import read_spec

    count("model-yaml")
    path = TMP / "spec.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(doc), encoding="utf-8", errors="surrogatepass")
    (TMP / "model.onnx").touch()
    try:
        spec = read_spec(path)
    except EdgekitError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(spec, dict) and spec["task"] in ("detect", "classify", "raw")
