"""Post-training (static) quantization of an exported PicoDetLite model with paddle.static.quantization."""

from __future__ import annotations

import logging
import shutil
import time
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from models.common.config import Config, ConfigError
from models.detection.deploy.predictor import INFER_CFG, load_exported

__all__ = ["OUTPUT_SUBDIR", "quant_post_static_task"]

LOG = logging.getLogger("models")
# PaddleClas's kl_quant writes here, and TIPC inference then reads `<model dir>/quant_post_static_model`.
OUTPUT_SUBDIR = "quant_post_static_model"
ALGOS = ("KL", "hist", "avg", "abs_max", "mse", "min_max")


def _calibration(cfg: Config, input_name: str) -> Iterator[dict[str, np.ndarray]]:
    """Preprocessed training images in fixed order, `ptq_batch_size` at a time, as feed dicts."""
    from models.detection.engine import load_images, load_split

    images = load_images(cfg, load_split(cfg, "TrainReader"))
    size = int(cfg["Slim.ptq_batch_size"])
    for start in range(0, len(images), size):
        yield {input_name: images[start : start + size]}


def _dirs(cfg: Config, args: Namespace) -> tuple[Path, Path]:
    """(exported float model, output folder) from `--model_dir` and `Global.save_inference_dir`.

    Two conventions work. PaddleClas style: no `--model_dir`; the float model is `Global.save_inference_dir` and
    the result goes to `<it>/quant_post_static_model`. Harness style: `--model_dir=<float model>` plus
    `-o Global.save_inference_dir=<output>`; an output equal to the input also means `<input>/quant_post_static_model`.
    """
    save_dir = Path(str(cfg["Global.save_inference_dir"]))
    model_dir: Path | None = getattr(args, "model_dir", None)
    if model_dir is None:
        return save_dir, save_dir / OUTPUT_SUBDIR
    if save_dir.resolve() == model_dir.resolve():
        return model_dir, model_dir / OUTPUT_SUBDIR
    return model_dir, save_dir


def quant_post_static_task(cfg: Config, args: Namespace) -> int:
    """Quantize an exported float model into a folder of its own, with quant ops and an infer_cfg.yml.

    The program must be in the legacy format (inference.pdmodel), which is what export_model.py writes: the
    calibration passes in paddle.static.quantization work on the old IR only, so the calling script switches
    the PIR API off before Paddle is imported.
    """
    import paddle
    from paddle.static.quantization import post_training_quantization

    # Untyped upstream class; held as Any so the calls below type-check.
    quantizer_cls: Any = post_training_quantization.PostTrainingQuantization

    algo = str(cfg["Slim.ptq_algo"])
    if algo not in ALGOS:
        raise ConfigError(cfg.path, f"Slim.ptq_algo must be one of {', '.join(ALGOS)}, got {algo!r}")
    model_dir, out_dir = _dirs(cfg, args)
    exported = load_exported(model_dir)
    if exported.model_file.suffix != ".pdmodel":
        raise ConfigError(
            cfg.path, f"{exported.model_file}: post-training quantization needs the legacy .pdmodel format (re-export)"
        )
    if exported.info.get("quant", "none") != "none":
        raise ConfigError(cfg.path, f"{model_dir} is already quantized (quant={exported.info['quant']})")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    paddle.enable_static()
    start = time.perf_counter()
    executor = paddle.static.Executor(paddle.CPUPlace())
    input_name = str(exported.info.get("input_name", "image"))
    ptq = quantizer_cls(
        executor=executor,
        model_dir=str(model_dir),
        model_filename=exported.model_file.name,
        params_filename=exported.params_file.name,
        data_loader=lambda: _calibration(cfg, input_name),
        batch_nums=int(cfg["Slim.ptq_batch_nums"]),
        algo=algo,
        quantizable_op_type=["conv2d", "depthwise_conv2d"],
        weight_bits=int(cfg["Slim.weight_bits"]),
        activation_bits=int(cfg["Slim.activation_bits"]),
        weight_quantize_type="channel_wise_abs_max",
        onnx_format=bool(cfg["Slim.ptq_onnx_format"]),
        is_full_quantize=False,
    )
    ptq.quantize()
    ptq.save_quantized_model(str(out_dir), model_filename="inference.pdmodel", params_filename="inference.pdiparams")
    program, _, _ = paddle.static.load_inference_model(str(out_dir / "inference"), executor)
    quant_ops = sorted({op.type for op in program.global_block().ops if "quant" in op.type})
    paddle.disable_static()
    if not quant_ops:
        msg = f"{out_dir}: the quantized program has no quantization ops"
        raise RuntimeError(msg)
    info = dict(exported.info)
    info["quant"] = "ptq"
    info["ptq_algo"] = algo
    (out_dir / INFER_CFG).write_text(yaml.safe_dump(info, sort_keys=False))
    LOG.info("post-training quantization (%s) took %.2fs; quant ops: %s", algo, time.perf_counter() - start, ", ".join(quant_ops))
    print(f"quant_post_static: dir={out_dir} algo={algo} quant_ops={','.join(quant_ops)}", flush=True)
    return 0
