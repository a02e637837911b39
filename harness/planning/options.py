"""Mode names and planning options, shared by every part of the planner."""

from __future__ import annotations

import dataclasses

from harness.command import DEFAULT_TIMEOUT_S
from harness.flavors import AUTO

__all__ = ["LEGACY_MODES", "MODES", "TRAIN_MODES", "VALUE_MODES", "PlanOptions"]

MODES = (
    "lite_train_lite_infer",
    "lite_train_whole_infer",
    "whole_train_whole_infer",
    "whole_infer",
    "klquant_whole_infer",
    "paddle2onnx_infer",
)
# Older TIPC mode names still found in per-mode values (PaddleOCR); the fixed planner maps them to today's names.
LEGACY_MODES = {"lite_train_infer": "lite_train_lite_infer", "whole_train_infer": "whole_train_whole_infer",
                "infer": "whole_infer", "klquant_infer": "klquant_whole_infer"}
# Mode names that may appear in per-mode values (`lite_train_lite_infer=5|...`); benchmark_train is TIPC's own.
VALUE_MODES = (*MODES, "benchmark_train", *LEGACY_MODES)
TRAIN_MODES = ("lite_train_lite_infer", "lite_train_whole_infer", "whole_train_whole_infer")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PlanOptions:
    flavor: str = AUTO
    quirks: bool = False
    repo_root: str = ""  # absolute run root; only flavors with absolute output paths (PaddleClas) use it
    timeout_s: float = DEFAULT_TIMEOUT_S
    output_root: str = "test_tipc/output"
