"""Training stages (float, calibration, qat), checkpoints and BEV/3D evaluation for the lidar detector."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import paddle
from paddle import nn

from models.common.config import Config
from models.common.errors import UserError
from models.lidar3d.data import Frame, KittiLite
from models.lidar3d.metrics import Detection, evaluate_frames
from models.lidar3d.model import PillarDetector, build_model, detection_loss
from models.lidar3d.pillars import Grid, decode, flip_y, make_targets, pillarize
from models.lidar3d.quant import QuantConfig, calibrate, has_quant_state, quantize_model
from models.lidar3d.runtime import resolve_path

__all__ = [
    "STAGES",
    "EvalResult",
    "Settings",
    "evaluate",
    "load_for_inference",
    "predict_heads",
    "run_stage",
    "score_heads",
]

STAGES = ("float", "calibration", "qat")
LOG = logging.getLogger("models.lidar3d")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The parts of a config every tool needs, read once."""

    config: Config
    classes: tuple[str, ...]
    grid: Grid

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        return cls(
            config=config,
            classes=tuple(str(c) for c in config["model.classes"]),
            grid=Grid.from_config(config["model.grid"]),
        )

    def dataset(self, which: str) -> KittiLite:
        root = resolve_path(str(self.config[f"{which}.dataset_root"]))
        return KittiLite(root, str(self.config[f"{which}.split"]), self.classes)

    def build(self) -> PillarDetector:
        return build_model(self.config["model"], len(self.classes))


