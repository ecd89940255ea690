"""`edgekit data split` and VOC folders as users have them (lower-case names, no ImageSets)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from edgekit.data import load_dataset, sample_data_yaml
from edgekit.data.loader import convert_dataset
from edgekit.data.split import split_dataset
from edgekit.errors import DatasetError


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def user_voc(tmp_path_factory):
    """The sample set as a VOC folder the way users have one: annotations/ + images/, no ImageSets, no yaml."""
    base = tmp_path_factory.mktemp("voc")
    convert_dataset(sample_data_yaml(), "voc", base / "std")
    user = base / "myvoc"
    user.mkdir()
    shutil.copytree(base / "std" / "Annotations", user / "annotations")
    shutil.copytree(base / "std" / "JPEGImages", user / "images")
    return user


def all_images(ds):
    return sorted(str(r.path.resolve()) for recs in ds.splits.values() for r in recs)


def test_lower_case_voc_folder_is_found(user_voc):
    ds = load_dataset(user_voc)
    assert ds.format == "voc" and list(ds.splits) == ["train"]
    assert len(ds.split("train")) == len(list((user_voc / "annotations").glob("*.xml")))
    with pytest.raises(DatasetError, match="edgekit data split"):
        ds.split("val")


def test_split_writes_disjoint_seeded_lists(user_voc, tmp_path):
    before = sorted(p.name for p in user_voc.rglob("*"))
    pooled = all_images(load_dataset(user_voc))
    out = tmp_path / "s1"
    r = split_dataset(user_voc, val=0.2, test=0.1, seed=7, out=out)
    assert sorted(p.name for p in user_voc.rglob("*")) == before  # the dataset folder is untouched with --out
    ds = load_dataset(r["data"])
    sets = {s: {str(x.path.resolve()) for x in ds.split(s)} for s in ("train", "val", "test")}
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
    assert sorted(set().union(*sets.values())) == pooled
    n = len(pooled)
    assert {s: len(v) for s, v in sets.items()} == {"train": n - round(0.2 * n) - round(0.1 * n),
                                                     "val": round(0.2 * n), "test": round(0.1 * n)}
    assert r["counts"]["val"]["images"] == len(sets["val"])
    # the same seed gives the same split, another seed another one
    again = load_dataset(split_dataset(user_voc, val=0.2, test=0.1, seed=7, out=tmp_path / "s2")["data"])
    other = load_dataset(split_dataset(user_voc, val=0.2, test=0.1, seed=8, out=tmp_path / "s3")["data"])
    assert {str(x.path) for x in again.split("val")} == sets["val"]
    assert {str(x.path) for x in other.split("val")} != sets["val"]


def test_split_in_place_then_resplit_needs_overwrite(user_voc, tmp_path):
    folder = tmp_path / "inplace"
    shutil.copytree(user_voc, folder)
    r = cli("data", "split", str(folder), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["data"] == str(folder / "data.yaml")
    cfg = yaml.safe_load((folder / "data.yaml").read_text())
    assert cfg["annotations"] == "annotations" and cfg["images"] == "images" and cfg["split"]["seed"] == 0
    again = cli("data", "split", str(folder), "--seed", "5")
    assert again.returncode == 1 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    assert cli("data", "split", str(folder), "--seed", "5", "--overwrite").returncode == 0
    assert yaml.safe_load((folder / "data.yaml").read_text())["split"]["seed"] == 5


def test_split_never_replaces_a_users_data_yaml(tmp_path):
    src = tmp_path / "yolo"
    shutil.copytree(sample_data_yaml().parent, src)
    before = (src / "data.yaml").read_bytes()
    r = cli("data", "split", str(src / "data.yaml"), "--overwrite")
    assert r.returncode == 1 and "read from" in r.stderr and r.stderr.count("\n") == 1
    assert (src / "data.yaml").read_bytes() == before
    ok = cli("data", "split", str(src / "data.yaml"), "--out", str(tmp_path / "out"))
    assert ok.returncode == 0, ok.stderr
    ds = load_dataset(tmp_path / "out" / "data.yaml")
    assert ds.format == "yolo" and all_images(ds) == all_images(load_dataset(src / "data.yaml"))


@pytest.mark.parametrize("args, words", [
    (["--val", "0.6", "--test", "0.5"], "summing to less than 1"),
    (["--val", "1.5"], "--val"),
    (["--seed", "-1"], "--seed"),
])
def test_split_bad_options_one_line(user_voc, tmp_path, args, words):
    r = cli("data", "split", str(user_voc), "--out", str(tmp_path / "o"), *args)
    assert r.returncode != 0 and words in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_split_refuses_coco(tmp_path):
    coco = convert_dataset(sample_data_yaml(), "coco", tmp_path / "coco")
    r = cli("data", "split", str(coco), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "convert" in r.stderr and "Traceback" not in r.stderr
