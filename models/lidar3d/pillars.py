"""Points -> dense pillar tensor, CenterPoint-style training targets, and head output -> boxes (numpy only)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "NUM_POINT_FEATURES",
    "NUM_REG",
    "Grid",
    "decode",
    "flip_y",
    "make_targets",
    "pillarize",
]

# Per point: z, intensity, offset from the pillar's point mean (x, y, z), offset from the cell centre (x, y), valid=1.
# Absolute x/y are left out: the BEV convolution already knows where a cell is, and dropping them keeps every
# feature within a few metres, which suits one int8 scale for the whole input.
NUM_POINT_FEATURES = 8
# Regression channels: dx, dy (cell fraction), z, log w, log l, log h, sin 2yaw, cos 2yaw.
NUM_REG = 8


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Grid:
    """A square BEV grid; every cell owns one pillar slot, so the scatter to BEV is a reshape in the network."""

    x_min: float = 0.0
    y_min: float = -20.0
    z_min: float = -3.0
    z_max: float = 1.0
    extent: float = 40.0
    size: int = 32
    max_points: int = 12  # per pillar; the rest are dropped in file order

    @property
    def cell(self) -> float:
        return self.extent / self.size

    @property
    def pillars(self) -> int:
        return self.size * self.size

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Grid:
        return cls(
            x_min=float(cfg.get("x_min", 0.0)),
            y_min=float(cfg.get("y_min", -20.0)),
            z_min=float(cfg.get("z_min", -3.0)),
            z_max=float(cfg.get("z_max", 1.0)),
            extent=float(cfg.get("extent", 40.0)),
            size=int(cfg.get("size", 32)),
            max_points=int(cfg.get("max_points", 12)),
        )

    def to_config(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


def pillarize(points: np.ndarray, grid: Grid) -> np.ndarray:
    """(D, P, K) float32 pillar tensor: D features, P = size*size cells in row-major (x index, y index) order,
    K point slots; unused slots are zero. Channels first, so the per-point PointNet is a 1x1 convolution."""
    out = np.zeros((NUM_POINT_FEATURES, grid.pillars, grid.max_points), dtype=np.float32)
    if len(points) == 0:
        return out
    pts = points.astype(np.float64)
    ix = np.floor((pts[:, 0] - grid.x_min) / grid.cell).astype(np.int64)
    iy = np.floor((pts[:, 1] - grid.y_min) / grid.cell).astype(np.int64)
    inside = (ix >= 0) & (ix < grid.size) & (iy >= 0) & (iy < grid.size)
    inside &= (pts[:, 2] >= grid.z_min) & (pts[:, 2] < grid.z_max)
    pts, ix, iy = pts[inside], ix[inside], iy[inside]
    if len(pts) == 0:
        return out
    pid = ix * grid.size + iy
    order = np.argsort(pid, kind="stable")  # stable: within a pillar, file order decides who is kept
    pts, pid, ix, iy = pts[order], pid[order], ix[order], iy[order]
    starts = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1]])
    counts = np.diff(np.r_[starts, len(pid)])
    rank = np.arange(len(pid)) - np.repeat(starts, counts)
    keep = rank < grid.max_points
    pts, pid, ix, iy, rank = pts[keep], pid[keep], ix[keep], iy[keep], rank[keep]
    kept = np.bincount(pid, minlength=grid.pillars).astype(np.float64)
    sums = np.stack([np.bincount(pid, weights=pts[:, k], minlength=grid.pillars) for k in range(3)], axis=1)
    mean: np.ndarray = sums.astype(np.float64) / np.maximum(kept, 1.0)[:, None]
    centre_x = grid.x_min + (ix + 0.5) * grid.cell
    centre_y = grid.y_min + (iy + 0.5) * grid.cell
    feats = np.stack(
        [
            pts[:, 2],
            pts[:, 3],
            pts[:, 0] - mean[pid, 0],
            pts[:, 1] - mean[pid, 1],
            pts[:, 2] - mean[pid, 2],
            pts[:, 0] - centre_x,
            pts[:, 1] - centre_y,
            np.ones(len(pts)),
        ],
        axis=1,
    )
    out[:, pid, rank] = feats.T.astype(np.float32)
    return out


def flip_y(points: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror a frame across the x axis (y -> -y, yaw -> -yaw): the augmentation used in training."""
    points = points.copy()
    points[:, 1] = -points[:, 1]
    boxes = boxes.copy()
    boxes[:, 1] = -boxes[:, 1]
    boxes[:, 6] = -boxes[:, 6]
    return points, boxes


