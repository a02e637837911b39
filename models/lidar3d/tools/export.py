"""Export lidar detector weights to a Paddle Inference model (inference.json/.pdiparams) plus deploy.yml.

Quantized weights (calibration or qat stage) also get int8_model.npz: integer weights and scales for
deploy/predict.py --stage int_infer.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import config_parser, existing, run_main  # noqa: E402

from models.common.errors import UserError  # noqa: E402
from models.lidar3d.config import load_lidar_config, load_quant_config  # noqa: E402
from models.lidar3d.engine import LOG, Settings  # noqa: E402
from models.lidar3d.export_model import export  # noqa: E402
from models.lidar3d.runtime import resolve_path  # noqa: E402

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = config_parser(__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=None, help="weights (model.pdparams); quantized ones are detected")
    parser.add_argument("--save_dir", default="exported_model", help="output folder")
    args = parser.parse_args(argv)

    def body() -> int:
        config_path = resolve_path(args.config)
        settings = Settings.from_config(load_lidar_config(config_path, args.opt))
        weights = existing(args.model)
        if weights is None:
            raise UserError(config_path, "--model (weights to export) is required")
        written = export(settings, weights, Path(args.save_dir), load_quant_config(existing(args.quant_config)))
        for path in written:
            LOG.info("wrote %s", path)
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
