"""Integer inference of the quantized detector in numpy: int8 activations x int8 weights, int32 accumulation.

It mirrors PillarDetector.forward layer by layer. Each quantized layer rounds its input to int8 with the
calibrated/QAT scale, multiplies by the int8 weights in int32, and rescales once per output channel; bias, folded
BatchNorm, ReLU, pooling, upsampling and concat run in float32, as in an int8 runtime without fused requantization.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.common.errors import DataError

__all__ = ["Int8Engine"]


class Int8Engine:
    def __init__(self, path: Path) -> None:
        try:
            with np.load(path) as data:
                self.arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError) as exc:
            raise DataError(path, f"cannot read int8 model ({exc})") from None
        self.qmax = float(2 ** (int(self.arrays["activation_bits"]) - 1) - 1)
        self.int_ops = 0  # multiply-accumulates done in integers by the last run, for the log

    def _quant_input(self, name: str, x: np.ndarray) -> tuple[np.ndarray, np.float32]:
        # Same float32 arithmetic as ActQuant: step = scale / qmax, then round-half-even of x / step.
        step = np.float32(self.arrays[f"{name}.act_scale"].reshape(-1)[0]) / np.float32(self.qmax)
        q = np.clip(np.round(x.astype(np.float32) / step), -self.qmax, self.qmax).astype(np.int8)
        return q, np.float32(step)

    def _epilogue(self, name: str, acc: np.ndarray, step: np.float32, relu: bool) -> np.ndarray:
        shape = (1, -1, 1, 1)
        out = acc.astype(np.float32) * (step * self.arrays[f"{name}.weight_scale"]).reshape(shape)
        out = out + self.arrays[f"{name}.bias"].reshape(shape)
        if f"{name}.bn_mul" in self.arrays:
            out = out * self.arrays[f"{name}.bn_mul"].reshape(shape) + self.arrays[f"{name}.bn_add"].reshape(shape)
        result: np.ndarray = np.maximum(out, 0.0) if relu else out
        return result

    def conv(self, name: str, x: np.ndarray, *, stride: int = 1, relu: bool = True) -> np.ndarray:
        weight = self.arrays[f"{name}.weight_int8"].astype(np.int32)  # (Cout, Cin, k, k)
        cout, cin, k, _ = weight.shape
        q, step = self._quant_input(name, x)
        batch, _, height, width = q.shape
        pad = k // 2
        qp = np.pad(q, ((0, 0), (0, 0), (pad, pad), (pad, pad))).astype(np.int32)
        out_h = (height + 2 * pad - k) // stride + 1
        out_w = (width + 2 * pad - k) // stride + 1
        # im2col in (Cin, ky, kx) order, matching the weight layout.
        cols = np.stack(
            [
                qp[:, :, dy : dy + stride * (out_h - 1) + 1 : stride, dx : dx + stride * (out_w - 1) + 1 : stride]
                for dy in range(k)
                for dx in range(k)
            ],
            axis=2,
        ).reshape(batch, cin * k * k, out_h * out_w)
        acc = np.matmul(weight.reshape(cout, cin * k * k), cols)  # int32 accumulation
        self.int_ops += int(batch * cout * cin * k * k * out_h * out_w)
        return self._epilogue(name, acc.reshape(batch, cout, out_h, out_w), step, relu)

    def run(self, pillars: np.ndarray) -> np.ndarray:
        """(B, D, P, K) pillars -> (B, C + 8, S, S) head output, like the Paddle model."""
        self.int_ops = 0
        batch, _, num_pillars, _ = pillars.shape
        size = int(round(num_pillars**0.5))
        feats = self.conv("pfn", pillars)  # 1x1: (B, C, P, K), ReLU applied
        bev = feats.max(axis=3).reshape(batch, -1, size, size)
        x1 = self.conv("b1b.conv", self.conv("b1a.conv", bev))
        x2 = self.conv("b2b.conv", self.conv("b2a.conv", x1, stride=2))
        up = self.conv("up.conv", x2).repeat(2, axis=2).repeat(2, axis=3)
        fused = self.conv("fuse.conv", np.concatenate([x1, up], axis=1))
        return self.conv("head", fused, relu=False)