def _batches(
    frames: Sequence[Frame], settings: Settings, *, batch_size: int, seed: int, augment: bool
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Endless shuffled batches of (pillars, heatmap, regression, mask); the order depends only on `seed`."""
    rng = np.random.RandomState(seed)
    sigmas = tuple(float(s) for s in settings.config["model.heatmap_sigma"])
    num_classes = len(settings.classes)
    order: list[int] = []
    while True:
        items = []
        for _ in range(batch_size):
            if not order:
                order = [int(i) for i in rng.permutation(len(frames))]
            frame = frames[order.pop()]
            points, boxes = frame.points, frame.boxes
            if augment and rng.rand() < 0.5:
                points, boxes = flip_y(points, boxes)
            heat, reg, mask = make_targets(boxes, frame.labels, settings.grid, num_classes, sigmas)
            items.append((pillarize(points, settings.grid), heat, reg, mask))
        yield tuple(np.stack(parts) for parts in zip(*items, strict=True))  # type: ignore[misc]


def _read_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(path, "weights file not found")
    try:
        state: dict[str, Any] = paddle.load(str(path))
        return state
    except Exception as exc:  # paddle raises assorted types for a truncated or foreign file
        raise UserError(path, f"cannot load weights: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}") from None


def _meta_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def _load_into(model: nn.Layer, state: dict[str, Any], path: Path, *, allow_missing: tuple[str, ...] = ()) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(allow_missing)]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise UserError(path, f"weights do not fit the config's model ({detail})")
    for key, value in state.items():
        if tuple(own[key].shape) != tuple(value.shape):
            raise UserError(path, f"weights do not fit the config's model ({key}: {value.shape} vs {own[key].shape})")
    model.set_state_dict(state)


def quant_config_for(weights: Path, quant_tree: dict[str, Any] | None) -> QuantConfig:
    """The quant settings a checkpoint was made with (its .json), else the given quant config, else defaults."""
    meta_path = _meta_path(weights)
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("quant"):
            return QuantConfig.from_config(meta["quant"])
    return QuantConfig.from_config(quant_tree)


def load_for_inference(settings: Settings, weights: Path, quant_tree: dict[str, Any] | None) -> PillarDetector:
    """A model in eval mode with `weights` loaded; quantized when the checkpoint carries activation scales."""
    state = _read_state(weights)
    model = settings.build()
    if has_quant_state(state):
        quantize_model(model, quant_config_for(weights, quant_tree))
    _load_into(model, state, weights)
    model.eval()
    return model


def predict_heads(model: nn.Layer, pillars: np.ndarray, batch_size: int = 8) -> np.ndarray:
    outs = []
    with paddle.no_grad():
        for start in range(0, len(pillars), batch_size):
            outs.append(model(paddle.to_tensor(pillars[start : start + batch_size])).numpy())
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EvalResult:
    bev_ap: float
    ap3d: float
    per_class: tuple[tuple[str, float, float, int], ...]  # name, bev ap, 3d ap, ground-truth count
    frames: int

    def lines(self) -> list[str]:
        out = [f"eval: bev_ap={self.bev_ap:.4f} ap3d={self.ap3d:.4f} frames={self.frames}"]
        out += [f"eval_class: name={n} bev_ap={b:.4f} ap3d={a:.4f} gt={g}" for n, b, a, g in self.per_class]
        return out


def evaluate(model: nn.Layer, settings: Settings, frames: Sequence[Frame] | None = None) -> EvalResult:
    """BEV and 3D AP (R40) over the val split, averaged over the classes that have ground truth."""
    frames = frames if frames is not None else settings.dataset("val_dataset").frames
    pillars = np.stack([pillarize(f.points, settings.grid) for f in frames])
    return score_heads(predict_heads(model, pillars), frames, settings)


def score_heads(heads: np.ndarray, frames: Sequence[Frame], settings: Settings) -> EvalResult:
    """AP of head outputs from any backend (Paddle, the int8 engine, onnxruntime) against the frames' labels."""
    cfg = settings.config
    detections = [
        [
            Detection(c, s, b)
            for c, s, b in decode(
                head,
                settings.grid,
                score_threshold=float(cfg["eval.score_threshold"]),
                max_objects=int(cfg["postprocess.max_objects"]),
            )
        ]
        for head in heads
    ]
    thresholds = [float(t) for t in cfg["eval.iou_thresholds"]]
    ap = evaluate_frames(
        detections,
        [f.boxes for f in frames],
        [f.labels for f in frames],
        num_classes=len(settings.classes),
        thresholds=thresholds,
    )
    counts = [int(sum(int((f.labels == c).sum()) for f in frames)) for c in range(len(settings.classes))]
    per_class = tuple((name, ap["bev"][c], ap["3d"][c], counts[c]) for c, name in enumerate(settings.classes))
    present = [c for c in range(len(settings.classes)) if counts[c] > 0]
    bev = float(np.mean([ap["bev"][c] for c in present])) if present else 0.0
    ap3d = float(np.mean([ap["3d"][c] for c in present])) if present else 0.0
    return EvalResult(bev_ap=bev, ap3d=ap3d, per_class=per_class, frames=len(frames))


def _set_bn_eval(model: nn.Layer) -> None:
    for layer in model.sublayers():
        if isinstance(layer, nn.BatchNorm2D):
            layer.eval()


def _train_loop(
    model: nn.Layer,
    settings: Settings,
    *,
    iters: int,
    batch_size: int,
    seed: int,
    learning_rate: float,
    freeze_bn: bool,
) -> float:
    cfg = settings.config
    frames = settings.dataset("train_dataset").frames
    batches = _batches(frames, settings, batch_size=batch_size, seed=seed, augment=bool(cfg["train_dataset.flip_y"]))
    schedule = paddle.optimizer.lr.CosineAnnealingDecay(learning_rate, T_max=max(iters, 1))
    optimizer = paddle.optimizer.AdamW(
        learning_rate=schedule,
        parameters=model.parameters(),
        weight_decay=float(cfg["optimizer.weight_decay"]),
        grad_clip=nn.ClipGradByGlobalNorm(float(cfg["optimizer.grad_clip"])),
    )
    reg_weight = float(cfg["loss.reg_weight"])
    interval = max(int(cfg["log_interval"]), 1)
    model.train()
    if freeze_bn:
        _set_bn_eval(model)
    loss_value = math.nan
    started = time.perf_counter()
    for it in range(1, iters + 1):
        pillars, heat, reg, mask = next(batches)
        head = model(paddle.to_tensor(pillars))
        loss, heat_loss, reg_loss = detection_loss(
            head, paddle.to_tensor(heat), paddle.to_tensor(reg), paddle.to_tensor(mask), reg_weight=reg_weight
        )
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        schedule.step()
        loss_value = float(loss)
        if not math.isfinite(loss_value):
            msg = f"loss became {loss_value} at iter {it}"
            raise FloatingPointError(msg)
        if it % interval == 0 or it == iters:
            LOG.info(
                "iter %d/%d loss=%.4f heat=%.4f reg=%.4f lr=%.6f %.2fs",
                it, iters, loss_value, float(heat_loss), float(reg_loss), schedule.get_lr(),
                time.perf_counter() - started,
            )
    model.eval()
    return loss_value


def _calibration_batches(settings: Settings, count: int, batch_size: int) -> Iterator[np.ndarray]:
    """The first `count` batches of the train split in file order, without augmentation."""
    frames = settings.dataset("train_dataset").frames
    for start in range(0, min(count * batch_size, len(frames)), batch_size):
        yield np.stack([pillarize(f.points, settings.grid) for f in frames[start : start + batch_size]])


def run_stage(
    settings: Settings,
    *,
    stage: str,
    iters: int,
    batch_size: int,
    save_dir: Path,
    init_weights: Path | None,
    quant_tree: dict[str, Any] | None,
    seed: int,
    config_path: Path,
) -> dict[str, Any]:
    """Run one stage and write `<save_dir>/model.pdparams` plus `model.json`; returns the meta written."""
    if stage not in STAGES:
        msg = f"unknown stage {stage!r} (expected one of {', '.join(STAGES)})"
        raise ValueError(msg)
    paddle.seed(seed)
    np.random.seed(seed)
    model = settings.build()
    quant_cfg = QuantConfig.from_config(quant_tree)
    meta: dict[str, Any] = {"stage": stage, "config": str(config_path), "seed": seed, "iters": iters,
                            "batch_size": batch_size, "quant": None, "init": str(init_weights) if init_weights else None}
    started = time.perf_counter()
    if stage == "float":
        if init_weights is not None:
            state = _read_state(init_weights)
            if has_quant_state(state):
                raise UserError(init_weights, "the float stage cannot start from quantized weights")
            _load_into(model, state, init_weights)
        meta["final_loss"] = _train_loop(
            model, settings, iters=iters, batch_size=batch_size, seed=seed,
            learning_rate=float(settings.config["optimizer.learning_rate"]), freeze_bn=False,
        )
    else:
        if quant_tree is None:
            raise UserError(config_path, f"--stage {stage} needs --quant_config")
        if init_weights is None:
            raise UserError(config_path, f"--stage {stage} needs --model (the previous stage's model.pdparams)")
        state = _read_state(init_weights)
        quantize_model(model, quant_cfg)
        meta["quant"] = quant_cfg.to_config()
        if stage == "calibration":
            if has_quant_state(state):
                raise UserError(init_weights, "calibration starts from float weights; these are already quantized")
            _load_into(model, state, init_weights, allow_missing=(".act.scale",))
            count = max(1, min(quant_cfg.calibration_batches, iters))
            scales = calibrate(model, _calibration_batches(settings, count, batch_size), quant_cfg)
            meta["calibration_batches"] = count
            meta["scales"] = {k: round(v, 6) for k, v in scales.items()}
            LOG.info("calibrated %d activation scales on %d batches (%s)", len(scales), count,
                     quant_cfg.calibration_method)
        else:
            if not has_quant_state(state):
                raise UserError(init_weights, "qat starts from calibrated weights (run --stage calibration first)")
            _load_into(model, state, init_weights)
            meta["final_loss"] = _train_loop(
                model, settings, iters=iters, batch_size=batch_size, seed=seed,
                learning_rate=quant_cfg.qat_learning_rate, freeze_bn=quant_cfg.freeze_bn,
            )
    meta["seconds"] = round(time.perf_counter() - started, 3)
    save_dir.mkdir(parents=True, exist_ok=True)
    weights = save_dir / "model.pdparams"
    paddle.save(model.state_dict(), str(weights))
    _meta_path(weights).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    LOG.info("saved %s (stage %s, %.1fs)", weights, stage, meta["seconds"])
    return meta
