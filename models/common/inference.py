"""Shared Paddle Inference pieces: quantize ops in an exported program, the precision that really ran, timers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["StageTimer", "effective_precision", "engine_line", "quant_op_count"]

# An op type, not a variable name: `quantize_linear` / `dequantize_linear` (Paddle 2.5+ and PIR `pd_op.`), and
# the older `fake_quantize_*` / `fake_dequantize_*` / `fake_channel_wise_*` ops. Variable names derived from op
# names continue with `_0`, `.tmp`, so a following `_`, `.` or word character excludes them.
_QUANT_OP = re.compile(rb"(?:(?:de)?quantize_linear|fake_(?:channel_wise_)?(?:de)?quantize[a-z_]*?(?:_max|_abs_max|_moving_average_abs_max))(?![\w.])")


def quant_op_count(model_file: Path) -> int:
    """How many quantize/dequantize ops an exported program (.pdmodel protobuf or PIR .json) holds."""
    return len(_QUANT_OP.findall(Path(model_file).read_bytes()))


def effective_precision(requested: str, *, use_gpu: bool, use_mkldnn: bool, use_trt: bool, quant_ops: int) -> str:
    """The precision Paddle Inference really computes in for these flags.

    On CPU, int8 kernels run only through oneDNN and only for a program with quantize ops; any other int8
    request computes in fp32 (a quantized program without oneDNN simulates its quantization in fp32). On GPU,
    fp16 and int8 need TensorRT (int8 also a quantized program, or TensorRT calibration, which is not used here).
    """
    if requested == "int8":
        if use_gpu:
            return "int8" if use_trt and quant_ops else "fp32"
        return "int8" if use_mkldnn and quant_ops else "fp32"
    if requested == "fp16":
        return "fp16" if use_gpu and use_trt else "fp32"
    return "fp32"


def engine_line(*, requested: str, effective: str, quant_ops: int, backend: str) -> str:
    """`engine: precision=<what ran> requested=<flag> quant_ops=<n> backend=<...>`: harness.golden reads it."""
    return f"engine: precision={effective} requested={requested} quant_ops={quant_ops} backend={backend}"


class StageTimer:
    """Per-stage wall time (preprocess / inference / postprocess), in milliseconds per image."""

    def __init__(self, stages: tuple[str, ...] = ("preprocess", "inference", "postprocess")) -> None:
        self.totals = dict.fromkeys(stages, 0.0)
        self.counts = dict.fromkeys(stages, 0)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] += time.perf_counter() - start
            self.counts[name] += 1

    def per_image_ms(self, images: int) -> dict[str, float]:
        return {k: 1000.0 * v / max(images, 1) for k, v in self.totals.items()}
