"""The one PACT quantization-aware-training recipe both image families use (paddleslim's dygraph QAT config)."""

from __future__ import annotations

from typing import Any

__all__ = ["pact_qat_config"]


def pact_qat_config(*, weight_bits: int = 8, activation_bits: int = 8) -> dict[str, Any]:
    """PACT clipping in front of every activation quantizer, per-channel abs-max weights, moving-average abs-max
    activations; Conv2D and Linear layers are quantized. A fresh dict each call: paddleslim may keep it."""
    return {
        "weight_preprocess_type": None,
        "activation_preprocess_type": "PACT",
        "weight_quantize_type": "channel_wise_abs_max",
        "activation_quantize_type": "moving_average_abs_max",
        "weight_bits": weight_bits,
        "activation_bits": activation_bits,
        "dtype": "int8",
        "window_size": 10000,
        "moving_rate": 0.9,
        "quantizable_layer_type": ["Conv2D", "Linear"],
    }
