"""Paddle Inference for the exported lidar detector; prints one `result: frame=... boxes=[...]` line per frame.

TIPC flags (`--use_gpu=False` style, True/False strings). `--precision int8` on CPU runs the integer engine on
`int8_model.npz` (written when a quantized model is exported); a float export runs in fp32 with a note.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from models.lidar3d.runtime import pin_numerics, resolve_path  # noqa: E402

pin_numerics()

from models.common.config import bool_flag  # noqa: E402
from models.common.errors import UserError  # noqa: E402
from models.common.inference import effective_precision, engine_line, quant_op_count  # noqa: E402
from models.lidar3d.data import ensure_lite_data  # noqa: E402
from models.lidar3d.inference import (  # noqa: E402
    Timer,
    batches,
    format_result,
    input_files,
    load_deploy,
    make_predictor,
    model_files,
    run_predictor,
)

__all__ = ["build_parser", "main"]

DEFAULT_DATA = "lite_data/kitti_lite/demo"


_bool = bool_flag  # the one shared TIPC True/False flag type


def build_parser(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model_dir", default=None, help="folder with inference.json/.pdiparams and deploy.yml")
    parser.add_argument("--model_file", default=None)
    parser.add_argument("--params_file", default=None)
    parser.add_argument("--lidar_file", default=None, help="one .bin point cloud")
    parser.add_argument("--data_dir", default=None, help=f"folder of .bin point clouds (default {DEFAULT_DATA})")
    parser.add_argument("--use_gpu", type=_bool, default=False)
    parser.add_argument("--use_mkldnn", "--enable_mkldnn", type=_bool, default=False)
    parser.add_argument("--cpu_threads", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    parser.add_argument("--use_trt", type=_bool, default=False)
    parser.add_argument("--benchmark", "--enable_benchmark", type=_bool, default=False)
    parser.add_argument("--save_log_path", default=None, help="accepted for TIPC compatibility (output is stdout)")
    return parser


def _inputs(args: argparse.Namespace) -> list[Path]:
    if not args.lidar_file and not args.data_dir:
        default = resolve_path(DEFAULT_DATA)
        ensure_lite_data(default.parent)
        return input_files(None, str(default))
    return input_files(args.lidar_file, args.data_dir and str(resolve_path(args.data_dir)))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(__doc__.splitlines()[0] if __doc__ else None).parse_args(argv)
    try:
        model_dir = resolve_path(args.model_dir) if args.model_dir else None
        program, params, folder = model_files(model_dir, args.model_file, args.params_file)
        info = load_deploy(folder)
        files = _inputs(args)
        precision = args.precision
        if args.use_gpu:
            import paddle

            if not paddle.device.is_compiled_with_cuda():
                raise UserError(program, "--use_gpu=True, but this Paddle build has no CUDA")
        engine = None
        if precision == "int8" and not args.use_gpu:
            npz = folder / "int8_model.npz"
            if npz.is_file():
                from models.lidar3d.int8_engine import Int8Engine

                engine = Int8Engine(npz)
            else:
                sys.stdout.write("note: not a quantized export (no int8_model.npz); precision int8 runs in fp32\n")
        elif precision == "fp16" and not args.use_gpu:
            sys.stdout.write("note: no fp16 kernels on CPU; running fp32\n")
        predictor = None
        if engine is None:
            predictor = make_predictor(program, params, use_gpu=args.use_gpu, use_mkldnn=args.use_mkldnn,
                                       cpu_threads=args.cpu_threads, use_trt=args.use_trt, precision=precision)
        backend = "int8-engine" if engine is not None else f"paddle-inference {'gpu' if args.use_gpu else 'cpu'}"
        sys.stdout.write(f"backend: {backend} precision={precision} quantized_model={info.quantized}\n")
        quant_ops = quant_op_count(program)
        if engine is not None:
            ran = "int8"  # the integer engine computes in int8 whatever the program holds
        else:
            ran = effective_precision(precision, use_gpu=args.use_gpu, use_mkldnn=args.use_mkldnn,
                                      use_trt=args.use_trt, quant_ops=quant_ops)
        sys.stdout.write(engine_line(requested=precision, effective=ran, quant_ops=quant_ops, backend=backend) + "\n")
        timer = Timer()
        frames = 0
        timer.start()
        for chunk, pillars in batches(files, info.grid, args.batch_size):
            timer.stop("preprocess")
            timer.start()
            heads = engine.run(pillars) if engine is not None else run_predictor(predictor, pillars)
            timer.stop("inference")
            timer.start()
            for path, head in zip(chunk, heads, strict=True):
                boxes = info.decode(head)
                sys.stdout.write(format_result(path.stem, boxes) + "\n")
                frames += 1
            timer.stop("postprocess")
            timer.start()
        if args.benchmark:
            sys.stdout.write(timer.line(frames) + "\n")
        return 0
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
