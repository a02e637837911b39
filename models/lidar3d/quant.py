"""Int8 fake quantization for the lidar detector: calibration of activation scales, QAT wrappers, integer export."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

__all__ = [
    "QUANT_LAYERS",
    "ActQuant",
    "QuantConfig",
    "QuantConv2D",
    "QuantLinear",
    "calibrate",
    "fake_quant_weight",
    "freeze_weights",
    "has_quant_state",
    "int8_arrays",
    "kl_threshold",
    "quantize_model",
    "set_mode",
]

# Layers quantized by `quantize_model`, in network order. The integer engine in deploy/predict.py walks the same list.
QUANT_LAYERS = ("pfn", "b1a.conv", "b1b.conv", "b2a.conv", "b2b.conv", "up.conv", "fuse.conv", "head")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class QuantConfig:
    """What configs/quant/*.yml says; every field has a default so an empty file means symmetric int8."""

    weight_bits: int = 8
    activation_bits: int = 8
    calibration_method: str = "abs_max"  # or "percentile", "kl"
    percentile: float = 99.99
    calibration_batches: int = 8
    qat_learning_rate: float = 5e-4
    freeze_bn: bool = True  # QAT keeps the float model's BN statistics; batches of 4 are too small to re-estimate

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> QuantConfig:
        quant = dict((cfg or {}).get("quant", cfg or {}))
        calib = dict(quant.get("calibration", {}))
        qat = dict(quant.get("qat", {}))
        method = str(calib.get("method", "abs_max"))
        if method not in ("abs_max", "percentile", "kl"):
            msg = f"quant.calibration.method must be abs_max, percentile or kl, not {method!r}"
            raise ValueError(msg)
        return cls(
            weight_bits=int(quant.get("weight_bits", 8)),
            activation_bits=int(quant.get("activation_bits", 8)),
            calibration_method=method,
            percentile=float(calib.get("percentile", 99.99)),
            calibration_batches=int(calib.get("batches", 8)),
            qat_learning_rate=float(qat.get("learning_rate", 5e-4)),
            freeze_bn=bool(qat.get("freeze_bn", True)),
        )

    def to_config(self) -> dict[str, Any]:
        return {
            "weight_bits": self.weight_bits,
            "activation_bits": self.activation_bits,
            "calibration": {
                "method": self.calibration_method,
                "percentile": self.percentile,
                "batches": self.calibration_batches,
            },
            "qat": {"learning_rate": self.qat_learning_rate, "freeze_bn": self.freeze_bn},
        }


def _qmax(bits: int) -> int:
    return int(2 ** (bits - 1) - 1)


def fake_quant_weight(weight: paddle.Tensor, *, channel_axis: int, bits: int) -> paddle.Tensor:
    """Symmetric per-output-channel quantize-dequantize, with a straight-through gradient."""
    qmax = float(_qmax(bits))
    reduce_axes = [a for a in range(weight.ndim) if a != channel_axis]
    scale = paddle.clip(paddle.amax(paddle.abs(weight), axis=reduce_axes, keepdim=True), min=1e-8) / qmax
    quant = paddle.clip(paddle.round(weight / scale), -qmax, qmax) * scale
    return weight + (quant - weight).detach()


class ActQuant(nn.Layer):
    """Per-tensor symmetric activation quantizer. Modes: "observe" (calibration, pass-through) and "quant"."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits
        self.mode = "quant"
        self.register_buffer("scale", paddle.zeros([1], dtype="float32"), persistable=True)
        self.observed: list[np.ndarray] = []

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.mode == "observe":
            self.observed.append(np.abs(x.numpy()).ravel())
            return x
        qmax = float(_qmax(self.bits))
        step = self.scale / qmax
        quant: paddle.Tensor = paddle.clip(paddle.round(x / step), -qmax, qmax) * step
        if self.training:
            quant = x + (quant - x).detach()  # straight-through gradient
        return quant


class QuantConv2D(nn.Layer):
    """A Conv2D whose input and weight go through int8 fake quantization; parameter names stay `weight`/`bias`."""

    def __init__(self, conv: nn.Conv2D, cfg: QuantConfig) -> None:
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias
        self._stride = conv._stride
        self._padding = conv._padding
        self.weight_bits = cfg.weight_bits
        self.weight_frozen = False  # set by freeze_weights: the weight already holds its int8 grid values
        self.act = ActQuant(cfg.activation_bits)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        weight = self.weight
        if not self.weight_frozen:
            weight = fake_quant_weight(weight, channel_axis=0, bits=self.weight_bits)
        return F.conv2d(self.act(x), weight, self.bias, stride=self._stride, padding=self._padding)


class QuantLinear(nn.Layer):
    """A Linear layer with int8 fake quantization (Paddle stores Linear weights as [in, out])."""

    def __init__(self, linear: nn.Linear, cfg: QuantConfig) -> None:
        super().__init__()
        self.weight = linear.weight
        self.bias = linear.bias
        self.weight_bits = cfg.weight_bits
        self.weight_frozen = False
        self.act = ActQuant(cfg.activation_bits)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        weight = self.weight
        if not self.weight_frozen:
            weight = fake_quant_weight(weight, channel_axis=1, bits=self.weight_bits)
        return F.linear(self.act(x), weight, self.bias)


def _parent_and_name(model: nn.Layer, dotted: str) -> tuple[nn.Layer, str]:
    parent = model
    *path, name = dotted.split(".")
    for part in path:
        parent = getattr(parent, part)
    return parent, name


def quantize_model(model: nn.Layer, cfg: QuantConfig) -> nn.Layer:
    """Swap the layers in QUANT_LAYERS for fake-quant wrappers, in place. Float weights keep their state-dict keys."""
    for dotted in QUANT_LAYERS:
        parent, name = _parent_and_name(model, dotted)
        layer = getattr(parent, name)
        if isinstance(layer, nn.Conv2D):
            setattr(parent, name, QuantConv2D(layer, cfg))
        elif isinstance(layer, nn.Linear):
            setattr(parent, name, QuantLinear(layer, cfg))
        else:
            msg = f"cannot quantize {dotted}: {type(layer).__name__}"
            raise TypeError(msg)
    return model


def quantizers(model: nn.Layer) -> Iterable[tuple[str, ActQuant]]:
    for dotted in QUANT_LAYERS:
        parent, name = _parent_and_name(model, dotted)
        yield dotted, getattr(parent, name).act


def set_mode(model: nn.Layer, mode: str) -> None:
    for _, quantizer in quantizers(model):
        quantizer.mode = mode
        quantizer.observed = []


def has_quant_state(state: Mapping[str, Any]) -> bool:
    """True when a state dict comes from a quantized model (it carries activation scales)."""
    return any(key.endswith(".act.scale") for key in state)


def calibrate(model: nn.Layer, batches: Iterable[np.ndarray], cfg: QuantConfig) -> dict[str, float]:
    """PTQ calibration: run float batches through the model, set every activation scale; returns the scales."""
    model.eval()
    set_mode(model, "observe")
    with paddle.no_grad():
        for batch in batches:
            model(paddle.to_tensor(batch))
    scales = {}
    for dotted, quantizer in quantizers(model):
        values = np.concatenate(quantizer.observed) if quantizer.observed else np.zeros(1, np.float32)
        if cfg.calibration_method == "percentile":
            scale = float(np.percentile(values, cfg.percentile))
        elif cfg.calibration_method == "kl":
            scale = kl_threshold(values, levels=_qmax(cfg.activation_bits) + 1)
        else:
            scale = float(values.max())
        scale = max(scale, 1e-6)
        quantizer.scale.set_value(paddle.to_tensor([scale], dtype="float32"))
        scales[dotted] = scale
    set_mode(model, "quant")
    return scales


def freeze_weights(model: nn.Layer) -> None:
    """Replace each quantized layer's weight by its quantize-dequantized value, for export.

    The exported graph then holds plain constant weights (on the int8 grid) and only the activation
    quantize-dequantize ops, which paddle2onnx converts; the per-channel abs-max ops of training are gone.
    """
    with paddle.no_grad():
        for dotted in QUANT_LAYERS:
            parent, name = _parent_and_name(model, dotted)
            layer = getattr(parent, name)
            if layer.weight_frozen:
                continue
            axis = 1 if isinstance(layer, QuantLinear) else 0
            layer.weight.set_value(fake_quant_weight(layer.weight, channel_axis=axis, bits=layer.weight_bits))
            layer.weight_frozen = True


def kl_threshold(values: np.ndarray, *, levels: int = 128, bins: int = 2048) -> float:
    """The clipping threshold whose `levels`-level quantized histogram is closest (KL divergence) to the original.

    The usual entropy calibration: histogram |x| into `bins` bins; for each candidate cut, fold the tail into the
    last kept bin, merge the kept bins into `levels` groups, spread each group evenly over its non-empty bins,
    and keep the cut with the smallest KL(original || quantized).
    """
    # Exact zeros (ReLU outputs, empty pillars) are exact at any scale and would swamp the first bin.
    values = values[values > 0]
    top = float(values.max()) if values.size else 0.0
    if top <= 0.0:
        return 1e-6
    hist, edges = np.histogram(values, bins=bins, range=(0.0, top))
    hist = hist.astype(np.float64)
    best_cut, best_kl = bins, float("inf")
    for cut in range(levels, bins + 1, 16):
        ref = hist[:cut].copy()
        ref[-1] += hist[cut:].sum()
        if ref.sum() == 0:
            continue
        groups = np.array_split(np.arange(cut), levels)
        quant = np.zeros(cut)
        for group in groups:
            nonzero = hist[group] > 0
            if nonzero.any():
                # q is built from the clipped histogram without the folded tail: clipping error shows up as
                # the difference between p's heavy last bin and q's.
                quant[group[nonzero]] = hist[group].sum() / nonzero.sum()
        p = ref / ref.sum()
        q = quant / max(quant.sum(), 1e-12)
        mask = p > 0
        kl = float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))
        if kl < best_kl:
            best_cut, best_kl = cut, kl
    return float(edges[best_cut])


def int8_arrays(model: nn.Layer, cfg: QuantConfig) -> dict[str, np.ndarray]:
    """Integer weights, scales and the float epilogue (bias, folded BN) of every quantized layer, for deploy."""
    qmax_w = _qmax(cfg.weight_bits)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    arrays: dict[str, np.ndarray] = {
        "weight_bits": np.array(cfg.weight_bits),
        "activation_bits": np.array(cfg.activation_bits),
    }
    for dotted in QUANT_LAYERS:
        weight = state[f"{dotted}.weight"].astype(np.float32)
        channel_axis = 1 if weight.ndim == 2 else 0
        reduce_axes = tuple(a for a in range(weight.ndim) if a != channel_axis)
        w_scale = np.maximum(np.abs(weight).max(axis=reduce_axes, keepdims=True), 1e-8) / np.float32(qmax_w)
        w_int = np.clip(np.round(weight / w_scale), -qmax_w, qmax_w).astype(np.int8)
        arrays[f"{dotted}.weight_int8"] = w_int
        arrays[f"{dotted}.weight_scale"] = w_scale.reshape(-1).astype(np.float32)
        arrays[f"{dotted}.act_scale"] = state[f"{dotted}.act.scale"].astype(np.float32)
        channels = w_int.shape[channel_axis]
        bias = state.get(f"{dotted}.bias")
        arrays[f"{dotted}.bias"] = (bias if bias is not None else np.zeros(channels)).astype(np.float32)
        block = dotted.rsplit(".", 1)[0] if dotted.endswith(".conv") else ""
        if block:  # eval-mode BatchNorm is a per-channel affine map; fold it for the integer engine's epilogue
            gamma, beta = state[f"{block}.bn.weight"], state[f"{block}.bn.bias"]
            mean, var = state[f"{block}.bn._mean"], state[f"{block}.bn._variance"]
            mul = gamma / np.sqrt(var + 1e-5)
            arrays[f"{dotted}.bn_mul"] = mul.astype(np.float32)
            arrays[f"{dotted}.bn_add"] = (beta - mean * mul).astype(np.float32)
    return arrays
