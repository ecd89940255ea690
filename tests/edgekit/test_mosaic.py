"""Mosaic augmentation: a window of four fitted images tiled 2 x 2, boxes following the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.data import load_dataset
from edgekit.train.augment import AugmentOptions, mosaic
from edgekit.train.loader import DetectionTrainSet


def _tile(colour: int, box: list[float], cls: int, size: int = 48):
    """A grey image with one filled rectangle of ``colour``: the box says where it is."""
    img = np.full((size, size, 3), 114, np.uint8)
    x1, y1, x2, y2 = (int(v) for v in box)
    img[y1:y2, x1:x2] = colour
    return img, np.array([box], np.float32), np.array([cls])


@pytest.mark.parametrize("seed", range(12))
def test_boxes_follow_their_pixels(seed):
    tiles = [_tile(10 + 40 * k, [8 + 4 * k, 10, 30 + 4 * k, 34], k) for k in range(4)]
    img, boxes, classes = mosaic(tiles, np.random.default_rng(seed), AugmentOptions())
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8
    for (x1, y1, x2, y2), c in zip(boxes, classes):
        assert 0 <= x1 < x2 <= 48 and 0 <= y1 < y2 <= 48
        region = img[int(y1):int(y2), int(x1):int(x2)]
        assert (region == 10 + 40 * c).all()  # the box covers its own tile's rectangle, nothing else
    # every rectangle visible with enough of its area is labelled (min_size and min_area_kept as random_affine)
    for k in range(4):
        visible = (img == 10 + 40 * k).all(2)
        if visible.sum() >= 0.2 * 22 * 24 and visible.any(0).sum() >= 2 and visible.any(1).sum() >= 2:
            assert k in classes.tolist()


def test_a_window_at_the_origin_is_the_first_tile():
    class Zero:  # the window's corner drawn at (0, 0)
        def integers(self, low, high):
            return 0

    tiles = [_tile(10 + 40 * k, [4, 4, 20, 20], k) for k in range(4)]
    img, boxes, classes = mosaic(tiles, Zero(), AugmentOptions())
    assert np.array_equal(img, tiles[0][0]) and boxes.tolist() == [[4, 4, 20, 20]] and classes.tolist() == [0]


def test_training_set_mixes_four_images_reproducibly(sample_yaml):
    records = load_dataset(sample_yaml).split("train")
    plain = DetectionTrainSet(records, 64, augment=AugmentOptions(mosaic=0.0))
    mixed = DetectionTrainSet(records, 64, augment=AugmentOptions(mosaic=1.0))
    again = DetectionTrainSet(records, 64, augment=AugmentOptions(mosaic=1.0))
    differs = 0
    for i in range(min(6, len(records))):
        x, t = mixed[i]
        y, u = again[i]
        assert x.shape == (3, 64, 64) and np.array_equal(x, y) and np.array_equal(t, u)  # seeded per (epoch, image)
        assert ((t[:, 2:] >= 0) & (t[:, 2:] <= 64)).all() and (t[:, 4] > t[:, 2]).all() and (t[:, 5] > t[:, 3]).all()
        differs += not np.array_equal(x, plain[i][0])
    assert differs >= 1


def test_train_cli_takes_mosaic_for_detectors_only(tmp_path, sample_yaml, capsys):
    from edgekit.cli.main import main

    assert main(["train", "--model", "mobilenetv2-cls", "--task", "classify", "--data", str(tmp_path),
                 "--mosaic", "0.5", "--epochs", "1"]) == 1
    assert "--mosaic" in capsys.readouterr().err
    assert main(["train", "--model", "yolo-lite", "--data", str(sample_yaml), "--mosaic", "1.5"]) != 0
    assert "'1.5' is not a number 0 or more and at most 1" in capsys.readouterr().err
