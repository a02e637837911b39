"""PicoDetLite train / eval / export: the tasks that `models/detection/tools/*.py` dispatch to."""

from __future__ import annotations

import json
import logging
import math
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F
import yaml

from models.common.config import Config, ConfigError
from models.common.errors import DataError
from models.common.quant import pact_qat_config
from models.detection.data import CocoSet, batches, encode_targets, load_coco, load_image, preprocess
from models.detection.metrics import coco_detections, coco_map
from models.detection.model import PicoDetLite, build_model
from models.detection.postprocess import Detections, decode

__all__ = ["eval_task", "export_task", "load_images", "load_split", "quant_mode", "train_task"]

LOG = logging.getLogger("models")
PARAMS_SUFFIX = ".pdparams"
META_SUFFIX = ".meta.json"
INFER_CFG = "infer_cfg.yml"


# ---------------------------------------------------------------------------------------------------------------
# config helpers


def quant_mode(cfg: Config) -> str | None:
    """`Slim.quant`: None (float) or "pact"; anything else is a config error."""
    value = cfg["Slim.quant"]
    if value in (None, False, "", "null", "none", "None"):
        return None
    if isinstance(value, str) and value.lower() == "pact":
        return "pact"
    raise ConfigError(cfg.path, f"Slim.quant must be null or pact, got {value!r}")


def _set_device(cfg: Config) -> None:
    device = str(cfg["Global.device"]).lower()
    if device.startswith("gpu") and not paddle.device.is_compiled_with_cuda():
        raise ConfigError(cfg.path, f"Global.device={device} but this Paddle build has no CUDA support")
    if not (device.startswith("gpu") or device == "cpu"):
        raise ConfigError(cfg.path, f"Global.device must be cpu or gpu, got {device!r}")
    paddle.device.set_device(device)


def load_split(cfg: Config, section: str) -> CocoSet:
    root = Path(str(cfg[f"{section}.dataset_dir"]))
    return load_coco(root / str(cfg[f"{section}.anno_path"]), root / str(cfg[f"{section}.image_dir"]))


def load_images(cfg: Config, dataset: CocoSet) -> np.ndarray:
    """All images of a split, preprocessed, as one float32 [N, 3, S, S] array (the lite sets fit in memory)."""
    size = int(cfg["Model.input_size"])
    mean, std = cfg["Preprocess.mean"], cfg["Preprocess.std"]
    return np.stack([preprocess(load_image(s.path), size, mean, std) for s in dataset.samples]).astype(np.float32)


def _scaled_boxes(cfg: Config, dataset: CocoSet) -> list[np.ndarray]:
    """Ground-truth boxes moved from original pixels to network-input pixels."""
    size = float(cfg["Model.input_size"])
    out = []
    for s in dataset.samples:
        scale = np.array([size / s.width, size / s.height, size / s.width, size / s.height], dtype=np.float32)
        out.append(s.boxes * scale)
    return out


# ---------------------------------------------------------------------------------------------------------------
# weights


def _params_path(text: str) -> Path:
    path = Path(text)
    return path if path.suffix == PARAMS_SUFFIX else path.with_name(path.name + PARAMS_SUFFIX)


def _read_meta(params: Path) -> dict[str, Any]:
    meta_path = params.with_name(params.name[: -len(PARAMS_SUFFIX)] + META_SUFFIX)
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(meta_path, f"unreadable checkpoint metadata: {exc}") from None
    return meta if isinstance(meta, dict) else {}


