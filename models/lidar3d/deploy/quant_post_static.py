"""Post-training quantization of an exported float model (TIPC kl_quant step): calibrate activation scales on the
lite train split and write a quantized export (inference.json/.pdiparams, deploy.yml, int8_model.npz) to --save_dir.

The exported folder's deploy.yml names the config and the float weights it came from; calibration runs on those
weights in dygraph, as the calibration stage of the staged chain does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infer import _bool  # noqa: E402,F401  (sets up sys.path and numerics)

from models.common.errors import DataError, UserError  # noqa: E402
from models.lidar3d.runtime import resolve_path  # noqa: E402

__all__ = ["main"]

DEFAULT_QUANT = "models/lidar3d/configs/quant/pointpillars_lite_ptq.yml"


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model_dir", required=True, help="a float export (deploy.yml names its weights)")
    parser.add_argument("--save_dir", required=True)
    parser.add_argument("--quant_config", default=DEFAULT_QUANT)
    parser.add_argument("--algo", default=None, choices=("KL", "kl", "abs_max", "percentile"),
                        help="override quant.calibration.method")
    parser.add_argument("--batch_num", type=int, default=None, help="override quant.calibration.batches")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--use_gpu", type=_bool, default=False, help="accepted; calibration runs on CPU")
    args = parser.parse_args(argv)
    try:
        import paddle
        import yaml

        from models.common.dispatch import setup_logging
        from models.lidar3d.config import load_lidar_config, load_quant_config
        from models.lidar3d.engine import LOG, Settings, _calibration_batches, _load_into, _read_state
        from models.lidar3d.export_model import export
        from models.lidar3d.quant import QuantConfig, calibrate, has_quant_state, quantize_model

        setup_logging()
        folder = resolve_path(args.model_dir)
        deploy_path = folder / "deploy.yml"
        if not deploy_path.is_file():
            raise DataError(deploy_path, "not found (export the float model with tools/export.py first)")
        deploy = yaml.safe_load(deploy_path.read_text()) or {}
        if deploy.get("quantized"):
            raise DataError(deploy_path, "this export is already quantized")
        config_path = resolve_path(str(deploy.get("config", "")))
        weights = resolve_path(str(deploy.get("weights", "")))
        settings = Settings.from_config(load_lidar_config(config_path))
        tree = load_quant_config(resolve_path(args.quant_config)) or {}
        quant = dict(tree.get("quant", {}))
        calib = dict(quant.get("calibration", {}))
        if args.algo:
            calib["method"] = args.algo.lower()
        if args.batch_num:
            calib["batches"] = args.batch_num
        quant["calibration"] = calib
        tree = {"quant": quant}
        cfg = QuantConfig.from_config(tree)
        state = _read_state(weights)
        if has_quant_state(state):
            raise UserError(weights, "post-training quantization starts from float weights")
        paddle.seed(int(settings.config["seed"]))
        model = quantize_model(settings.build(), cfg)
        _load_into(model, state, weights, allow_missing=(".act.scale",))
        scales = calibrate(model, _calibration_batches(settings, cfg.calibration_batches, args.batch_size), cfg)
        save_dir = Path(args.save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        ptq_weights = save_dir / "model.pdparams"
        paddle.save(model.state_dict(), str(ptq_weights))
        meta = {"stage": "ptq", "config": str(config_path), "init": str(weights), "quant": cfg.to_config(),
                "scales": {k: round(v, 6) for k, v in scales.items()}}
        ptq_weights.with_suffix(".json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        LOG.info("calibrated %d scales (%s, %d batches)", len(scales), cfg.calibration_method, cfg.calibration_batches)
        for path in export(settings, ptq_weights, save_dir, tree):
            LOG.info("wrote %s", path)
        return 0
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
