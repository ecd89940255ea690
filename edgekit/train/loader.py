"""Torch datasets over :class:`edgekit.data.ImageRecord`: the shared letterbox (or stretch), then augmentation.

The resize is the model's own (``model.resize``): a Darknet cfg without ``letterbox=1`` trains on
stretched images, as Darknet does, so training sees the pixels inference will.

Targets are a (n, 6) float tensor per batch: ``image index in batch, class, x1, y1, x2, y2``
in input pixels, which is what :mod:`edgekit.train.loss` assigns to anchors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from edgekit.data.dataset import ImageRecord
from edgekit.runtime.preprocess import boxes_to_letterbox, check_resize, fit_image, to_tensor
from edgekit.train.augment import AugmentOptions, augment, mosaic


class DetectionTrainSet(Dataset):
    """Letterboxed or stretched (``resize``) and, with ``augment``, augmented images with their boxes.

    Images are decoded once and kept in memory (``cache``): the seed datasets are small and
    CPU training is bound by the forward/backward, not by JPEG decoding.

    Example:
        >>> from edgekit.data import load_dataset, sample_data_yaml
        >>> ds = DetectionTrainSet(load_dataset(sample_data_yaml()).split("val"), 64)
        >>> x, t = ds[0]
        >>> tuple(x.shape), t.shape[1]
        ((3, 64, 64), 6)
    """

    def __init__(self, records: list[ImageRecord], imgsz: int, augment: AugmentOptions | None = None,
                 cache: bool = True, seed: int = 0, resize: str = "letterbox"):
        self.records = records
        self.imgsz = imgsz
        self.resize = check_resize(resize)
        self.augment = augment
        self.cache = cache
        self.seed = seed
        self.epoch = 0
        self._images: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.records)

    def load(self, i: int) -> np.ndarray:
        from edgekit.runtime.model import read_image

        img = self._images.get(i)
        if img is None:
            img = read_image(self.records[i].path)  # the one reader: the pixel limit before decoding
            if self.cache:
                self._images[i] = img
        return img

    def fitted(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image ``i`` at the input size (the model's resize) with its boxes in input pixels and its classes."""
        rec = self.records[i]
        img, lb = fit_image(self.load(i), self.imgsz, self.resize)
        keep = rec.valid_mask()
        return img, boxes_to_letterbox(rec.boxes[keep], lb), rec.classes[keep]

    def __getitem__(self, i: int):
        img, boxes, classes = self.fitted(i)
        if self.augment is not None:
            # a distinct, reproducible stream per (seed, epoch, image)
            rng = np.random.default_rng((self.seed, self.epoch, i))
            if self.augment.mosaic and len(self) > 1 and rng.random() < self.augment.mosaic:
                others = rng.integers(0, len(self), 3)
                img, boxes, classes = mosaic([(img, boxes, classes), *(self.fitted(int(j)) for j in others)], rng,
                                             self.augment)
            img, boxes, classes = augment(img, boxes, classes, rng, self.augment)
        x = torch.from_numpy(to_tensor(img)[0])
        t = np.zeros((len(classes), 6), np.float32)
        t[:, 1] = classes
        t[:, 2:] = boxes
        return x, torch.from_numpy(t)


def collate(batch):
    """Stack images; concatenate targets with their index in the batch in column 0."""
    images, targets = zip(*batch)
    for k, t in enumerate(targets):
        t[:, 0] = k
    return torch.stack(images), torch.cat(targets, 0)
