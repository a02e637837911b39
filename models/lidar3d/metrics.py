"""Rotated BEV / 3D IoU and KITTI-style average precision (40 recall points) for (x, y, z, w, l, h, yaw) boxes."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["Detection", "average_precision", "bev_iou", "corners_bev", "evaluate_frames", "iou_3d"]

RECALL_POINTS = 40


@dataclasses.dataclass(frozen=True, slots=True)
class Detection:
    label: int
    score: float
    box: np.ndarray  # x, y, z_centre, w, l, h, yaw


def corners_bev(box: np.ndarray) -> np.ndarray:
    """The 4 BEV corners (counter-clockwise) of a box; its length l lies along the heading yaw."""
    x, y, _, w, length, _, yaw = (float(v) for v in box[:7])
    cos, sin = math.cos(yaw), math.sin(yaw)
    local = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]]) * np.array([length, w])
    return np.stack([x + cos * local[:, 0] - sin * local[:, 1], y + sin * local[:, 0] + cos * local[:, 1]], axis=1)


def _area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _clip(subject: np.ndarray, clipper: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: the part of convex polygon `subject` inside convex counter-clockwise `clipper`."""
    out = list(subject)
    for i in range(len(clipper)):
        a, b = clipper[i], clipper[(i + 1) % len(clipper)]
        edge = b - a
        inp, out = out, []
        if not inp:
            break

        def side(p: np.ndarray, a: np.ndarray = a, edge: np.ndarray = edge) -> float:
            return float(edge[0] * (p[1] - a[1]) - edge[1] * (p[0] - a[0]))

        for j in range(len(inp)):
            cur, prev = inp[j], inp[j - 1]
            s_cur, s_prev = side(cur), side(prev)
            if s_cur >= 0:
                if s_prev < 0:
                    out.append(prev + (cur - prev) * (s_prev / (s_prev - s_cur)))
                out.append(cur)
            elif s_prev >= 0:
                out.append(prev + (cur - prev) * (s_prev / (s_prev - s_cur)))
    return np.array(out) if out else np.zeros((0, 2))


def _bev_intersection(a: np.ndarray, b: np.ndarray) -> float:
    return _area(_clip(corners_bev(a), corners_bev(b)))


def bev_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Exact IoU of two rotated boxes seen from above."""
    inter = _bev_intersection(a, b)
    union = float(a[3] * a[4] + b[3] * b[4]) - inter
    return inter / union if union > 0 else 0.0


def iou_3d(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boxes that rotate about z only: BEV overlap times vertical overlap."""
    inter_h = min(a[2] + a[5] / 2, b[2] + b[5] / 2) - max(a[2] - a[5] / 2, b[2] - b[5] / 2)
    if inter_h <= 0:
        return 0.0
    inter = _bev_intersection(a, b) * float(inter_h)
    union = float(a[3] * a[4] * a[5] + b[3] * b[4] * b[5]) - inter
    return inter / union if union > 0 else 0.0


def average_precision(scored_hits: list[tuple[float, bool]], num_gt: int) -> float:
    """Area under the interpolated precision/recall curve sampled at 40 recall points (KITTI's R40)."""
    if num_gt == 0:
        return float("nan")
    if not scored_hits:
        return 0.0
    ordered = sorted(scored_hits, key=lambda t: -t[0])
    hits = np.array([h for _, h in ordered], dtype=np.float64)
    tp = np.cumsum(hits)
    fp = np.cumsum(1.0 - hits)
    recall = tp / num_gt
    precision = tp / np.maximum(tp + fp, 1e-9)
    # Interpolate: precision at recall r is the best precision at any recall >= r.
    best = np.maximum.accumulate(precision[::-1])[::-1]
    total = 0.0
    for r in np.linspace(1.0 / RECALL_POINTS, 1.0, RECALL_POINTS):
        reached = np.flatnonzero(recall >= r - 1e-9)
        total += float(best[reached[0]]) if len(reached) else 0.0
    return total / RECALL_POINTS


def evaluate_frames(
    detections: Sequence[Sequence[Detection]],
    gt_boxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    *,
    num_classes: int,
    thresholds: Sequence[float],
) -> dict[str, list[float]]:
    """Per-class BEV and 3D AP; a detection matches the unmatched ground truth box of its class it overlaps most."""
    result: dict[str, list[float]] = {"bev": [], "3d": []}
    for kind, iou_fn in (("bev", bev_iou), ("3d", iou_3d)):
        for cls in range(num_classes):
            hits: list[tuple[float, bool]] = []
            num_gt = 0
            for dets, boxes, labels in zip(detections, gt_boxes, gt_labels, strict=True):
                gts = [b for b, lab in zip(boxes, labels, strict=True) if int(lab) == cls]
                num_gt += len(gts)
                used = [False] * len(gts)
                for det in sorted((d for d in dets if d.label == cls), key=lambda d: -d.score):
                    best, best_j = 0.0, -1
                    for j, gt in enumerate(gts):
                        if not used[j]:
                            iou = iou_fn(det.box, gt)
                            if iou > best:
                                best, best_j = iou, j
                    matched = best_j >= 0 and best >= thresholds[cls]
                    if matched:
                        used[best_j] = True
                    hits.append((det.score, matched))
            result[kind].append(average_precision(hits, num_gt))
    return result
