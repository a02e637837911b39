"""Build the tiny COCO-format shapes detection set (circles, squares, triangles) used by the detection chains."""

from __future__ import annotations

import json
import struct
import sys
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or loaded from a file path
import lite_tree  # noqa: E402

__all__ = [
    "CATEGORIES",
    "DEFAULT_OUT",
    "LAYOUT_VERSION",
    "build",
    "check",
    "expected_manifest",
    "main",
    "render_image",
]

# Bump when any image or annotation changes, so `--check` (and `build`) replace stale trees.
LAYOUT_VERSION = 1
DEFAULT_OUT = Path(__file__).resolve().parent / "det_shapes"
MANIFEST = lite_tree.MANIFEST
IMAGE_SIZE = 64
SPLITS = {"train": 150, "val": 40}
# Demo images: (width, height). One is not square and not 64 px, so inference must resize and map boxes back.
DEMO_SIZES = ((64, 64), (64, 64), (64, 64), (96, 80))
CATEGORIES = ("circle", "square", "triangle")
MIN_SIDE, MAX_SIDE = 14, 26
MAX_OBJECTS = 3
# Per-split salt so train, val and demo never share an image.
_SALT = {"train": 11, "val": 23, "demo": 37}

_MASK64 = (1 << 64) - 1


def _mix(value: int) -> int:
    """SplitMix64 finaliser: a fixed integer hash, so every draw is independent of NumPy's RNG streams."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class _Draws:
    """A deterministic stream of uniform numbers keyed by (split salt, image index)."""

    def __init__(self, salt: int, index: int) -> None:
        self._state = _mix((salt << 32) ^ index)

    def uniform(self) -> float:
        self._state = _mix(self._state)
        return (self._state >> 11) / float(1 << 53)

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high] (both ends included)."""
        return low + min(int(self.uniform() * (high - low + 1)), high - low)


