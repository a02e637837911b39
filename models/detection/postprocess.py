"""Turn raw PicoDetLite head outputs into boxes (numpy only, shared by training eval, Paddle Inference and ONNX)."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Detections", "decode", "format_result", "sigmoid"]


@dataclasses.dataclass(frozen=True, slots=True)
class Detections:
    boxes: np.ndarray  # [K, 4] float32 x1 y1 x2 y2, in the original image's pixels
    scores: np.ndarray  # [K] float32, descending
    classes: np.ndarray  # [K] int64, 0-based


def sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))).astype(np.float32)
    return out


def _peaks(heat: np.ndarray) -> np.ndarray:
    """Keep a cell only where it is the maximum of its 3x3 neighbourhood (CenterNet's max-pool NMS)."""
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    h, w = heat.shape[1:]
    neighbourhood = np.max(
        np.stack([padded[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]),
        axis=0,
    )
    return np.where(heat >= neighbourhood, heat, 0.0)


def decode(
    heat_logits: np.ndarray,
    box_map: np.ndarray,
    *,
    stride: int,
    input_size: int,
    image_sizes: list[tuple[int, int]],
    top_k: int = 20,
    score_threshold: float = 0.01,
) -> list[Detections]:
    """Head outputs for a batch ([N, C, H, W], [N, 4, H, W]) -> one Detections per image.

    `image_sizes` holds each original (width, height); boxes are scaled from the network input back to it.
    """
    results = []
    for n, (width, height) in enumerate(image_sizes):
        heat = _peaks(sigmoid(heat_logits[n]))
        channels, h, w = heat.shape
        flat = heat.reshape(-1)
        k = min(top_k, flat.size)
        # A stable sort on negated scores makes ties deterministic (lower index first).
        order = np.argsort(-flat, kind="stable")[:k]
        order = order[flat[order] >= score_threshold]
        cls, rest = np.divmod(order, h * w)
        ys, xs = np.divmod(rest, w)
        dx, dy, lw, lh = (box_map[n, i, ys, xs] for i in range(4))
        cx, cy = (xs + dx) * stride, (ys + dy) * stride
        bw, bh = np.exp(np.clip(lw, -8.0, 8.0)) * stride, np.exp(np.clip(lh, -8.0, 8.0)) * stride
        sx, sy = width / float(input_size), height / float(input_size)
        boxes = np.stack([(cx - bw / 2) * sx, (cy - bh / 2) * sy, (cx + bw / 2) * sx, (cy + bh / 2) * sy], axis=1)
        boxes = np.clip(boxes, 0.0, [width, height, width, height]).astype(np.float32).reshape(-1, 4)
        results.append(Detections(boxes, flat[order].astype(np.float32), cls.astype(np.int64)))
    return results


def format_result(image_name: str, det: Detections, *, top_k: int, threshold: float = 0.0) -> str:
    """The parsable inference line: `result: image=<name> class_ids=[..] scores=[..] boxes=[x1,y1,x2,y2,...]`.

    It lists the `top_k` highest-scoring detections (those under `threshold` dropped, but never the best one).
    A fixed count rather than a score cut keeps the line's length stable between runs and precisions, which is
    what a golden comparison of `class_ids`/`scores` (harness/golden.py) needs; the list is empty only when
    nothing passed the decoder's score floor (an untrained model). Lists are flat (four numbers per box) so a generic `key=[numbers]` parser reads every field.
    """
    keep = np.arange(len(det.scores)) < top_k
    keep &= (det.scores >= threshold) | (np.arange(len(det.scores)) == 0)
    classes = ",".join(str(int(c)) for c in det.classes[keep])
    scores = ",".join(f"{float(s):.6f}" for s in det.scores[keep])
    boxes = ",".join(f"{float(v):.2f}" for v in det.boxes[keep].reshape(-1))
    return f"result: image={image_name} class_ids=[{classes}] scores=[{scores}] boxes=[{boxes}]"
