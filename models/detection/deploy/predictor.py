"""Shared deploy plumbing: exported-model folders, image batches, Paddle Inference predictors, result lines."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from models.common.errors import DataError
from models.detection.data import IMAGE_SUFFIXES, load_image, preprocess
from models.detection.postprocess import Detections, decode

__all__ = [
    "ExportedModel",
    "PaddlePredictor",
    "decode_batch",
    "image_batches",
    "list_images",
    "load_exported",
]

LOG = logging.getLogger("models")
INFER_CFG = "infer_cfg.yml"


@dataclasses.dataclass(frozen=True, slots=True)
class ExportedModel:
    model_dir: Path
    model_file: Path  # .pdmodel (legacy program) or .json (PIR program)
    params_file: Path
    info: dict[str, Any]  # infer_cfg.yml

    @property
    def input_size(self) -> int:
        return int(self.info["input_size"])


def load_exported(model_dir: Path) -> ExportedModel:
    """Find the program, weights and infer_cfg.yml of an exported model; DataError naming what is missing."""
    if not model_dir.is_dir():
        raise DataError(model_dir, "inference model folder not found")
    cfg_path = model_dir / INFER_CFG
    try:
        info = yaml.safe_load(cfg_path.read_text())
    except FileNotFoundError:
        raise DataError(cfg_path, "missing: this folder was not written by tools/export_model.py") from None
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(cfg_path, f"unreadable: {exc}") from None
    required = ("input_size", "stride", "mean", "std", "top_k", "draw_threshold", "labels")
    if not isinstance(info, dict) or any(k not in info for k in required):
        raise DataError(cfg_path, f"must be a mapping with keys {', '.join(required)}")
    for stem in ("inference", "model"):  # `model.*` is what PaddleClas's quant_post_static names its output
        for suffix in (".pdmodel", ".json"):
            model_file = model_dir / f"{stem}{suffix}"
            params = model_dir / f"{stem}.pdiparams"
            if model_file.is_file() and params.is_file():
                return ExportedModel(model_dir, model_file, params, info)
    raise DataError(model_dir, "no inference.pdmodel/.json with inference.pdiparams in this folder")


def list_images(image_dir: Path) -> list[Path]:
    """One image file, or every image in a folder (sorted by name, not recursive)."""
    if image_dir.is_file():
        return [image_dir]
    if not image_dir.is_dir():
        raise DataError(image_dir, "image file or folder not found")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(image_dir, f"no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return images


def image_batches(paths: list[Path], model: ExportedModel, batch_size: int) -> Iterator[tuple[list[Path], np.ndarray, list[tuple[int, int]]]]:
    """(paths, float32 [B, 3, S, S], original (width, height) of each) per batch."""
    size, mean, std = model.input_size, model.info["mean"], model.info["std"]
    for start in range(0, len(paths), max(batch_size, 1)):
        chunk = paths[start : start + max(batch_size, 1)]
        images = [load_image(p) for p in chunk]
        batch = np.stack([preprocess(img, size, mean, std) for img in images]).astype(np.float32)
        yield chunk, batch, [(img.shape[1], img.shape[0]) for img in images]


def decode_batch(model: ExportedModel, heat: np.ndarray, box: np.ndarray, sizes: list[tuple[int, int]]) -> list[Detections]:
    return decode(
        heat,
        box,
        stride=int(model.info["stride"]),
        input_size=model.input_size,
        image_sizes=sizes,
        top_k=int(model.info["top_k"]),
        score_threshold=float(model.info.get("score_threshold", 0.01)),
    )


class PaddlePredictor:
    """A Paddle Inference predictor configured from the TIPC inference flags."""

    def __init__(
        self,
        model: ExportedModel,
        *,
        use_gpu: bool = False,
        use_mkldnn: bool = False,
        cpu_threads: int = 1,
        use_tensorrt: bool = False,
        precision: str = "fp32",
        batch_size: int = 1,
    ) -> None:
        import paddle
        from paddle.inference import Config, PrecisionType, create_predictor

        config = Config(str(model.model_file), str(model.params_file))
        if use_gpu:
            if not paddle.device.is_compiled_with_cuda():
                raise DataError(model.model_dir, "--use_gpu=True but this Paddle build has no CUDA support")
            config.enable_use_gpu(256, 0)
            if use_tensorrt:
                modes = {"fp32": PrecisionType.Float32, "fp16": PrecisionType.Half, "int8": PrecisionType.Int8}
                config.enable_tensorrt_engine(
                    workspace_size=1 << 28,
                    max_batch_size=batch_size,
                    min_subgraph_size=3,
                    precision_mode=modes[precision],
                    use_static=False,
                    use_calib_mode=False,
                )
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(max(cpu_threads, 1))
            if use_mkldnn:
                config.enable_mkldnn()
            else:
                # Paddle 3.x turns oneDNN on by default for CPU; `--use_mkldnn=False` must really mean off.
                config.disable_mkldnn()
            if precision != "fp32":
                # On CPU the model decides: a quantized model (fake-quant or quantize_linear ops) runs its int8
                # path under oneDNN; a float model stays float. The flag is recorded, not forced.
                LOG.info("--precision=%s on CPU: the model's own ops decide its arithmetic", precision)
        config.switch_ir_optim(True)
        config.enable_memory_optim()
        config.disable_glog_info()
        self.predictor = create_predictor(config)
        self.input_names = self.predictor.get_input_names()
        self.output_names = self.predictor.get_output_names()

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        handle = self.predictor.get_input_handle(self.input_names[0])
        handle.reshape(list(batch.shape))
        handle.copy_from_cpu(batch)
        self.predictor.run()
        outputs = [self.predictor.get_output_handle(n).copy_to_cpu() for n in self.output_names]
        return _heads(outputs)


def _heads(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(heatmap logits, box map): the exported program keeps the network's return order."""
    if len(outputs) != 2 or outputs[1].ndim != 4 or outputs[1].shape[1] != 4:
        shapes = [list(o.shape) for o in outputs]
        msg = f"expected two outputs, heatmap [N, C, H, W] and boxes [N, 4, H, W]; got shapes {shapes}"
        raise ValueError(msg)
    return outputs[0], outputs[1]
