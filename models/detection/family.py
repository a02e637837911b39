"""Registers the detection family (architecture `PicoDetLite`) and its default config with the shared dispatcher."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from models.common.config import Config
from models.common.registry import Family, register

__all__ = ["FAMILY", "defaults"]

ARCHITECTURES = ("PicoDetLite",)


def defaults(architecture: str) -> dict[str, Any]:
    """Every key a detection config may set, with its default; YAML files and `-o` can only change these."""
    data = {"dataset_dir": "lite_data/det_shapes"}
    return {
        "architecture": architecture,
        "Global": {
            "device": "cpu",
            "seed": 1234,
            "epochs": 60,
            "output_dir": "./output/picodet_lite",
            "pretrained_model": None,
            "save_inference_dir": "./output/picodet_lite_infer",
            "log_interval": 10,
        },
        "Model": {
            "num_classes": 3,
            "labels": ["circle", "square", "triangle"],
            "input_size": 64,
            "channels": [16, 32, 48],
            "head_channels": 32,
            "top_k": 20,
            "draw_threshold": 0.5,  # for drawing/consumers; result lines use print_top_k
            "print_top_k": 3,  # detections per `result:` line (the lite images hold at most 3 objects)
        },
        "Preprocess": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        "Optimizer": {"lr": 0.01, "weight_decay": 0.0001, "warmup_steps": 40, "box_loss_weight": 1.0},
        "TrainReader": {
            **data,
            "image_dir": "train",
            "anno_path": "annotations/instances_train.json",
            "batch_size": 8,
            "shuffle": True,
            "flip": True,
            "max_shift": 8,  # pixels of random translation (boxes always stay inside)
        },
        "EvalReader": {
            **data,
            "image_dir": "val",
            "anno_path": "annotations/instances_val.json",
            "batch_size": 16,
            "score_threshold": 0.01,
        },
        "Slim": {
            "quant": None,  # null (float) or pact (quantization-aware training)
            "weight_bits": 8,
            "activation_bits": 8,
            "ptq_algo": "hist",  # calibration: hist, avg, abs_max, mse, min_max, KL (KL: 45-100 s here)
            "ptq_batch_size": 8,
            "ptq_batch_nums": 10,
            "ptq_onnx_format": True,  # quantize_linear/dequantize_linear ops rather than fake_quantize_*
        },
        "AMP": {"level": "O0"},
    }


def _train(cfg: Config, args: Namespace) -> int:
    from models.detection.engine import train_task  # paddle is imported only when a task runs

    return train_task(cfg, args)


def _eval(cfg: Config, args: Namespace) -> int:
    from models.detection.engine import eval_task

    return eval_task(cfg, args)


def _export(cfg: Config, args: Namespace) -> int:
    from models.detection.engine import export_task

    return export_task(cfg, args)


def _forward(cfg: Config, args: Namespace) -> int:
    from models.detection.forward import forward_task

    return forward_task(cfg, args)


def _quant_post_static(cfg: Config, args: Namespace) -> int:
    from models.detection.deploy.ptq import quant_post_static_task

    return quant_post_static_task(cfg, args)


FAMILY = register(
    Family(
        name="detection",
        architectures=ARCHITECTURES,
        defaults=defaults,
        tasks={"train": _train, "eval": _eval, "export": _export, "forward": _forward,
               "quant_post_static": _quant_post_static},
    )
)
