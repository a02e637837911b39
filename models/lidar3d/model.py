"""PointPillars-lite: per-pillar PointNet, BEV conv backbone and a CenterPoint-style heatmap + box head, in Paddle."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import paddle
import paddle.nn.functional as F
from paddle import nn

from models.lidar3d.pillars import NUM_POINT_FEATURES, NUM_REG

__all__ = ["ConvBNReLU", "PillarDetector", "build_model", "detection_loss"]

HEAT_PRIOR = 0.1  # initial object probability of every cell, as in CenterNet's focal-loss bias init


class ConvBNReLU(nn.Layer):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, kernel, stride=stride, padding=kernel // 2, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.relu(self.bn(self.conv(x)))


class PillarDetector(nn.Layer):
    """Input (B, D, S*S, K) pillars, output (B, C + 8, S, S): class heatmap logits then box regression."""

    def __init__(
        self, *, grid_size: int, num_classes: int, pfn_channels: int = 32, channels: Sequence[int] = (32, 64)
    ) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.num_classes = num_classes
        self.pfn_channels = pfn_channels
        c1, c2 = channels
        # No bias: zero-padded point slots then stay exactly zero after the ReLU, so the max over a pillar's
        # slots ignores them without a mask. The per-point "valid" feature (always 1) plays the bias role.
        # The PointNet is a 1x1 convolution over (pillar, slot) positions.
        self.pfn = nn.Conv2D(NUM_POINT_FEATURES, pfn_channels, 1, bias_attr=False)
        self.b1a = ConvBNReLU(pfn_channels, c1, 3)
        self.b1b = ConvBNReLU(c1, c1, 3)
        self.b2a = ConvBNReLU(c1, c2, 3, stride=2)
        self.b2b = ConvBNReLU(c2, c2, 3)
        self.up = ConvBNReLU(c2, c1, 1)  # 1x1 before the nearest upsample: the same result, 4x cheaper
        self.fuse = ConvBNReLU(2 * c1, c1, 3)
        self.head = nn.Conv2D(c1, num_classes + NUM_REG, 1)
        with paddle.no_grad():
            bias = self.head.bias.numpy()
            bias[:num_classes] = -math.log((1.0 - HEAT_PRIOR) / HEAT_PRIOR)
            bias[num_classes:] = 0.0
            self.head.bias.set_value(paddle.to_tensor(bias))

    def forward(self, pillars: paddle.Tensor) -> paddle.Tensor:
        point_feats = F.relu(self.pfn(pillars))  # B, C, P, K
        # Max over the K slots as a pooling window: much faster backward on CPU than paddle.max over an axis.
        pillar_feats = F.max_pool2d(point_feats, kernel_size=(1, point_feats.shape[3]))  # B, C, P, 1
        # The scatter into the BEV canvas: every cell owns a pillar slot, so it is a reshape.
        bev = paddle.reshape(pillar_feats, [-1, self.pfn_channels, self.grid_size, self.grid_size])
        x1 = self.b1b(self.b1a(bev))
        x2 = self.b2b(self.b2a(x1))
        up = _upsample2(self.up(x2))
        out: paddle.Tensor = self.head(self.fuse(paddle.concat([x1, up], axis=1)))
        return out


def _upsample2(x: paddle.Tensor) -> paddle.Tensor:
    """Nearest 2x upsampling from tile + reshape: Paddle Inference's oneDNN path rejects interpolate's float
    scale attribute under PIR (3.3), and these ops export to ONNX as they are."""
    _, channels, height, width = x.shape
    tiled = paddle.tile(paddle.reshape(x, [-1, channels, height, 1, width, 1]), [1, 1, 1, 2, 1, 2])
    return paddle.reshape(tiled, [-1, channels, 2 * height, 2 * width])


def build_model(model_cfg: Mapping[str, Any], num_classes: int) -> PillarDetector:
    return PillarDetector(
        grid_size=int(model_cfg["grid"]["size"]),
        num_classes=num_classes,
        pfn_channels=int(model_cfg.get("pfn_channels", 32)),
        channels=tuple(int(c) for c in model_cfg.get("channels", (32, 64))),
    )


def detection_loss(
    head: paddle.Tensor, heat: paddle.Tensor, reg: paddle.Tensor, mask: paddle.Tensor, *, reg_weight: float
) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """CenterNet focal loss on the heatmap plus L1 on the box channels at object centres; (total, heat, reg)."""
    num_classes = heat.shape[1]
    pred = paddle.clip(F.sigmoid(head[:, :num_classes]), 1e-4, 1.0 - 1e-4)
    pos = paddle.cast(heat >= 1.0, "float32")
    neg_weight = paddle.pow(1.0 - heat, 4)
    pos_loss = paddle.log(pred) * paddle.pow(1.0 - pred, 2) * pos
    neg_loss = paddle.log(1.0 - pred) * paddle.pow(pred, 2) * neg_weight * (1.0 - pos)
    num_pos = paddle.clip(paddle.sum(pos), min=1.0)
    heat_loss = -(paddle.sum(pos_loss) + paddle.sum(neg_loss)) / num_pos
    mask4 = paddle.unsqueeze(mask, 1)
    reg_loss = paddle.sum(paddle.abs(head[:, num_classes:] - reg) * mask4) / paddle.clip(paddle.sum(mask), min=1.0)
    return heat_loss + reg_weight * reg_loss, heat_loss, reg_loss
