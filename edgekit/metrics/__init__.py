"""edgekit.metrics: detection metrics measured by one implementation for every model and artifact.

COCO box mAP in numpy (:func:`evaluate_detections` in memory, :func:`evaluate_coco` for
COCO JSON), checked against pycocotools to within 1e-4.
"""

from edgekit.metrics.coco_json import check_coco_gt, check_coco_predictions, evaluate_coco, load_coco_json
from edgekit.metrics.coco_map import (
    AREA_RANGES,
    IOU_THRESHOLDS,
    RECALL_POINTS,
    GroundTruth,
    MapResult,
    Predictions,
    evaluate_detections,
)

__all__ = [
    "AREA_RANGES", "IOU_THRESHOLDS", "RECALL_POINTS", "GroundTruth", "MapResult", "Predictions",
    "check_coco_gt", "check_coco_predictions", "evaluate_coco", "evaluate_detections", "load_coco_json",
]
