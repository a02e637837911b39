"""Time the lidar3d staged chain (float -> calibration -> qat -> export -> int8) and compare each stage's BEV/3D AP."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIG = REPO / "models/lidar3d/configs/pointpillars_lite.yml"
QUANT = REPO / "models/lidar3d/configs/quant/pointpillars_lite_int8.yml"
TRAIN = REPO / "models/lidar3d/tools/train.py"
EXPORT = REPO / "models/lidar3d/tools/export.py"

__all__ = ["main"]


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
        msg = f"{Path(argv[0]).name} exited {proc.returncode}"
        raise SystemExit(msg)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=120, help="float training iterations")
    parser.add_argument("--qat_iters", type=int, default=40)
    parser.add_argument("--calib_batches", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from models.lidar3d.runtime import pin_numerics

        pin_numerics()
        import numpy as np

        from models.lidar3d import engine
        from models.lidar3d.config import load_lidar_config
        from models.lidar3d.int8_engine import Int8Engine
        from models.lidar3d.pillars import pillarize

    out = args.out or Path(tempfile.mkdtemp(prefix="lidar3d_bench_"))
    c, q = str(CONFIG), str(QUANT)
    seconds = {
        "float": _timed([str(TRAIN), "--config", c, "--stage=float", f"--iters={args.iters}",
                         f"--save_dir={out / 'float'}"]),
        "calibration": _timed([str(TRAIN), "--config", c, "--stage=calibration", "--quant_config", q,
                               f"--iters={args.calib_batches}", f"--save_dir={out / 'calibration'}",
                               f"--model={out / 'float/model.pdparams'}"]),
        "qat": _timed([str(TRAIN), "--config", c, "--stage=qat", "--quant_config", q, f"--iters={args.qat_iters}",
                       f"--save_dir={out / 'qat'}", f"--model={out / 'calibration/model.pdparams'}"]),
        "export": _timed([str(EXPORT), "--config", c, f"--model={out / 'qat/model.pdparams'}",
                          f"--save_dir={out / 'qat_infer'}"]),
    }
    settings = engine.Settings.from_config(load_lidar_config(CONFIG))
    frames = settings.dataset("val_dataset").frames
    pillars = np.stack([pillarize(f.points, settings.grid) for f in frames])
    rows: dict[str, dict[str, float]] = {}
    for stage in ("float", "calibration", "qat"):
        model = engine.load_for_inference(settings, out / stage / "model.pdparams", None)
        started = time.perf_counter()
        heads = engine.predict_heads(model, pillars)
        per_frame = (time.perf_counter() - started) / len(frames)
        result = engine.score_heads(heads, frames, settings)
        rows[stage] = {"bev_ap": result.bev_ap, "ap3d": result.ap3d, "ms_per_frame": 1000 * per_frame,
                       "stage_seconds": seconds[stage]}
    int8 = Int8Engine(out / "qat_infer/int8_model.npz")
    started = time.perf_counter()
    heads = int8.run(pillars)
    per_frame = (time.perf_counter() - started) / len(frames)
    result = engine.score_heads(heads, frames, settings)
    rows["int8"] = {"bev_ap": result.bev_ap, "ap3d": result.ap3d, "ms_per_frame": 1000 * per_frame,
                    "stage_seconds": seconds["export"]}

    sys.stdout.write(f"lidar3d stages: float {args.iters} iters, calibration {args.calib_batches} batches, "
                     f"qat {args.qat_iters} iters, {len(frames)} val frames\n")
    sys.stdout.write(f"{'stage':<12} {'wall s':>8} {'BEV AP':>8} {'3D AP':>8} {'ms/frame':>9}\n")
    for stage, row in rows.items():
        label = "int8*" if stage == "int8" else stage
        sys.stdout.write(f"{label:<12} {row['stage_seconds']:>8.1f} {row['bev_ap']:>8.4f} {row['ap3d']:>8.4f} "
                         f"{row['ms_per_frame']:>9.1f}\n")
    sys.stdout.write("* int8 wall s is the export step; ms/frame is the numpy integer engine (dygraph for the rest)\n")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                        indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
