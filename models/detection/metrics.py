"""COCO box mAP (AP@[.5:.95] and AP@.5) through pycocotools, with its console chatter captured."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

from models.detection.data import CocoSet
from models.detection.postprocess import Detections

__all__ = ["coco_detections", "coco_map"]

LOG = logging.getLogger("models")


def coco_detections(dataset: CocoSet, dets: list[Detections]) -> list[dict[str, object]]:
    """Detections in dataset order -> COCO result records (`bbox` as x, y, w, h; original category ids)."""
    records: list[dict[str, object]] = []
    for sample, det in zip(dataset.samples, dets, strict=True):
        for (x1, y1, x2, y2), score, cls in zip(det.boxes.tolist(), det.scores.tolist(), det.classes.tolist(), strict=True):
            records.append(
                {
                    "image_id": sample.image_id,
                    "category_id": dataset.category_ids[cls],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": score,
                }
            )
    return records


def coco_map(ann_file: Path, records: list[dict[str, object]]) -> tuple[float, float]:
    """(mAP@[.5:.95], mAP@.5) of `records` against `ann_file`; no detections at all scores 0."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not records:
        return 0.0, 0.0
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        gt = COCO(str(ann_file))
        dt = gt.loadRes(records)
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    for line in chatter.getvalue().splitlines():
        if line.startswith(" Average"):
            LOG.debug("%s", line.strip())
    return float(evaluator.stats[0]), float(evaluator.stats[1])
