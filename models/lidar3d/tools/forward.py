"""Run lidar detector weights with paddle's own forward pass on a folder of frames; `result:` lines like infer.py.

Takes the export script's flags (--config, --model, --quant_config, --save_dir is ignored) plus --data_dir, so a
check step runs it on exactly the weights the chain exported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import config_parser, existing, run_main  # noqa: E402

from models.common.errors import UserError  # noqa: E402
from models.lidar3d.config import load_lidar_config, load_quant_config  # noqa: E402
from models.lidar3d.engine import Settings, load_for_inference  # noqa: E402
from models.lidar3d.inference import batches, format_result, input_files  # noqa: E402
from models.lidar3d.pillars import decode  # noqa: E402
from models.lidar3d.runtime import resolve_path  # noqa: E402

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = config_parser(__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=None, help="weights (model.pdparams)")
    parser.add_argument("--save_dir", default=None, help="accepted (the export script's flag); unused")
    parser.add_argument("--data_dir", required=True, help="folder of .bin frames, as given to deploy/infer.py")
    args = parser.parse_args(argv)

    def body() -> int:
        import paddle

        config_path = resolve_path(args.config)
        settings = Settings.from_config(load_lidar_config(config_path, args.opt))
        weights = existing(args.model)
        if weights is None:
            raise UserError(config_path, "--model (weights) is required")
        model = load_for_inference(settings, weights, load_quant_config(existing(args.quant_config)))
        model.eval()
        cfg = settings.config
        quantized = any(name.endswith(".act.scale") for name in model.state_dict())
        sys.stdout.write(f"engine: precision=fp32 requested=fp32 quant_ops=0 backend=dygraph quantized={quantized}\n")
        for chunk, pillars in batches(input_files(None, str(resolve_path(args.data_dir))), settings.grid, 1):
            with paddle.no_grad():
                heads = model(paddle.to_tensor(pillars)).numpy()
            for path, head in zip(chunk, heads, strict=True):
                boxes = decode(head, settings.grid, score_threshold=float(cfg["postprocess.score_threshold"]),
                               max_objects=int(cfg["postprocess.max_objects"]))
                sys.stdout.write(format_result(path.stem, boxes) + "\n")
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