def make_targets(
    boxes: np.ndarray, labels: np.ndarray, grid: Grid, num_classes: int, sigmas: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heatmap (C, S, S), regression (NUM_REG, S, S) and regression mask (S, S) for one frame."""
    size = grid.size
    heat = np.zeros((num_classes, size, size), dtype=np.float32)
    reg = np.zeros((NUM_REG, size, size), dtype=np.float32)
    mask = np.zeros((size, size), dtype=np.float32)
    rows = np.arange(size)[:, None]
    cols = np.arange(size)[None, :]
    for box, label in zip(boxes, labels, strict=True):
        fx = (box[0] - grid.x_min) / grid.cell
        fy = (box[1] - grid.y_min) / grid.cell
        cx, cy = int(math.floor(fx)), int(math.floor(fy))
        if not (0 <= cx < size and 0 <= cy < size):
            continue
        sigma = sigmas[int(label)]
        gauss = np.exp(-((rows - cx) ** 2 + (cols - cy) ** 2) / (2.0 * sigma * sigma)).astype(np.float32)
        heat[label] = np.maximum(heat[label], gauss)
        heat[label, cx, cy] = 1.0
        yaw2 = 2.0 * float(box[6])  # orientation is pi-periodic for a box: regress the doubled angle
        reg[:, cx, cy] = (
            fx - cx,
            fy - cy,
            box[2],
            math.log(box[3]),
            math.log(box[4]),
            math.log(box[5]),
            math.sin(yaw2),
            math.cos(yaw2),
        )
        mask[cx, cy] = 1.0
    return heat, reg, mask


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


def decode(
    head: np.ndarray, grid: Grid, *, score_threshold: float, max_objects: int
) -> list[tuple[int, float, np.ndarray]]:
    """Boxes of one frame from its head output (C + NUM_REG, S, S): (class id, score, [x, y, z, w, l, h, yaw])."""
    num_classes = head.shape[0] - NUM_REG
    heat = _sigmoid(head[:num_classes].astype(np.float64))
    # 3x3 max-pool peak picking, CenterPoint's stand-in for NMS.
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-1.0)
    size = grid.size
    pooled = np.max(
        np.stack([padded[:, r : r + size, c : c + size] for r in range(3) for c in range(3)]),
        axis=0,
    )
    peaks = (heat >= pooled) & (heat >= score_threshold)
    cls_ids, rows, cols = np.nonzero(peaks)
    scores = heat[cls_ids, rows, cols]
    # Sort by score, then by position, so equal scores come out in one fixed order.
    order = np.lexsort((cols, rows, cls_ids, -scores))[:max_objects]
    results = []
    for k in order:
        c, r, q = int(cls_ids[k]), int(rows[k]), int(cols[k])
        dx, dy, z, lw, ll, lh, s2, c2 = (float(v) for v in head[num_classes:, r, q])
        yaw = 0.5 * math.atan2(s2, c2)  # in (-pi/2, pi/2]
        if yaw < -math.pi / 4:
            # Report yaw in [-pi/4, 3pi/4): 0 and pi/2, the usual headings, then sit far from the wrap point,
            # so a tiny numeric difference cannot flip a printed yaw from +pi/2 to -pi/2.
            yaw += math.pi
        box = np.array(
            [
                grid.x_min + (r + dx) * grid.cell,
                grid.y_min + (q + dy) * grid.cell,
                z,
                math.exp(min(lw, 3.0)),
                math.exp(min(ll, 3.0)),
                math.exp(min(lh, 3.0)),
                yaw,
            ]
        )
        results.append((c, float(scores[k]), box))
    return results