def _load_state(params: Path) -> dict[str, Any]:
    if not params.is_file():
        raise DataError(params, "weights file not found")
    try:
        state = paddle.load(str(params))
    except Exception as exc:  # paddle raises many types for a damaged file; all mean the same to a user
        raise DataError(params, f"cannot load weights: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict):
        raise DataError(params, "weights file does not hold a state dict")
    return state


def _apply_state(model: paddle.nn.Layer, state: dict[str, Any], params: Path) -> None:
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    if missing or unexpected:
        hint = "; was it trained with a different Slim.quant or Model setting?"
        raise DataError(params, f"weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}{hint}")
    for key, value in state.items():
        if tuple(own[key].shape) != tuple(value.shape):
            raise DataError(params, f"weights do not fit the model: {key} has shape {list(value.shape)}, model wants {list(own[key].shape)}")
    model.set_state_dict(state)


def _save_checkpoint(model: paddle.nn.Layer, cfg: Config, name: str, quant: str | None, epoch: int) -> Path:
    out = Path(str(cfg["Global.output_dir"]))
    out.mkdir(parents=True, exist_ok=True)
    params = out / f"{name}{PARAMS_SUFFIX}"
    paddle.save(model.state_dict(), str(params))
    meta = {"architecture": cfg["architecture"], "quant": quant, "epoch": epoch, "Model": cfg["Model"]}
    (out / f"{name}{META_SUFFIX}").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return params


class _Quantizer:
    """paddleslim's dygraph QAT with PACT activations; wraps Conv2D layers with fake-quant ops in place."""

    def __init__(self, cfg: Config) -> None:
        from paddleslim.dygraph.quant import QAT  # imported only for quantized runs: it is slow to import

        config = pact_qat_config(weight_bits=int(cfg["Slim.weight_bits"]),
                                 activation_bits=int(cfg["Slim.activation_bits"]))
        self.qat = QAT(config=config)

    def quantize(self, model: paddle.nn.Layer) -> None:
        self.qat.quantize(model)
        # paddleslim gives each PACT clip value (init 100) a 1000x learning-rate multiplier, sized for SGD's tiny
        # gradients. Adam normalises its steps, so alpha would move by lr*1000 = 10 per step, cross zero within
        # a few dozen steps and flip PACT's clip into a negation that the exported int8 program (which keeps no
        # PACT op) does not reproduce. At 1x the clip moves slowly and stays a clip.
        for name, param in model.named_parameters():
            if name.endswith("_act_preprocess.alpha"):
                param.optimize_attr["learning_rate"] = 1.0

    def save(self, model: paddle.nn.Layer, prefix: str, spec: list[paddle.static.InputSpec]) -> None:
        self.qat.save_quantized_model(model, prefix, input_spec=spec)


def _model_for(cfg: Config, *, weights: str | None, purpose: str) -> tuple[PicoDetLite, str | None, _Quantizer | None]:
    """Build the network, wrap it for QAT when asked, and load `weights` (float or quantized) where they fit.

    Quantized checkpoints carry `"quant": "pact"` in their metadata. Eval and export follow the checkpoint when
    the config says nothing, so `eval.py -o Global.pretrained_model=<pact run>/latest` just works.
    """
    quant = quant_mode(cfg)
    params = _params_path(weights) if weights else None
    meta = _read_meta(params) if params is not None else {}
    ckpt_quant = meta.get("quant")
    if params is not None and purpose != "train" and ckpt_quant != quant:
        if quant is None and ckpt_quant == "pact":
            LOG.info("checkpoint %s is PACT-quantized: building the quantized model to load it", params)
            quant = "pact"
        else:
            raise ConfigError(cfg.path, f"Slim.quant={quant} but checkpoint {params} was trained with quant={ckpt_quant}")
    model = build_model(cfg["Model"])
    quantizer = _Quantizer(cfg) if quant else None
    state = _load_state(params) if params is not None else None
    # A float checkpoint loaded into a QAT run is fine-tuning: load before wrapping, so the names match.
    if state is not None and quantizer is not None and ckpt_quant is None:
        _apply_state(model, state, params)  # type: ignore[arg-type]
        state = None
    if quantizer is not None:
        quantizer.quantize(model)
    if state is not None:
        _apply_state(model, state, params)  # type: ignore[arg-type]
    if params is not None:
        LOG.info("loaded weights %s", params)
    return model, quant, quantizer


# ---------------------------------------------------------------------------------------------------------------
# training


def _focal_loss(logits: paddle.Tensor, heat: paddle.Tensor) -> paddle.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of object centres."""
    pred = F.sigmoid(logits).clip(1e-4, 1 - 1e-4)
    pos = (heat >= 1.0).astype("float32")
    neg_weight = (1.0 - heat) ** 4
    pos_loss = paddle.log(pred) * (1 - pred) ** 2 * pos
    neg_loss = paddle.log(1 - pred) * pred**2 * neg_weight * (1 - pos)
    num_pos = paddle.clip(pos.sum(), min=1.0)
    return -(pos_loss.sum() + neg_loss.sum()) / num_pos


def _box_loss(pred: paddle.Tensor, target: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
    weight = mask.unsqueeze(1)
    return (paddle.abs(pred - target) * weight).sum() / paddle.clip(mask.sum(), min=1.0)


def _amp_level(cfg: Config) -> str:
    level = cfg["AMP.level"]
    aliases = {None: "O0", "null": "O0", "amp": "O1", "fp16": "O2"}
    level = aliases.get(level, level)
    if level not in ("O0", "O1", "O2"):
        raise ConfigError(cfg.path, f"AMP.level must be O0, O1 or O2, got {cfg['AMP.level']!r}")
    if level != "O0" and not str(cfg["Global.device"]).startswith("gpu"):
        LOG.warning("AMP.level=%s needs a GPU; training in float32 on %s", level, cfg["Global.device"])
        return "O0"
    return str(level)


def _augment(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, *, size: int, flip: bool, shift: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random colour-channel order, horizontal flip and a shift that keeps every box inside the image.

    The lite set has 150 images; without these the model learns the training images, not the shapes (val mAP
    stayed near half the train mAP). Channel order is free to change because a shape's class never depends on
    its colour, and a flip keeps every class (the triangles are symmetric about the vertical axis).
    """
    b = boxes.copy()
    image = image[rng.permutation(3)]
    if flip and rng.random() < 0.5:
        image = image[:, :, ::-1]
        b[:, [0, 2]] = size - b[:, [2, 0]]
    if shift > 0 and len(b):
        lo_x, hi_x = max(-shift, -int(b[:, 0].min())), min(shift, int(size - b[:, 2].max()))
        lo_y, hi_y = max(-shift, -int(b[:, 1].min())), min(shift, int(size - b[:, 3].max()))
        dx = int(rng.integers(lo_x, hi_x + 1)) if hi_x >= lo_x else 0
        dy = int(rng.integers(lo_y, hi_y + 1)) if hi_y >= lo_y else 0
        if dx or dy:
            # Fill the uncovered border with the image's edge pixels, which look like its background.
            padded = np.pad(image, ((0, 0), (abs(dy), abs(dy)), (abs(dx), abs(dx))), mode="edge")
            y0, x0 = abs(dy) - dy, abs(dx) - dx
            image = padded[:, y0 : y0 + size, x0 : x0 + size]
            b += np.array([dx, dy, dx, dy], dtype=np.float32)
    return np.ascontiguousarray(image), b


def train_task(cfg: Config, args: Namespace) -> int:
    _set_device(cfg)
    seed = int(cfg["Global.seed"])
    paddle.seed(seed)
    rng = np.random.default_rng(seed)
    train_set = load_split(cfg, "TrainReader")
    images = load_images(cfg, train_set)
    boxes = _scaled_boxes(cfg, train_set)
    labels = [s.labels for s in train_set.samples]
    weights = cfg["Global.pretrained_model"]
    model, quant, _ = _model_for(cfg, weights=str(weights) if weights else None, purpose="train")
    amp_level = _amp_level(cfg)

    epochs = int(cfg["Global.epochs"])
    batch_size = int(cfg["TrainReader.batch_size"])
    steps_per_epoch = math.ceil(len(images) / batch_size)
    total = max(epochs * steps_per_epoch, 1)
    warmup = min(int(cfg["Optimizer.warmup_steps"]), total - 1)
    base_lr = float(cfg["Optimizer.lr"])
    schedule = paddle.optimizer.lr.LinearWarmup(
        paddle.optimizer.lr.CosineAnnealingDecay(base_lr, T_max=max(total - warmup, 1)),
        warmup_steps=warmup,
        start_lr=base_lr * 0.1,
        end_lr=base_lr,
    ) if warmup > 0 else paddle.optimizer.lr.CosineAnnealingDecay(base_lr, T_max=total)
    optimizer = paddle.optimizer.Adam(
        learning_rate=schedule,
        parameters=model.parameters(),
        weight_decay=float(cfg["Optimizer.weight_decay"]),
    )
    scaler = paddle.amp.GradScaler(init_loss_scaling=1024) if amp_level != "O0" else None
    size, stride, num_classes = int(cfg["Model.input_size"]), PicoDetLite.stride, int(cfg["Model.num_classes"])
    flip = bool(cfg["TrainReader.flip"])
    log_every = max(int(cfg["Global.log_interval"]), 1)
    LOG.info("train: %d images, %d epochs x %d steps, quant=%s, amp=%s", len(images), epochs, steps_per_epoch, quant, amp_level)
    model.train()
    start = time.perf_counter()
    step = 0
    loss_value = float("nan")
    for epoch in range(1, epochs + 1):
        for idx in batches(len(images), batch_size, shuffle=bool(cfg["TrainReader.shuffle"]), rng=rng):
            xb = images[idx].copy()
            heat_t, box_t, mask_t = [], [], []
            for j, i in enumerate(idx):
                xb[j], b = _augment(xb[j], boxes[i], rng, size=size, flip=flip, shift=int(cfg["TrainReader.max_shift"]))
                h, t, m = encode_targets(b, labels[i], num_classes=num_classes, input_size=size, stride=stride)
                heat_t.append(h)
                box_t.append(t)
                mask_t.append(m)
            x = paddle.to_tensor(xb)
            with paddle.amp.auto_cast(enable=amp_level != "O0", level=amp_level):  # type: ignore[arg-type]
                heat_logits, box_pred = model(x)
            heat_logits = heat_logits.astype("float32")
            box_pred = box_pred.astype("float32")
            heat_loss = _focal_loss(heat_logits, paddle.to_tensor(np.stack(heat_t)))
            reg_loss = _box_loss(box_pred, paddle.to_tensor(np.stack(box_t)), paddle.to_tensor(np.stack(mask_t)))
            loss = heat_loss + float(cfg["Optimizer.box_loss_weight"]) * reg_loss
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.minimize(optimizer, loss)
            else:
                loss.backward()
                optimizer.step()
            optimizer.clear_grad()
            schedule.step()
            step += 1
            loss_value = float(loss)
            if not math.isfinite(loss_value):
                LOG.error("loss became %s at epoch %d step %d; stopping", loss_value, epoch, step)
                return 1
            if step % log_every == 0:
                LOG.info(
                    "epoch %d/%d step %d loss=%.4f heat=%.4f box=%.4f lr=%.5f",
                    epoch, epochs, step, loss_value, float(heat_loss), float(reg_loss), optimizer.get_lr(),
                )
    elapsed = time.perf_counter() - start
    params = _save_checkpoint(model, cfg, "latest", quant, epochs)
    out_dir = Path(str(cfg["Global.output_dir"]))
    (out_dir / "config.yml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    LOG.info("saved %s", params)
    print(f"train: epochs={epochs} steps={step} loss={loss_value:.4f} time_s={elapsed:.2f}", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# evaluation


def predict_dataset(model: paddle.nn.Layer, cfg: Config, dataset: CocoSet, images: np.ndarray) -> list[Detections]:
    model.eval()
    size, batch_size = int(cfg["Model.input_size"]), int(cfg["EvalReader.batch_size"])
    out: list[Detections] = []
    with paddle.no_grad():
        for idx in batches(len(images), batch_size, shuffle=False):
            heat_logits, box_map = model(paddle.to_tensor(images[idx]))
            sizes = [(dataset.samples[i].width, dataset.samples[i].height) for i in idx]
            out += decode(
                heat_logits.numpy(),
                box_map.numpy(),
                stride=PicoDetLite.stride,
                input_size=size,
                image_sizes=sizes,
                top_k=int(cfg["Model.top_k"]),
                score_threshold=float(cfg["EvalReader.score_threshold"]),
            )
    return out


def eval_task(cfg: Config, args: Namespace) -> int:
    _set_device(cfg)
    paddle.seed(int(cfg["Global.seed"]))
    val_set = load_split(cfg, "EvalReader")
    weights = cfg["Global.pretrained_model"]
    if not weights:
        LOG.warning("Global.pretrained_model is empty: evaluating an untrained model")
    model, _, _ = _model_for(cfg, weights=str(weights) if weights else None, purpose="eval")
    start = time.perf_counter()
    dets = predict_dataset(model, cfg, val_set, load_images(cfg, val_set))
    m_ap, m_ap50 = coco_map(val_set.ann_file, coco_detections(val_set, dets))
    LOG.info("evaluated %d images in %.2fs", len(dets), time.perf_counter() - start)
    print(f"eval: mAP={m_ap:.4f} mAP50={m_ap50:.4f}", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# export


def write_infer_cfg(cfg: Config, out_dir: Path, *, quant: str | None) -> Path:
    """The preprocessing/decoding facts the deploy scripts need, next to the exported model."""
    info = {
        "architecture": cfg["architecture"],
        "input_name": "image",
        "input_size": int(cfg["Model.input_size"]),
        "stride": PicoDetLite.stride,
        "num_classes": int(cfg["Model.num_classes"]),
        "labels": list(cfg["Model.labels"]),
        "mean": [float(v) for v in cfg["Preprocess.mean"]],
        "std": [float(v) for v in cfg["Preprocess.std"]],
        "top_k": int(cfg["Model.top_k"]),
        "draw_threshold": float(cfg["Model.draw_threshold"]),
        "print_top_k": int(cfg["Model.print_top_k"]),
        "score_threshold": float(cfg["EvalReader.score_threshold"]),
        "quant": quant or "none",
    }
    path = out_dir / INFER_CFG
    path.write_text(yaml.safe_dump(info, sort_keys=False))
    return path


def export_task(cfg: Config, args: Namespace) -> int:
    paddle.device.set_device("cpu")  # export is device independent; avoids needing a GPU build for it
    weights = cfg["Global.pretrained_model"]
    if not weights:
        raise ConfigError(cfg.path, "Global.pretrained_model is empty: nothing to export (give the trained weights)")
    model, quant, quantizer = _model_for(cfg, weights=str(weights), purpose="export")
    model.eval()
    out_dir = Path(str(cfg["Global.save_inference_dir"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    size = int(cfg["Model.input_size"])
    spec = [paddle.static.InputSpec([None, 3, size, size], "float32", "image")]
    prefix = str(out_dir / "inference")
    if quantizer is not None:
        quantizer.save(model, prefix, spec)
        from models.common.inference import quant_op_count

        program = next(p for p in (Path(prefix + ".pdmodel"), Path(prefix + ".json")) if p.is_file())
        ops = quant_op_count(program)
        if ops == 0:  # the metadata says PACT; the program itself must hold the quantize ops
            raise ConfigError(cfg.path, f"PACT export wrote {program} without any quantize/dequantize op")
        LOG.info("PACT export: %d quantize/dequantize ops in %s", ops, program.name)
    else:
        # The legacy program format (.pdmodel), not PIR (.json): paddle.static.quantization's post-training
        # quantization (quant_post_static.py) can only read that format; Paddle Inference and paddle2onnx read both.
        with paddle.pir_utils.OldIrGuard():
            static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
            paddle.jit.save(static, prefix)
    write_infer_cfg(cfg, out_dir, quant=quant)
    files = sorted(p.name for p in out_dir.iterdir() if p.is_file())
    LOG.info("exported %s model to %s: %s", quant or "float", out_dir, ", ".join(files))
    print(f"export: dir={out_dir} quant={quant or 'none'}", flush=True)
    return 0
