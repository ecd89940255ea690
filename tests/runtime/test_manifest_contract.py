"""A manifest that disagrees with its model, or lacks keys, is one clear line at load time.

Each case edits the sidecar of a real tiny export (a random-weight yolo-lite at 64 px, ONNX)
the way a user or a copy mistake would, then loads it through ``edgekit.runtime.load`` and
through ``edgekit predict``: one EdgekitError / one stderr line naming the problem and the
fix, exit 1, no traceback, the artifact untouched.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import sys

import pytest

from edgekit.errors import EdgekitError
from edgekit.runtime import load
from tests.export.export_helpers import make_checkpoint


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from edgekit.export import export

    out = tmp_path_factory.mktemp("contract")
    ckpt = make_checkpoint(out / "yl.pt", "yolo-lite", 64, num_classes=2)
    rep = export(ckpt, ["onnx"], out=out)
    assert rep.ok, rep.results[0].reason
    return out / rep.results[0].file


def _set(path: str, value):
    def edit(m):
        *keys, last = path.split(".")
        node = m
        for k in keys:
            node = node[int(k)] if isinstance(node, list) else node[k]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return edit


def _both(*edits):
    def edit(m):
        for e in edits:
            e(m)
    return edit


# (case id, edit of the manifest dict, what the one line must say)
CASES = [
    ("no-input", _set("input", KeyError), "has no 'input'"),
    ("no-preprocess", _set("preprocess", KeyError), "has no 'preprocess'"),
    ("no-names", _set("names", KeyError), "has no 'names'"),
    ("short-names", _set("names", ["fish"]), "lists 1 class names but the model has 2 classes"),
    ("names-not-strings", _set("names", [1, 2]), "'names' should be a list of strings"),
    ("bad-task", _set("task", "segment"), "'task' is 'segment'"),
    ("bad-layout", _set("input.layout", "CHW"), "'input.layout' is 'CHW'"),
    ("bad-dtype", _set("input.dtype", "float64"), "'input.dtype' is 'float64'"),
    ("int8-without-quant", _set("input.dtype", "int8"), "has no 'input.quant'"),
    ("zero-scale", _both(_set("input.dtype", "uint8"), _set("input.quant", [0.0, 0])), "'input.quant' should be"),
    ("shape-not-ints", _set("input.shape", [1, 3, "64", 64]), "'input.shape' should be a list of 4 whole numbers"),
    ("wrong-size", _set("input.shape", [1, 3, 128, 128]), "says the input is NCHW [1, 3, 128, 128], but the model takes"),
    ("imgsz-disagrees", _set("preprocess.imgsz", [96, 96]), "'preprocess.imgsz' [96, 96] and the NCHW input shape"),
    ("nhwc-claimed", _both(_set("input.layout", "NHWC"), _set("input.shape", [1, 64, 64, 3])), "says the input is NHWC"),
    ("dtype-disagrees", _both(_set("input.dtype", "uint8"), _set("input.quant", [0.0039, 0])),
     "says the input is uint8, but the model takes float32"),
    ("bad-pad", _set("preprocess.pad_value", 300), "'preprocess.pad_value' is 300"),
    ("no-outputs", _set("outputs", []), "'outputs' should be a non-empty list"),
    ("bad-decode-index", _set("outputs.0.decode_index", 3), "'outputs[].decode_index' is [3]"),
    ("extra-output", lambda m: m["outputs"].append(copy.deepcopy(m["outputs"][0]) | {"decode_index": 1}),
     "has 2 outputs but 1 strides and 1 anchor groups"),
    ("lost-anchor", lambda m: m["decode"]["anchors"][0].pop(), "decodes output 0 as 28 channels"),
    ("more-classes", _both(_set("decode.num_classes", 3), _set("names", ["a", "b", "c"])),
     "decodes output 0 as 40 channels"),
    ("bad-anchor", _set("decode.anchors", [[[1.0, -2.0]]]), "'decode.anchors[0]' should be"),
    ("bad-head", _set("decode.type", "ssd"), "'decode.type' is 'ssd'"),
    ("no-num-classes", _set("decode.num_classes", KeyError), "has no 'decode.num_classes'"),
]


def _broken(tiny_onnx, tmp_path, edit):
    art = tmp_path / tiny_onnx.name
    shutil.copy(tiny_onnx, art)
    man = json.loads((tiny_onnx.parent / (tiny_onnx.name + ".json")).read_text())
    edit(man)
    (tmp_path / (art.name + ".json")).write_text(json.dumps(man))
    return art


@pytest.mark.parametrize("case,edit,message", CASES, ids=[c[0] for c in CASES])
def test_a_broken_manifest_is_one_line(tiny_onnx, tmp_path, case, edit, message):
    art = _broken(tiny_onnx, tmp_path, edit)
    digest = hashlib.sha256(art.read_bytes()).hexdigest()
    with pytest.raises(EdgekitError) as err:
        load(art)
    text = str(err.value)
    assert message in text and "\n" not in text, text
    assert text.startswith(str(art) + ".json: manifest ") and "re-export the model" in text
    assert hashlib.sha256(art.read_bytes()).hexdigest() == digest  # the input is never modified


@pytest.mark.parametrize("case", ["short-names", "wrong-size", "lost-anchor"])
def test_predict_cli_says_it_in_one_line(tiny_onnx, tmp_path, sample_image, case):
    edit, message = {c[0]: (c[1], c[2]) for c in CASES}[case]
    art = _broken(tiny_onnx, tmp_path, edit)
    r = subprocess.run([sys.executable, "-m", "edgekit", "predict", str(art), str(sample_image)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_the_intact_manifest_and_the_embedded_one_load(tiny_onnx, tmp_path):
    assert load(tiny_onnx).describe()["classes"] == 2
    art = tmp_path / tiny_onnx.name  # no sidecar: the manifest inside the .onnx is checked the same way
    shutil.copy(tiny_onnx, art)
    assert load(art).names == ["c0", "c1"]
