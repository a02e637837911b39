"""Build the tiny digits classification set (ImageNet folder layout) from scikit-learn's bundled 8x8 digits."""

from __future__ import annotations

import hashlib
import struct
import sys
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or loaded from a file path
import lite_tree  # noqa: E402

__all__ = ["DEFAULT_OUT", "LAYOUT_VERSION", "build", "check", "expected_manifest", "main", "render_digit"]

# Bump when the images or lists change, so `--check` rebuilds stale trees.
LAYOUT_VERSION = 1
DEFAULT_OUT = Path(__file__).resolve().parent / "cls_digits"
IMAGE_SIZE = 64
NUM_CLASSES = 10
TRAIN_PER_CLASS = 12
VAL_PER_CLASS = 6
DEMO_IMAGES = 8
MANIFEST = lite_tree.MANIFEST


def _bilinear(img: np.ndarray, size: int) -> np.ndarray:
    """Upsample a square float image with align-corners bilinear interpolation, in plain numpy.

    Pillow's resampling filters have changed between releases; doing it here keeps the pixels (and so every
    golden result) independent of the Pillow version.
    """
    src = img.shape[0]
    coords = np.linspace(0.0, src - 1.0, size)
    lo = np.floor(coords).astype(np.int64)
    hi = np.minimum(lo + 1, src - 1)
    frac = coords - lo
    rows = img[lo, :] * (1.0 - frac)[:, None] + img[hi, :] * frac[:, None]
    out: np.ndarray = rows[:, lo] * (1.0 - frac)[None, :] + rows[:, hi] * frac[None, :]
    return out


def _colour(index: int, salt: int) -> np.ndarray:
    """A fixed RGB colour for an image, derived from its index by hashing (no RNG state, no version drift)."""
    digest = hashlib.sha256(f"{salt}:{index}".encode()).digest()
    return np.frombuffer(digest[:3], dtype=np.uint8).astype(np.float64)


def render_digit(pixels: np.ndarray, index: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """Turn one 8x8 digit (values 0..16) into a coloured `size`x`size` RGB uint8 image.

    Only the colours vary beyond the handwriting: random shifts were tried and cost ~5 points of lite top-1
    without making the chain test any stronger.
    """
    ink = _bilinear(pixels.astype(np.float64) / 16.0, size)
    background = _colour(index, 1) * 0.35  # dark
    foreground = 128.0 + _colour(index, 2) * 0.5  # bright
    rgb = background[None, None, :] * (1.0 - ink[..., None]) + foreground[None, None, :] * ink[..., None]
    out: np.ndarray = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return out


def _png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an RGB uint8 array as PNG with a fixed zlib level, so the file bytes are stable too."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _select() -> dict[str, list[tuple[int, int]]]:
    """Pick (dataset index, label) pairs per split: the first images of each class, in dataset order."""
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]  # bundled, never downloaded

    targets = load_digits().target
    splits: dict[str, list[tuple[int, int]]] = {"train": [], "val": [], "demo": []}
    for label in range(NUM_CLASSES):
        idx = [int(i) for i in np.flatnonzero(targets == label)]
        splits["train"] += [(i, label) for i in idx[:TRAIN_PER_CLASS]]
        splits["val"] += [(i, label) for i in idx[TRAIN_PER_CLASS : TRAIN_PER_CLASS + VAL_PER_CLASS]]
    # Demo images come from later, unseen samples: one per class for the first DEMO_IMAGES classes.
    for label in range(DEMO_IMAGES):
        idx = [int(i) for i in np.flatnonzero(targets == label)]
        splits["demo"].append((idx[TRAIN_PER_CLASS + VAL_PER_CLASS], label))
    return splits


def _files() -> dict[str, bytes]:
    """Every file of the data set, relative path -> bytes, in a fixed order."""
    from sklearn.datasets import load_digits

    images = load_digits().images
    files: dict[str, bytes] = {}
    lists: dict[str, list[str]] = {"train": [], "val": []}
    for split, items in _select().items():
        for index, label in items:
            png = _png_bytes(render_digit(images[index], index))
            if split == "demo":
                rel = f"demo/digit_{index:04d}.png"
            else:
                rel = f"{split}/{label}/digit_{index:04d}.png"
                lists[split].append(f"{rel} {label}")
            files[rel] = png
    files["train_list.txt"] = ("\n".join(lists["train"]) + "\n").encode()
    files["val_list.txt"] = ("\n".join(lists["val"]) + "\n").encode()
    files["label_list.txt"] = "".join(f"{k} digit_{k}\n" for k in range(NUM_CLASSES)).encode()
    return files


def _manifest(files: Mapping[str, bytes]) -> dict[str, object]:
    return lite_tree.manifest(files, layout_version=LAYOUT_VERSION, image_size=IMAGE_SIZE)


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
