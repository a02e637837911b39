"""Shared Paddle Inference pieces: the quantize ops of an exported program and the precision that really ran."""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["effective_precision", "engine_line", "op_types", "quant_op_count"]

_QUANT_OP_TYPES = re.compile(r"^(?:(?:de)?quantize_linear|fake_(?:channel_wise_)?(?:de)?quantize\w*)$")


def _walk_pir_ops(node: Any) -> Iterator[str]:
    """Op names in a PIR JSON program: dicts inside an "ops" list, named by their "#" field ("1.conv2d")."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "ops" and isinstance(value, list):
                for op in value:
                    if isinstance(op, dict) and isinstance(op.get("#"), str):
                        yield op["#"].split(".", 1)[-1]
            yield from _walk_pir_ops(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_pir_ops(item)


def op_types(model_file: Path) -> dict[str, int]:
    """Op type -> count of an exported program: a PIR `.json`, or a legacy `.pdmodel` read as a ProgramDesc.

    Read op by op: a byte search would also find the op-version table that every legacy program carries, which
    names quantize ops whether or not the program uses them.
    """
    path = Path(model_file)
    counts: collections.Counter[str] = collections.Counter()
    if path.suffix == ".json":
        counts.update(name for name in _walk_pir_ops(json.loads(path.read_text())) if name != "p")
        return dict(counts)
    from paddle.base import core  # imported only here: reading a legacy program needs paddle

    desc = core.ProgramDesc(path.read_bytes())
    for b in range(desc.num_blocks()):
        block = desc.block(b)
        counts.update(block.op(i).type() for i in range(block.op_size()))
    return dict(counts)


def quant_op_count(model_file: Path) -> int:
    """How many quantize/dequantize ops an exported program holds."""
    return sum(n for name, n in op_types(model_file).items() if _QUANT_OP_TYPES.match(name))


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
