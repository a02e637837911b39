"""Image loading and preprocessing shared by training, evaluation and Paddle Inference, so they cannot drift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["IMAGE_EXTENSIONS", "MEAN", "STD", "list_images", "load_image", "preprocess", "read_list"]

# ImageNet statistics, as the tutorial's presets use.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as an RGB uint8 array of shape (H, W, 3)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def preprocess(rgb: np.ndarray, image_size: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> normalised float32 (3, image_size, image_size).

    Images already at `image_size` (the lite set is stored at the training size) are not resampled at all,
    which keeps the inputs bit-identical between training, export checks and inference.
    """
    if rgb.shape[0] != image_size or rgb.shape[1] != image_size:
        rgb = np.asarray(Image.fromarray(rgb).resize((image_size, image_size), Image.Resampling.BILINEAR))
    x = (rgb.astype(np.float32) / np.float32(255.0) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def read_list(data_path: str | Path, list_name: str) -> list[tuple[Path, int]]:
    """Parse a `relative/path.png label` list file under `data_path`."""
    root = Path(data_path)
    items: list[tuple[Path, int]] = []
    for number, line in enumerate((root / list_name).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            msg = f"{root / list_name}:{number}: expected '<relative path> <label>', got {line!r}"
            raise ValueError(msg)
        items.append((root / parts[0], int(parts[1])))
    return items


def list_images(path: str | Path) -> list[tuple[Path, str]]:
    """Images under `path` (a file or a folder, searched recursively) with their display names, sorted.

    The display name is the path relative to `path` when it is a folder and the file name otherwise, so result
    lines do not depend on the working directory.
    """
    root = Path(path)
    if root.is_file():
        return [(root, root.name)]
    if not root.is_dir():
        msg = f"image path not found: {root}"
        raise FileNotFoundError(msg)
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not found:
        msg = f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}"
        raise FileNotFoundError(msg)
    return [(p, p.relative_to(root).as_posix()) for p in found]
