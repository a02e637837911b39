"""COCO-format detection data: checked loading, image preprocessing and CenterNet-style training targets."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from models.common.errors import DataError

__all__ = [
    "CocoSet",
    "Sample",
    "batches",
    "encode_targets",
    "load_coco",
    "load_image",
    "preprocess",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    image_id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # [K, 4] float32, x1 y1 x2 y2 in original pixels
    labels: np.ndarray  # [K] int64, 0-based contiguous class index


@dataclasses.dataclass(frozen=True, slots=True)
class CocoSet:
    ann_file: Path
    samples: tuple[Sample, ...]
    category_ids: tuple[int, ...]  # COCO category id of each contiguous class index
    names: tuple[str, ...]


def _require(cond: bool, path: Path, msg: str) -> None:
    if not cond:
        raise DataError(path, msg)


def load_coco(ann_file: Path, image_dir: Path) -> CocoSet:
    """Read and check a COCO instances file; every problem is a DataError naming the file (and entry) at fault."""
    try:
        text = ann_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(ann_file, "annotation file not found (run lite_data/make_det_lite.py?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(ann_file, f"cannot read annotation file: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(ann_file, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    _require(isinstance(data, dict), ann_file, "top level must be a JSON object")
    for key in ("images", "annotations", "categories"):
        _require(isinstance(data.get(key), list), ann_file, f"missing or non-list '{key}'")
    categories = sorted(data["categories"], key=lambda c: c.get("id", 0) if isinstance(c, dict) else 0)
    for cat in categories:
        _require(isinstance(cat, dict) and isinstance(cat.get("id"), int) and "name" in cat, ann_file, f"bad category entry {cat!r}")
    cat_ids = tuple(int(c["id"]) for c in categories)
    _require(len(set(cat_ids)) == len(cat_ids) and bool(cat_ids), ann_file, "categories must be non-empty with unique ids")
    index_of = {cid: i for i, cid in enumerate(cat_ids)}

    images: dict[int, dict[str, object]] = {}
    for n, img in enumerate(data["images"]):
        ok = isinstance(img, dict) and isinstance(img.get("id"), int) and isinstance(img.get("file_name"), str)
        _require(ok, ann_file, f"images[{n}] needs an integer 'id' and a string 'file_name'")
        for key in ("width", "height"):
            _require(isinstance(img.get(key), int) and img[key] > 0, ann_file, f"images[{n}] ({img['file_name']}) has no positive '{key}'")
        _require(img["id"] not in images, ann_file, f"images[{n}]: duplicate image id {img['id']}")
        images[img["id"]] = img

    per_image: dict[int, list[tuple[list[float], int]]] = {i: [] for i in images}
    for n, ann in enumerate(data["annotations"]):
        _require(isinstance(ann, dict), ann_file, f"annotations[{n}] is not an object")
        image_id, cat_id, bbox = ann.get("image_id"), ann.get("category_id"), ann.get("bbox")
        _require(image_id in images, ann_file, f"annotations[{n}] refers to unknown image_id {image_id!r}")
        _require(cat_id in index_of, ann_file, f"annotations[{n}] has unknown category_id {cat_id!r}")
        ok = isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)
        _require(ok, ann_file, f"annotations[{n}] 'bbox' must be [x, y, w, h] numbers, got {bbox!r}")
        assert isinstance(bbox, list)
        _require(bbox[2] > 0 and bbox[3] > 0, ann_file, f"annotations[{n}] has a non-positive box size {bbox!r}")
        if ann.get("iscrowd", 0):
            continue
        per_image[int(image_id)].append(([float(v) for v in bbox], index_of[int(cat_id)]))

    samples = []
    for image_id in sorted(images):
        img = images[image_id]
        path = image_dir / str(img["file_name"])
        _require(path.is_file(), path, f"image listed in {ann_file} is missing")
        objs = per_image[image_id]
        boxes = np.array([[x, y, x + w, y + h] for (x, y, w, h), _ in objs], dtype=np.float32).reshape(-1, 4)
        labels = np.array([label for _, label in objs], dtype=np.int64)
        samples.append(Sample(image_id, path, int(img["width"]), int(img["height"]), boxes, labels))  # type: ignore[call-overload]
    names = tuple(str(c["name"]) for c in categories)
    return CocoSet(ann_file, tuple(samples), cat_ids, names)


def load_image(path: Path) -> np.ndarray:
    """RGB uint8 [H, W, 3]; an unreadable or undecodable file is a DataError naming it."""
    buf = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    if buf is None:
        raise DataError(path, "image file not found")
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if image is None:
        raise DataError(path, "cannot decode image (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def preprocess(image: np.ndarray, input_size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> float32 [3, S, S]: resize (aspect not kept, as PicoDet does), scale, normalise."""
    if image.shape[0] != input_size or image.shape[1] != input_size:
        image = cv2.resize(image, (input_size, input_size), interpolation=cv2.INTER_LINEAR)
    scaled: np.ndarray = image.astype(np.float32) / np.float32(255.0)
    normalised = (scaled - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))


def encode_targets(
    boxes: np.ndarray, labels: np.ndarray, *, num_classes: int, input_size: int, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes in input pixels -> (heatmap [C, H, W], box targets [4, H, W], box mask [H, W]).

    Each object puts a Gaussian on its class channel, peaked (exactly 1) at the cell holding its centre; its
    size sets the spread (TTFNet-style, sigma = 0.54 * size / 6 per axis). The box target at that cell is
    (dx, dy, log w, log h) in stride units; other cells are masked out of the box loss.
    """
    size = input_size // stride
    heat = np.zeros((num_classes, size, size), dtype=np.float32)
    target = np.zeros((4, size, size), dtype=np.float32)
    mask = np.zeros((size, size), dtype=np.float32)
    ys, xs = np.indices((size, size), dtype=np.float32)
    for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
        w, h = (x2 - x1) / stride, (y2 - y1) / stride
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x1 + x2) / 2.0 / stride, (y1 + y2) / 2.0 / stride
        ix, iy = min(int(cx), size - 1), min(int(cy), size - 1)
        sx, sy = max(0.54 * w / 6.0, 0.4), max(0.54 * h / 6.0, 0.4)
        g = np.exp(-((xs - ix) ** 2) / (2 * sx * sx) - ((ys - iy) ** 2) / (2 * sy * sy))
        heat[label] = np.maximum(heat[label], g)
        target[:, iy, ix] = (cx - ix, cy - iy, np.log(w), np.log(h))
        mask[iy, ix] = 1.0
    return heat, target, mask


def batches(count: int, batch_size: int, *, shuffle: bool, rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Index batches over `count` items; the last short batch is kept."""
    order = rng.permutation(count) if shuffle and rng is not None else np.arange(count)
    for start in range(0, count, batch_size):
        yield order[start : start + batch_size]
