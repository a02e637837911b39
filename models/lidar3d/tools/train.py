"""Train one stage of the lidar detector chain: float, calibration (PTQ scales) or qat (Paddle3D-style flags)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import config_parser, existing, run_main, str_bool  # noqa: E402

from models.lidar3d.config import load_lidar_config, load_quant_config  # noqa: E402
from models.lidar3d.engine import LOG, STAGES, Settings, run_stage  # noqa: E402
from models.lidar3d.runtime import resolve_path  # noqa: E402

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--stage", choices=STAGES, default="float")
    parser.add_argument("--iters", type=int, default=None, help="training iterations (calibration: batches cap)")
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--save_dir", default="output", help="where model.pdparams, model.json and log.txt go")
    parser.add_argument("--model", default=None, help="weights to start from (the previous stage's model.pdparams)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log_interval", type=int, default=None)
    # Accepted for Paddle3D command compatibility; a CPU run has no workers, AMP or intermediate checkpoints.
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--save_interval", type=int, default=0)
    parser.add_argument("--amp", nargs="?", const="True", type=str_bool, default=False)
    parser.add_argument("--amp_level", default=None)
    parser.add_argument("--do_eval", nargs="?", const="True", type=str_bool, default=False)
    args = parser.parse_args(argv)

    def body() -> int:
        config_path = resolve_path(args.config)
        overrides = list(args.opt)
        if args.log_interval is not None:
            overrides.append(f"log_interval={args.log_interval}")
        config = load_lidar_config(config_path, overrides)
        settings = Settings.from_config(config)
        quant_path = existing(args.quant_config)
        save_dir = Path(args.save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        # Paddle3D's TIPC script collects <save_dir>/log.txt after training; keep that file.
        import logging

        handler = logging.FileHandler(save_dir / "log.txt", mode="w")
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(message)s", "%H:%M:%S"))
        LOG.addHandler(handler)
        if args.amp:
            LOG.info("--amp ignored: this model trains in fp32 on CPU")
        meta = run_stage(
            settings,
            stage=args.stage,
            iters=int(args.iters if args.iters is not None else config["iters"]),
            batch_size=int(args.batch_size if args.batch_size is not None else config["batch_size"]),
            save_dir=save_dir,
            init_weights=existing(args.model),
            quant_tree=load_quant_config(quant_path),
            seed=int(args.seed if args.seed is not None else config["seed"]),
            config_path=config_path,
        )
        if args.do_eval:
            from models.lidar3d.engine import evaluate, load_for_inference

            model = load_for_inference(settings, save_dir / "model.pdparams", load_quant_config(quant_path))
            for line in evaluate(model, settings).lines():
                LOG.info("%s", line)
        LOG.info("stage %s done: %s", args.stage, {k: meta[k] for k in ("seconds", "iters") if k in meta})
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
