"""Per-class reject thresholds: known answers on synthetic probabilities, the bound on the
calibration set, the binomial guarantee on simulated data, and the CLI end to end on the
shipped Fish4Knowledge classifier with the embedded sample's thumbnails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.runtime.classify import postprocess_classification
from edgekit.runtime.reject import REJECT_ALL, apply_reject, calibrate_reject, reject_report

WEIGHTS = (Path(__file__).resolve().parents[2] / "edgekit" / "assets" / "weights"
           / "mobilenetv2-cls-fish4knowledge-64.pt")


def two_class(conf, correct, label_of_pred):
    """Rows whose top class is ``label_of_pred`` with probability ``conf``; true label is it when ``correct``."""
    conf = np.asarray(conf, float)
    pred = np.asarray(label_of_pred)
    probs = np.zeros((len(conf), 2))
    probs[np.arange(len(conf)), pred] = conf
    probs[np.arange(len(conf)), 1 - pred] = 1 - conf
    labels = np.where(np.asarray(correct, bool), pred, 1 - pred)
    return probs, labels


def simulated(n, c, rng, reliability):
    """A classifier on ``c`` classes whose error given confidence s is (1 - s) * reliability[predicted class]."""
    pred = rng.integers(0, c, n)
    conf = rng.uniform(1.0 / c + 0.01, 1.0, n)
    wrong = rng.random(n) < (1 - conf) * np.asarray(reliability)[pred]
    other = (pred + rng.integers(1, c, n)) % c
    labels = np.where(wrong, other, pred)
    probs = np.full((n, c), 0.0)
    probs[np.arange(n), pred] = conf
    rest = (1 - conf) / (c - 1)
    for j in range(c):
        probs[pred != j, j] = rest[pred != j]
    return probs, labels


def test_known_thresholds():
    # class 0: sorted 0.95 ok, 0.9 ok, 0.8 ok, 0.7 wrong, 0.6 ok -> error 0, 0, 0, 1/4, 1/5
    conf = [0.95, 0.9, 0.8, 0.7, 0.6]
    probs, labels = two_class(conf, [1, 1, 1, 0, 1], [0] * 5)
    r = calibrate_reject(probs, labels, max_error=0.2, min_support=1)
    assert r["thresholds"][0] == 0.6  # accepting all 5 gives 1/5 = 0.2, allowed
    r = calibrate_reject(probs, labels, max_error=0.19, min_support=1)
    assert r["thresholds"][0] == 0.8 and r["accepted"] == 3 and r["accepted_error"] == 0.0
    assert r["thresholds"][1] == REJECT_ALL and r["per_class"][1]["support"] == 0  # never predicted: no evidence
    assert r["per_class"][1]["source"] == "none"


def test_ties_are_accepted_together():
    # two predictions at 0.9, one right one wrong: no threshold separates them
    probs, labels = two_class([0.99, 0.9, 0.9], [1, 1, 0], [0, 0, 0])
    r = calibrate_reject(probs, labels, max_error=0.4, min_support=1)
    assert r["thresholds"][0] == 0.9 and r["accepted_error"] == pytest.approx(1 / 3, abs=1e-4)
    r = calibrate_reject(probs, labels, max_error=0.3, min_support=1)
    assert r["thresholds"][0] == 0.99 and r["accepted"] == 1


@pytest.mark.parametrize("max_error", [0.01, 0.05, 0.1, 0.2])
def test_bound_holds_on_calibration_set(max_error):
    rng = np.random.default_rng(0)
    probs, labels = simulated(3000, 5, rng, [0.3, 0.6, 1.0, 1.4, 1.8])
    r = calibrate_reject(probs, labels, max_error, min_support=30)
    assert r["accepted"] > 0 and r["accepted_error"] <= max_error
    for pc in r["per_class"]:
        assert pc["error"] is None or pc["error"] <= max_error + 1e-9
    # the thresholds as the runtime applies them give the same accepted set
    again = reject_report(probs, labels, r["thresholds"])
    assert again["accepted"] == r["accepted"] and again["accepted_error"] == r["accepted_error"]
    # as loose as allowed: one more sample of the most covered class would break its bound
    j = max(range(5), key=lambda k: r["per_class"][k]["accepted"])
    m = probs.argmax(1) == j
    conf = probs[m, j]
    below = conf[conf < r["thresholds"][j]]
    if below.size:
        wider = list(r["thresholds"])
        wider[j] = below.max()
        looser = reject_report(probs[m], labels[m], wider)
        assert looser["accepted_error"] > max_error


def test_impossible_target_rejects_the_class():
    # class 1 is always wrong when predicted, even when confident: no threshold reaches 5 %
    p0, l0 = two_class(np.linspace(0.6, 1.0, 300), [1] * 300, [0] * 300)
    p1, l1 = two_class(np.linspace(0.6, 1.0, 40), [0] * 40, [1] * 40)
    probs, labels = np.concatenate([p0, p1]), np.concatenate([l0, l1])
    for delta in (None, 0.1):
        r = calibrate_reject(probs, labels, 0.05, min_support=30, delta=delta)
        assert r["thresholds"][1] > 1 and r["per_class"][1]["accepted"] == 0
        assert r["per_class"][0]["accepted"] > 0 and r["accepted_error"] == 0.0
        assert (apply_reject(probs, r["thresholds"])[300:] == -1).all()


def test_thresholds_follow_class_reliability():
    rng = np.random.default_rng(1)
    probs, labels = simulated(6000, 3, rng, [0.2, 1.0, 2.0])
    r = calibrate_reject(probs, labels, 0.05)
    t = r["thresholds"]
    assert t[0] < t[1] < t[2], t
    cov = [pc["coverage"] for pc in r["per_class"]]
    assert cov[0] > cov[1] > cov[2]


def test_low_support_classes_share_a_pooled_threshold():
    rng = np.random.default_rng(2)
    probs, labels = simulated(2000, 4, rng, [0.5, 1.0, 1.0, 1.0])
    keep = (probs.argmax(1) <= 1) | (rng.random(len(labels)) < 0.01)  # classes 2 and 3 become rare
    probs, labels = probs[keep], labels[keep]
    r = calibrate_reject(probs, labels, 0.1, min_support=30)
    assert [pc["source"] for pc in r["per_class"]] == ["class", "class", "pooled", "pooled"]
    assert r["thresholds"][2] == r["thresholds"][3]
    pooled = np.isin(probs.argmax(1), [2, 3])
    rep = reject_report(probs[pooled], labels[pooled], r["thresholds"])
    assert rep["accepted_error"] is None or rep["accepted_error"] <= 0.1
    assert r["accepted_error"] <= 0.1


def test_binomial_bound_holds_on_new_data():
    """True error among accepted, for P(wrong | s) = 1 - s and s ~ U(0.5, 1), is (1 - t) / 2 at threshold t:
    0.05 at t = 0.9. The binomial thresholds must stay >= 0.9 in (nearly) every draw; the empirical
    ones fall below it about half the time, which is why they only bound the calibration set."""
    rng = np.random.default_rng(3)
    binomial, empirical = [], []
    for _ in range(20):
        s = rng.uniform(0.5, 1.0, 20000)
        correct = rng.random(s.size) >= 1 - s
        probs, labels = two_class(s, correct, np.zeros(s.size, int))
        binomial.append(calibrate_reject(probs, labels, 0.05, delta=0.1)["thresholds"][0])
        empirical.append(calibrate_reject(probs, labels, 0.05)["thresholds"][0])
    binomial, empirical = np.array(binomial), np.array(empirical)
    assert np.mean(binomial < 0.9) <= 0.1
    assert 0.1 < np.mean(empirical < 0.9) < 0.9
    assert (binomial < 0.96).all()  # conservative, not absurd: true error 0.02 there


def test_binomial_too_little_data_rejects():
    probs, labels = two_class(np.linspace(0.9, 1.0, 20), [1] * 20, [0] * 20)
    # 20 right answers in a row prove nothing at 5 % (0.95 ** 20 = 0.36)
    assert calibrate_reject(probs, labels, 0.05, delta=0.1)["thresholds"][0] > 1
    assert calibrate_reject(probs, labels, 0.05)["thresholds"][0] == 0.9


def test_postprocess_agrees_with_apply_reject():
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 2, (200, 4))
    from edgekit.runtime.classify import softmax

    probs = softmax(logits)
    thresholds = [0.5, 0.9, REJECT_ALL, 0.3]
    want = apply_reject(probs, thresholds)
    got = [postprocess_classification(row, k=2, unsure=thresholds)["label"] for row in logits]
    assert got == want.tolist()


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_bad_max_error(bad):
    from edgekit.errors import EdgekitError

    with pytest.raises(EdgekitError, match="max_error"):
        calibrate_reject(np.array([[0.9, 0.1]]), [0], bad)


# ---- end to end: the shipped classifier, exported, calibrated through the CLI ----


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    from edgekit.export import export

    if not WEIGHTS.is_file():
        pytest.fail(f"{WEIGHTS} is missing: the shipped Fish4Knowledge classifier")
    out = tmp_path_factory.mktemp("cls-export")
    rep = export(str(WEIGHTS), ["onnx"], out=out)
    assert [r.status for r in rep.results] == ["ok"]
    return next(out.glob("*.onnx"))


@pytest.fixture(scope="module")
def sample_crops(tmp_path_factory) -> Path:
    from edgekit.data import sample_data_yaml
    from edgekit.data.crops import make_crops

    return make_crops(sample_data_yaml(), tmp_path_factory.mktemp("crops") / "f4k")


def test_cli_calibrates_and_writes_manifest(artifact, sample_crops, capsys):
    from edgekit.reject_calibration import artifact_probabilities
    from edgekit.cli.main import main
    from edgekit.data.folders import load_image_folder
    from edgekit.runtime.runner import manifest_path, read_manifest

    assert main(["calibrate-reject", str(artifact), "--data", str(sample_crops), "--max-error", "0.05",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "overall: coverage" in out and "wrote reject thresholds" in out
    block = json.loads(manifest_path(artifact).read_text())["reject"]
    assert read_manifest(artifact)["reject"] == block
    cal = block["calibration"]
    assert len(block["thresholds"]) == 7 and block["max_error"] == 0.05 and block["method"] == "empirical"
    assert cal["split"] == "val" and cal["images"] == 219 and len(cal["hash"]) == 16
    assert cal["coverage"] > 0 and cal["accepted_error"] <= 0.05
    # recompute the calibration split through the runtime path: the bound holds as the board applies it
    ds = load_image_folder(sample_crops)
    val = ds.split("val")
    probs = artifact_probabilities(artifact, val, threads=1)
    labels = np.array([c for _, c in val])
    rep = reject_report(probs, labels, block["thresholds"])
    assert rep["accepted"] == cal["accepted"] and rep["accepted_error"] <= 0.05
    test = ds.split("test")
    held = reject_report(artifact_probabilities(artifact, test, threads=1), np.array([c for _, c in test]),
                         block["thresholds"])
    print(f"\nsample val (calibration): coverage {cal['coverage']} error {cal['accepted_error']}; "
          f"held-out test: coverage {held['coverage']} error {held['accepted_error']} (top-1 {held['top1']})")


def test_cli_json_and_delta(artifact, sample_crops, capsys):
    from edgekit.cli.main import main

    assert main(["calibrate-reject", str(artifact), "--data", str(sample_crops), "--max-error", "0.1",
                 "--delta", "0.1", "--json", "--threads", "1"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["method"] == "binomial" and r["delta"] == 0.1
    assert r["calibration"]["accepted_error"] is None or r["calibration"]["accepted_error"] <= 0.1


def test_cli_user_errors(artifact, sample_crops, tmp_path, capsys):
    from edgekit.cli.main import main

    def fails(argv, words):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("edgekit: error:") and words in err, err

    fails(["calibrate-reject", str(artifact), "--data", str(sample_crops), "--max-error", "0"], "is not a number above 0 and at most 1")
    fails(["calibrate-reject", str(artifact), "--data", str(sample_crops), "--max-error", "1.2"], "is not a number above 0 and at most 1")
    fails(["calibrate-reject", str(artifact), "--data", str(tmp_path / "nope")], "does not exist")
    fails(["calibrate-reject", str(tmp_path / "none.onnx"), "--data", str(sample_crops)], "does not exist")
    det = tmp_path / "det.onnx"
    det.write_bytes(artifact.read_bytes())
    man = json.loads(Path(str(artifact) + ".json").read_text())
    Path(str(det) + ".json").write_text(json.dumps({**man, "task": "detect"}))
    fails(["calibrate-reject", str(det), "--data", str(sample_crops)], "not a classifier")


def test_cli_val_only_root(artifact, sample_crops, tmp_path, capsys):
    """Calibration needs only the split: a root holding just val/<class>/ works, classes matched to the model."""
    import shutil

    from edgekit.cli.main import main

    shutil.copytree(sample_crops / "val", tmp_path / "held" / "val")
    model = tmp_path / artifact.name
    shutil.copy(artifact, model)  # no sidecar: the manifest embedded in the ONNX file is read, and a sidecar made
    assert main(["calibrate-reject", str(model), "--data", str(tmp_path / "held"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["calibration"]["images"] == 219 and Path(r["manifest"]).is_file()
    man = json.loads(Path(r["manifest"]).read_text())
    assert man["task"] == "classify" and man["reject"]["thresholds"] == r["thresholds"]


@pytest.mark.shared
def test_full_fish4knowledge_val_bound(artifact, shared_dir, tmp_path_factory, capsys):
    """The done-criterion on the full thumbnails: 1594 val crops calibrate, 695 test crops are held out."""
    from edgekit.reject_calibration import artifact_probabilities, calibrate_artifact
    from edgekit.data.crops import make_crops
    from edgekit.data.folders import load_image_folder

    crops = make_crops(shared_dir / "data" / "fish4knowledge" / "data.yaml", tmp_path_factory.mktemp("f4k") / "c")
    test = load_image_folder(crops).split("test")
    test_p, test_y = artifact_probabilities(artifact, test, threads=1), np.array([c for _, c in test])
    for max_error in (0.05, 0.10):
        r = calibrate_artifact(artifact, crops, max_error, threads=1, write=False)
        cal = r["calibration"]
        assert cal["images"] == 1594 and cal["accepted_error"] <= max_error and cal["coverage"] > 0.3
        held = reject_report(test_p, test_y, r["thresholds"])
        with capsys.disabled():
            print(f"\nF4K max_error {max_error}: val coverage {cal['coverage']} error {cal['accepted_error']}; "
                  f"test coverage {held['coverage']} error {held['accepted_error']}")


def test_runtime_classifier_applies_the_calibrated_thresholds(artifact, sample_crops, tmp_path, capsys):
    """Through the public API: after calibrate-reject, ``load(...).predict`` answers "unsure" by the manifest's
    per-class thresholds, and its accepted answers on the calibration split err at most max_error."""
    import shutil

    from edgekit.cli.main import main
    from edgekit.data.folders import load_image_folder
    from edgekit.runtime import load

    model = tmp_path / artifact.name
    shutil.copy(artifact, model)
    assert main(["calibrate-reject", str(model), "--data", str(sample_crops), "--max-error", "0.05", "--json"]) == 0
    thresholds = json.loads(capsys.readouterr().out)["thresholds"]
    clf = load(model, threads=1)
    assert clf.reject_thresholds == thresholds
    items = load_image_folder(sample_crops).split("val")
    results = clf.predict([str(p) for p, _ in items])
    accepted = [(r.label, y) for r, (_, y) in zip(results, items) if not r.unsure]
    wrong = sum(label != y for label, y in accepted)
    assert 0 < len(accepted) < len(items) and wrong <= 0.05 * len(accepted)
    assert all(r.name == "unsure" for r in results if r.unsure)
    # unsure=False turns the reject off: every image gets its top class
    assert not any(r.unsure for r in clf.predict([str(p) for p, _ in items[:20]], unsure=False))
