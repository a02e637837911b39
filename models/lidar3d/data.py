"""Read the KITTI-format lite set: point clouds, calibration and label files, with one-line errors for bad input."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from models.common.errors import DataError

__all__ = [
    "Frame",
    "KittiLite",
    "LiteDataError",
    "boxes_from_labels",
    "ensure_lite_data",
    "read_calib",
    "read_labels",
    "read_points",
]

POINT_BYTES = 16  # float32 x, y, z, intensity
LABEL_FIELDS = 15  # KITTI ground truth; detection results carry a 16th field, the score


class LiteDataError(DataError):
    """Bad lidar input; str() is one line, `file: message` or `file:line: message`."""

    def __init__(self, path: Path | str, message: str, line: int = 0) -> None:
        super().__init__(f"{path}:{line}" if line else path, message)


@dataclasses.dataclass(frozen=True, slots=True)
class Label:
    cls: str
    height: float
    width: float
    length: float
    location: tuple[float, float, float]  # camera frame, bottom centre
    rotation_y: float


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    name: str
    points: np.ndarray  # (N, 4) float32
    boxes: np.ndarray  # (M, 7) float32 lidar frame: x, y, z_centre, w, l, h, yaw
    labels: np.ndarray  # (M,) int64 class ids


def read_points(path: Path) -> np.ndarray:
    """An (N, 4) float32 array from a velodyne .bin file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LiteDataError(path, f"cannot read point cloud: {exc.strerror or exc}") from None
    if len(raw) % POINT_BYTES:
        msg = f"corrupted point cloud: {len(raw)} bytes is not a multiple of {POINT_BYTES} (x, y, z, intensity float32)"
        raise LiteDataError(path, msg)
    points = np.frombuffer(raw, dtype=np.float32).reshape(-1, 4)
    if not np.isfinite(points).all():
        raise LiteDataError(path, "corrupted point cloud: non-finite values")
    return points


def read_calib(path: Path) -> np.ndarray:
    """The 4x4 matrix that takes lidar points to the rectified camera frame (R0_rect @ Tr_velo_to_cam)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise LiteDataError(path, f"cannot read calibration: {exc.strerror or exc}") from None
    values: dict[str, list[float]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        if not sep:
            raise LiteDataError(path, f"malformed calibration line {line.strip()[:40]!r}", number)
        try:
            values[key.strip()] = [float(v) for v in rest.split()]
        except ValueError:
            raise LiteDataError(path, f"non-numeric value in calibration entry {key.strip()!r}", number) from None
    r0 = values.get("R0_rect")
    tr = values.get("Tr_velo_to_cam")
    if r0 is None or len(r0) != 9 or tr is None or len(tr) != 12:
        raise LiteDataError(path, "calibration needs R0_rect (9 numbers) and Tr_velo_to_cam (12 numbers)")
    rect = np.eye(4)
    rect[:3, :3] = np.array(r0).reshape(3, 3)
    velo = np.eye(4)
    velo[:3, :4] = np.array(tr).reshape(3, 4)
    return rect @ velo


def read_labels(path: Path, classes: tuple[str, ...]) -> list[Label]:
    """Label lines of the wanted classes; others (DontCare, Van, ...) are skipped as KITTI tools do."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise LiteDataError(path, f"cannot read labels: {exc.strerror or exc}") from None
    labels = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (LABEL_FIELDS, LABEL_FIELDS + 1):
            msg = f"malformed label line: {len(fields)} fields, expected {LABEL_FIELDS} (type ... rotation_y)"
            raise LiteDataError(path, msg, number)
        try:
            numbers = [float(v) for v in fields[1:LABEL_FIELDS]]
        except ValueError:
            raise LiteDataError(path, "malformed label line: non-numeric field", number) from None
        if not all(math.isfinite(v) for v in numbers):
            raise LiteDataError(path, "malformed label line: non-finite field", number)
        height, width, length = numbers[7:10]
        if min(height, width, length) <= 0 and fields[0] in classes:
            raise LiteDataError(path, "malformed label line: box size must be positive", number)
        if fields[0] not in classes:
            continue
        loc = (numbers[10], numbers[11], numbers[12])
        labels.append(Label(fields[0], height, width, length, loc, numbers[13]))
    return labels


def boxes_from_labels(labels: list[Label], cam_from_lidar: np.ndarray, classes: tuple[str, ...]) -> Frame:
    """Turn camera-frame labels into lidar-frame (x, y, z_centre, w, l, h, yaw) boxes; name and points left empty."""
    lidar_from_cam = np.linalg.inv(cam_from_lidar)
    boxes = np.zeros((len(labels), 7), dtype=np.float32)
    ids = np.zeros((len(labels),), dtype=np.int64)
    for i, label in enumerate(labels):
        bottom = lidar_from_cam @ np.array([*label.location, 1.0])
        yaw = -label.rotation_y - math.pi / 2  # KITTI's convention for rotation_y about the camera's y axis
        yaw = math.atan2(math.sin(yaw), math.cos(yaw))
        boxes[i] = (bottom[0], bottom[1], bottom[2] + label.height / 2, label.width, label.length, label.height, yaw)
        ids[i] = classes.index(label.cls)
    return Frame(name="", points=np.zeros((0, 4), np.float32), boxes=boxes, labels=ids)


def ensure_lite_data(root: Path) -> None:
    """Build the generated lite set when `root` is its default location and it is missing or stale."""
    import importlib.util

    repo = Path(__file__).resolve().parents[2]
    script = repo / "lite_data" / "make_kitti_lite.py"
    if not script.is_file():
        return
    spec = importlib.util.spec_from_file_location("make_kitti_lite", script)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if root.resolve() == Path(module.DEFAULT_OUT).resolve() and not module.check(root):
        module.build(root)


class KittiLite:
    """A split of a KITTI-layout folder, read fully into memory (the lite set is a few MB)."""

    def __init__(self, root: Path | str, split: str, classes: tuple[str, ...]) -> None:
        self.root = Path(root)
        self.classes = classes
        ensure_lite_data(self.root)
        list_path = self.root / "ImageSets" / f"{split}.txt"
        try:
            names = [n.strip() for n in list_path.read_text().splitlines() if n.strip()]
        except OSError:
            msg = "split list not found (run lite_data/make_kitti_lite.py or fix dataset_root)"
            raise LiteDataError(list_path, msg) from None
        self.frames = tuple(self._load(name) for name in names)

    def _load(self, name: str) -> Frame:
        points = read_points(self.root / "velodyne" / f"{name}.bin")
        calib = read_calib(self.root / "calib" / f"{name}.txt")
        labels = read_labels(self.root / "label_2" / f"{name}.txt", self.classes)
        frame = boxes_from_labels(labels, calib, self.classes)
        return dataclasses.replace(frame, name=name, points=points)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Frame:
        return self.frames[index]
