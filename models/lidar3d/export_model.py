"""Write a Paddle Inference model (inference.json/.pdiparams), deploy.yml and, for quantized weights, int8_model.npz."""

from __future__ import annotations

from pathlib import Path

from models.lidar3d.engine import Settings, load_for_inference, quant_config_for

__all__ = ["MODEL_PREFIX", "export"]

MODEL_PREFIX = "inference"


def export(settings: Settings, weights: Path, save_dir: Path, quant_tree: dict[str, object] | None) -> list[Path]:
    import numpy as np
    import paddle
    import yaml

    from models.lidar3d.pillars import NUM_POINT_FEATURES
    from models.lidar3d.quant import freeze_weights, int8_arrays

    model = load_for_inference(settings, weights, quant_tree)
    quantized = any(name.endswith(".act.scale") for name in model.state_dict())
    grid = settings.grid
    spec = paddle.static.InputSpec([None, NUM_POINT_FEATURES, grid.pillars, grid.max_points], "float32", "pillars")
    save_dir.mkdir(parents=True, exist_ok=True)
    int8 = int8_arrays(model, quant_config_for(weights, quant_tree)) if quantized else None
    if quantized:
        freeze_weights(model)
    paddle.jit.save(model, str(save_dir / MODEL_PREFIX), input_spec=[spec])
    cfg = settings.config
    deploy = {
        "model": str(cfg["model.name"]),
        "classes": list(settings.classes),
        "grid": grid.to_config(),
        "postprocess": {
            "score_threshold": float(cfg["postprocess.score_threshold"]),
            "max_objects": int(cfg["postprocess.max_objects"]),
        },
        "quantized": quantized,
        "weights": str(weights),
        "config": str(cfg.path),
    }
    written = [save_dir / "deploy.yml"]
    (save_dir / "deploy.yml").write_text(yaml.safe_dump(deploy, sort_keys=True))
    if int8 is not None:
        np.savez(save_dir / "int8_model.npz", **int8)  # type: ignore[arg-type]  # numpy stubs: **kwds vs allow_pickle
        written.append(save_dir / "int8_model.npz")
    written += sorted(save_dir.glob(f"{MODEL_PREFIX}.*"))
    return written
