"""The lidar3d YAML schema (defaults) and loading through models/common/config.py (`-o Key.sub=value` overrides)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from models.common.config import Config, load_config, load_yaml_tree

__all__ = ["DEFAULTS", "load_lidar_config", "load_quant_config"]

# Every key a config may set; unknown keys and wrong types fail with one line naming the file.
DEFAULTS: dict[str, Any] = {
    "architecture": "PointPillarsLite",  # picks the family in models/tools/*.py (models/lidar3d/family.py)
    "model": {
        "name": "pointpillars_lite",
        "classes": ["Car", "Pedestrian"],
        "grid": {"x_min": 0.0, "y_min": -20.0, "z_min": -3.0, "z_max": 1.0, "extent": 40.0, "size": 32,
                 "max_points": 12},
        "pfn_channels": 32,
        "channels": [32, 64],
        "heatmap_sigma": [1.0, 0.6],
    },
    "train_dataset": {"dataset_root": "lite_data/kitti_lite", "split": "train", "flip_y": True},
    "val_dataset": {"dataset_root": "lite_data/kitti_lite", "split": "val"},
    "optimizer": {"learning_rate": 0.02, "weight_decay": 0.0001, "grad_clip": 10.0},
    "loss": {"reg_weight": 1.0},
    "iters": 200,
    "batch_size": 4,
    "seed": 123,
    "log_interval": 10,
    "postprocess": {"score_threshold": 0.3, "max_objects": 20},
    "eval": {"score_threshold": 0.05, "iou_thresholds": [0.5, 0.25]},
}


def load_lidar_config(path: Path, overrides: Iterable[str] = ()) -> Config:
    return load_config(path, overrides, defaults=DEFAULTS)


def load_quant_config(path: Path | None) -> dict[str, Any] | None:
    """The raw tree of a quant config file (checked by quant.QuantConfig.from_config), or None."""
    return None if path is None else load_yaml_tree(path)
