"""PicoDetLite: a small anchor-free, CenterNet-style detector (conv-BN-ReLU backbone, heatmap + box heads)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import paddle
import paddle.nn as nn

__all__ = ["ConvBNReLU", "PicoDetLite", "build_model"]


class ConvBNReLU(nn.Layer):
    def __init__(self, cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)
        self.act = nn.ReLU()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out: paddle.Tensor = self.act(self.bn(self.conv(x)))
        return out


class PicoDetLite(nn.Layer):
    """Input [N, 3, S, S] -> (heatmap logits [N, C, S/4, S/4], box regression [N, 4, S/4, S/4]).

    The box map holds (dx, dy, log w, log h) per cell: the centre offset inside the cell and the box size, both
    in units of the output stride. Decoding (sigmoid, peak picking, top-k) happens in numpy after the network, so
    the exported graph holds only conv, batch norm and ReLU: ops that Paddle Inference, the legacy-IR
    quantization passes and paddle2onnx all handle.
    """

    stride = 4

    def __init__(self, num_classes: int = 3, channels: Sequence[int] = (16, 32, 48), head_channels: int = 32) -> None:
        super().__init__()
        c1, c2, c3 = channels
        # Two stride-2 stages down to 1/4, then stride-4 layers, one dilated, so the receptive field (~47 px)
        # covers the largest object of a 64 px image without an upsampling neck.
        self.backbone = nn.Sequential(
            ConvBNReLU(3, c1, stride=2),
            ConvBNReLU(c1, c2, stride=2),
            ConvBNReLU(c2, c3),
            ConvBNReLU(c3, c3, dilation=2),
            ConvBNReLU(c3, c3),
        )
        self.heat_tower = ConvBNReLU(c3, head_channels)
        self.box_tower = ConvBNReLU(c3, head_channels)
        prior = 0.05  # start with a low objectness everywhere, as focal-loss detectors do
        self.heat_out = nn.Conv2D(
            head_channels,
            num_classes,
            1,
            bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(-math.log((1 - prior) / prior))),
        )
        self.box_out = nn.Conv2D(head_channels, 4, 1)
        self.num_classes = num_classes

    def forward(self, image: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        feat = self.backbone(image)
        return self.heat_out(self.heat_tower(feat)), self.box_out(self.box_tower(feat))


def build_model(model_cfg: dict[str, object]) -> PicoDetLite:
    channels = model_cfg.get("channels", (16, 32, 48))
    assert isinstance(channels, (list, tuple)) and len(channels) == 3
    return PicoDetLite(
        num_classes=int(model_cfg.get("num_classes", 3)),  # type: ignore[call-overload]
        channels=tuple(int(c) for c in channels),
        head_channels=int(model_cfg.get("head_channels", 32)),  # type: ignore[call-overload]
    )
