"""The framework's own forward pass (dygraph, eval mode) of detector weights on an image folder: `result:` lines."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import numpy as np
import paddle

from models.common.config import Config, ConfigError
from models.detection.data import load_image, preprocess
from models.detection.deploy.predictor import list_images
from models.detection.engine import _model_for
from models.detection.model import PicoDetLite
from models.detection.postprocess import decode, format_result

__all__ = ["forward_task"]


def forward_task(cfg: Config, args: Namespace) -> int:
    """Same preprocessing, decoding and line format as deploy/infer.py, with the model run by paddle itself."""
    paddle.device.set_device("cpu")
    weights = cfg["Global.pretrained_model"]
    if not weights:
        raise ConfigError(cfg.path, "Global.pretrained_model is empty: nothing to run")
    model, quant, _ = _model_for(cfg, weights=str(weights), purpose="export")
    model.eval()
    size = int(cfg["Model.input_size"])
    mean, std = list(cfg["Preprocess.mean"]), list(cfg["Preprocess.std"])
    print(f"engine: precision=fp32 requested=fp32 quant_ops=0 backend=dygraph quant={quant or 'none'}", flush=True)
    for path in list_images(Path(args.image_dir)):
        image = load_image(path)
        batch = np.stack([preprocess(image, size, mean, std)]).astype(np.float32)
        with paddle.no_grad():
            heat, box = model(paddle.to_tensor(batch))
        det = decode(heat.numpy(), box.numpy(), stride=PicoDetLite.stride, input_size=size,
                     image_sizes=[(image.shape[1], image.shape[0])], top_k=int(cfg["Model.top_k"]),
                     score_threshold=float(cfg["EvalReader.score_threshold"]))[0]
        print(format_result(path.name, det, top_k=int(cfg["Model.print_top_k"])), flush=True)
    return 0
