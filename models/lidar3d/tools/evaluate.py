"""Evaluate lidar detector weights on the val split; prints `eval: bev_ap=... ap3d=...` (R40 AP, IoU per class)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import config_parser, existing, run_main  # noqa: E402

from models.common.errors import UserError  # noqa: E402
from models.lidar3d.config import load_lidar_config, load_quant_config  # noqa: E402
from models.lidar3d.engine import Settings, evaluate, load_for_inference  # noqa: E402
from models.lidar3d.runtime import resolve_path  # noqa: E402

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--model", default=None, help="weights (model.pdparams); quantized ones are detected")
    parser.add_argument("--batch_size", type=int, default=None, help="accepted for Paddle3D compatibility")
    parser.add_argument("--num_workers", type=int, default=0)
    args = parser.parse_args(argv)

    def body() -> int:
        config_path = resolve_path(args.config)
        settings = Settings.from_config(load_lidar_config(config_path, args.opt))
        weights = existing(args.model)
        if weights is None:
            raise UserError(config_path, "--model (weights to evaluate) is required")
        model = load_for_inference(settings, weights, load_quant_config(existing(args.quant_config)))
        for line in evaluate(model, settings).lines():
            sys.stdout.write(line + "\n")
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
