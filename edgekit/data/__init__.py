"""Datasets: YOLO txt, COCO JSON and Pascal VOC read into one representation."""

from edgekit.data.dataset import DetectionDataset, ImageRecord, Issue
from edgekit.data.loader import FORMATS, convert_dataset, load_dataset
from edgekit.data.sample import sample_data_yaml

__all__ = ["DetectionDataset", "ImageRecord", "Issue", "FORMATS", "load_dataset", "convert_dataset", "sample_data_yaml"]
