"""Registers the lidar 3D family (architecture `PointPillarsLite`): defaults and train/eval/export tasks."""

from __future__ import annotations

import copy
import logging
from argparse import Namespace
from pathlib import Path
from typing import Any

from models.common.config import Config, ConfigError
from models.common.registry import Family, register
from models.lidar3d.config import DEFAULTS

__all__ = ["ARCHITECTURES", "FAMILY", "RUN_DEFAULTS", "defaults"]

ARCHITECTURES = ("PointPillarsLite",)

# What the Paddle3D-style flags of models/lidar3d/tools/*.py set, as config keys for `-o Global.<key>=value`.
# `--iters`, `--batch_size`, `--seed` and `--log_interval` already have top-level keys in DEFAULTS.
RUN_DEFAULTS: dict[str, Any] = {
    "stage": "float",  # train --stage: float | calibration | qat
    "save_dir": "output",  # train --save_dir: model.pdparams, model.json and log.txt go here
    "model": None,  # train/eval/export --model; eval/export fall back to <save_dir>/model.pdparams
    "quant_config": None,  # --quant_config (calibration and qat stages, quantized weights)
    "do_eval": False,  # train --do_eval: evaluate on the val split after training
    "export_dir": "exported_model",  # export --save_dir
}


def defaults(architecture: str) -> dict[str, Any]:
    """Every key a lidar config may set (models/lidar3d/config.py) plus the `Global` run section of the tools' flags."""
    tree = copy.deepcopy(DEFAULTS)
    tree["architecture"] = architecture
    tree["Global"] = dict(RUN_DEFAULTS)
    return tree


def _optional_path(value: Any) -> Path | None:
    from models.lidar3d.runtime import resolve_path

    return None if value in (None, "", "null", "None") else resolve_path(str(value))


def _quant_tree(cfg: Config) -> dict[str, Any] | None:
    from models.lidar3d.config import load_quant_config

    return load_quant_config(_optional_path(cfg["Global.quant_config"]))


def _weights(cfg: Config, task: str) -> Path:
    """`Global.model`, or the weights a train run with the same `Global.save_dir` wrote."""
    given = _optional_path(cfg["Global.model"])
    if given is not None:
        return given
    fallback = Path(str(cfg["Global.save_dir"])) / "model.pdparams"
    if not fallback.is_file():
        msg = f"{task}: Global.model is empty and {fallback} does not exist (give -o Global.model=...)"
        raise ConfigError(cfg.path, msg)
    return fallback


def _engine() -> Any:
    """The lidar engine, imported only when a task runs, after the numerics pins that must precede paddle."""
    from models.lidar3d.runtime import pin_numerics

    pin_numerics()
    from models.lidar3d import engine

    return engine


def _train(cfg: Config, args: Namespace) -> int:
    engine = _engine()
    stage = str(cfg["Global.stage"])
    if stage not in engine.STAGES:
        raise ConfigError(cfg.path, f"Global.stage must be one of {', '.join(engine.STAGES)}, got {stage!r}")
    settings = engine.Settings.from_config(cfg)
    quant_tree = _quant_tree(cfg)  # a bad quant config fails before anything is written
    save_dir = Path(str(cfg["Global.save_dir"]))
    save_dir.mkdir(parents=True, exist_ok=True)
    # Same as tools/train.py: Paddle3D's TIPC script collects <save_dir>/log.txt after training.
    handler = logging.FileHandler(save_dir / "log.txt", mode="w")
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(message)s", "%H:%M:%S"))
    engine.LOG.addHandler(handler)
    try:
        meta = engine.run_stage(
            settings,
            stage=stage,
            iters=int(cfg["iters"]),
            batch_size=int(cfg["batch_size"]),
            save_dir=save_dir,
            init_weights=_optional_path(cfg["Global.model"]),
            quant_tree=quant_tree,
            seed=int(cfg["seed"]),
            config_path=cfg.path,
        )
        if cfg["Global.do_eval"]:
            model = engine.load_for_inference(settings, save_dir / "model.pdparams", quant_tree)
            for line in engine.evaluate(model, settings).lines():
                engine.LOG.info("%s", line)
        engine.LOG.info("stage %s done: %s", stage, {k: meta[k] for k in ("seconds", "iters") if k in meta})
    finally:
        engine.LOG.removeHandler(handler)
        handler.close()
    return 0


def _eval(cfg: Config, args: Namespace) -> int:
    engine = _engine()
    settings = engine.Settings.from_config(cfg)
    model = engine.load_for_inference(settings, _weights(cfg, "eval"), _quant_tree(cfg))
    for line in engine.evaluate(model, settings).lines():
        print(line, flush=True)
    return 0


def _export(cfg: Config, args: Namespace) -> int:
    engine = _engine()
    from models.lidar3d.export_model import export

    settings = engine.Settings.from_config(cfg)
    written = export(settings, _weights(cfg, "export"), Path(str(cfg["Global.export_dir"])), _quant_tree(cfg))
    for path in written:
        engine.LOG.info("wrote %s", path)
    return 0


FAMILY = register(
    Family(
        name="lidar3d",
        architectures=ARCHITECTURES,
        defaults=defaults,
        tasks={"train": _train, "eval": _eval, "export": _export},
    )
)