def _noise(salt: int, index: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Per-pixel noise in [-1, 1) from a vectorised SplitMix64 over the pixel index (NumPy-version independent)."""
    count = shape[0] * shape[1] * shape[2]
    seed = np.uint64(_mix((salt << 40) ^ (index << 8) ^ 0xA5))
    with np.errstate(over="ignore"):
        z = np.arange(count, dtype=np.uint64) + seed
        z = z * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    unit = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return (unit * 2.0 - 1.0).reshape(shape)


def _shape_mask(category: int, x0: int, y0: int, side: int, width: int, height: int) -> np.ndarray:
    """Boolean mask of one shape whose bounding square starts at (x0, y0) with the given side."""
    ys, xs = np.mgrid[0:height, 0:width]
    # Pixel centres, so masks are symmetric and their tight box is predictable.
    px = xs + 0.5 - x0
    py = ys + 0.5 - y0
    mask: np.ndarray
    if category == 0:  # circle inscribed in the square
        r = side / 2.0
        mask = (px - r) ** 2 + (py - r) ** 2 <= r * r
    elif category == 1:  # filled square
        mask = (px >= 0) & (px <= side) & (py >= 0) & (py <= side)
    else:  # upright isosceles triangle: apex at the top middle, base along the bottom edge
        inside_y = (py >= 0) & (py <= side)
        half = (py / side) * (side / 2.0)
        mask = inside_y & (np.abs(px - side / 2.0) <= half)
    return mask


def _colour(draws: _Draws) -> np.ndarray:
    return np.array([draws.integer(0, 255) for _ in range(3)], dtype=np.float64)


def _contrasting(draws: _Draws, background: np.ndarray) -> np.ndarray:
    """A colour far enough from the background that every shape is visible."""
    for _ in range(64):
        colour = _colour(draws)
        if float(np.abs(colour - background).sum()) >= 180.0:
            return colour
    return 255.0 - background


def render_image(split: str, index: int, width: int = IMAGE_SIZE, height: int = IMAGE_SIZE) -> tuple[np.ndarray, list[tuple[int, list[int]]]]:
    """One RGB uint8 image and its objects as (category index, [x, y, w, h]) with tight pixel boxes."""
    draws = _Draws(_SALT[split], index)
    background = _colour(draws) * 0.8 + 20.0
    canvas = np.broadcast_to(background, (height, width, 3)).astype(np.float64)
    if index % 2 == 1:  # every other image gets a noisy background
        canvas = canvas + _noise(_SALT[split], index, canvas.shape) * 40.0
    count = draws.integer(1, MAX_OBJECTS)
    objects: list[tuple[int, list[int]]] = []
    taken: list[tuple[int, int, int, int]] = []
    for _ in range(count):
        # Rejection sampling with a bounded number of tries; a crowded image just gets fewer objects.
        for _attempt in range(40):
            side = draws.integer(MIN_SIDE, min(MAX_SIDE, width - 2, height - 2))
            x0 = draws.integer(1, width - side - 1)
            y0 = draws.integer(1, height - side - 1)
            box = (x0 - 2, y0 - 2, x0 + side + 2, y0 + side + 2)
            if all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1] or t[3] <= box[1] for t in taken):
                break
        else:
            continue
        category = draws.integer(0, len(CATEGORIES) - 1)
        mask = _shape_mask(category, x0, y0, side, width, height)
        colour = _contrasting(draws, background)
        canvas[mask] = colour
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        bbox = [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]
        taken.append(box)
        objects.append((category, bbox))
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), objects


def _png_bytes(rgb: np.ndarray) -> bytes:
    """Encode RGB uint8 as PNG with zlib level 9 and no metadata, so the bytes never depend on an imaging library."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _coco(split: str, records: list[tuple[str, int, int, list[tuple[int, list[int]]]]]) -> dict[str, object]:
    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    for image_id, (name, width, height, objects) in enumerate(records, start=1):
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for category, bbox in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category + 1,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CATEGORIES)]
    return {
        "info": {"description": f"tipc-harness lite shapes, {split}", "version": LAYOUT_VERSION},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def _files() -> dict[str, bytes]:
    """Every file of the set, relative path -> bytes, in a fixed order."""
    files: dict[str, bytes] = {}
    for split, count in SPLITS.items():
        records = []
        for index in range(count):
            rgb, objects = render_image(split, index)
            name = f"shapes_{split}_{index:04d}.png"
            files[f"{split}/{name}"] = _png_bytes(rgb)
            records.append((name, IMAGE_SIZE, IMAGE_SIZE, objects))
        text = json.dumps(_coco(split, records), indent=1, sort_keys=True) + "\n"
        files[f"annotations/instances_{split}.json"] = text.encode()
    demo_records = []
    for index, (width, height) in enumerate(DEMO_SIZES):
        rgb, objects = render_image("demo", index, width, height)
        name = f"shapes_demo_{index:04d}.png"
        files[f"demo/{name}"] = _png_bytes(rgb)
        demo_records.append((name, width, height, objects))
    files["annotations/instances_demo.json"] = (json.dumps(_coco("demo", demo_records), indent=1, sort_keys=True) + "\n").encode()
    files["label_list.txt"] = "".join(f"{name}\n" for name in CATEGORIES).encode()
    return files


def _manifest(files: Mapping[str, bytes]) -> dict[str, object]:
    return lite_tree.manifest(files, layout_version=LAYOUT_VERSION)


def expected_manifest() -> dict[str, object]:
    """What a complete tree holds: the layout version and the sha256 of every file."""
    return _manifest(_files())


def check(out: Path) -> bool:
    """True when `out` holds a complete tree of the current layout version (reads the manifest only)."""
    return lite_tree.check_tree(out, layout_version=LAYOUT_VERSION)


def build(out: Path = DEFAULT_OUT, *, force: bool = False) -> bool:
    """Write the set under `out` unless it is already complete; True when files were written."""
    return lite_tree.build_tree(out, layout_version=LAYOUT_VERSION, files=_files, describe=_manifest, force=force)


def main(argv: list[str] | None = None) -> int:
    return lite_tree.main(argv, description=__doc__ or "", default_out=DEFAULT_OUT, check=check, build=build)

if __name__ == "__main__":
    raise SystemExit(main())
