"""Convert an exported model with paddle2onnx, run it with onnxruntime, and check it against Paddle Inference."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.common.config import bool_flag  # noqa: E402
from models.common.dispatch import EXIT_USAGE, setup_logging  # noqa: E402
from models.common.errors import DataError, UserError  # noqa: E402
from models.detection.deploy.predictor import (  # noqa: E402
    ExportedModel,
    PaddlePredictor,
    decode_batch,
    image_batches,
    list_images,
    load_exported,
)
from models.detection.postprocess import format_result  # noqa: E402

__all__ = ["build_parser", "convert", "main"]

LOG = logging.getLogger("models")
EXIT_MISMATCH = 1


_bool = bool_flag  # the one shared TIPC True/False flag type


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model_dir", required=True, type=Path, help="float model folder written by export_model.py")
    parser.add_argument("--image_dir", required=True, type=Path, help="an image file or a folder of images")
    parser.add_argument("--save_file", type=Path, default=None, help="ONNX file to write (default: <model_dir>/model.onnx)")
    parser.add_argument("--opset_version", type=int, default=13)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--compare", type=_bool, default=True, help="also run Paddle Inference and compare the outputs")
    parser.add_argument("--atol", type=float, default=1e-4, help="allowed absolute difference of the raw head outputs")
    parser.add_argument("--rtol", type=float, default=1e-4, help="allowed relative difference of the raw head outputs")
    parser.add_argument("--top_k", type=int, default=None, help="detections per result line (default: infer_cfg.yml print_top_k)")
    parser.add_argument("--threshold", type=float, default=0.0, help="also drop printed detections scoring below this")
    return parser


def convert(model: ExportedModel, save_file: Path, opset_version: int) -> Path:
    """paddle2onnx on the exported program. Quantized programs are refused up front: paddle2onnx 2.1.0 aborts the
    whole process (SIGABRT, no Python exception) on both fake-quant and quantize_linear Paddle programs."""
    quant = model.info.get("quant", "none")
    if quant != "none":
        raise DataError(model.model_dir, f"quantized model (quant={quant}): paddle2onnx 2.1.0 cannot convert it; use the float export")
    import paddle2onnx

    save_file.parent.mkdir(parents=True, exist_ok=True)
    paddle2onnx.export(
        str(model.model_file),
        str(model.params_file),
        save_file=str(save_file),
        opset_version=opset_version,
        enable_onnx_checker=True,
    )
    if not save_file.is_file():
        raise DataError(save_file, "paddle2onnx reported no error but wrote no file")
    return save_file


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import onnxruntime as ort

    model = load_exported(args.model_dir)
    images = list_images(args.image_dir)
    save_file = args.save_file or (args.model_dir / "model.onnx")
    start = time.perf_counter()
    convert(model, save_file, args.opset_version)
    LOG.info("paddle2onnx wrote %s in %.2fs", save_file, time.perf_counter() - start)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(save_file), sess_options=options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    reference = PaddlePredictor(model) if args.compare else None
    top_k = int(model.info.get("print_top_k", 3)) if args.top_k is None else args.top_k
    worst = {"heat": 0.0, "box": 0.0}
    ok = True
    mismatched: list[str] = []
    for paths, batch, sizes in image_batches(images, model, args.batch_size):
        heat, box = session.run(None, {input_name: batch})
        dets = decode_batch(model, heat, box, sizes)
        lines = [format_result(p.name, d, top_k=top_k, threshold=args.threshold) for p, d in zip(paths, dets, strict=True)]
        for line in lines:
            print(line, flush=True)
        if reference is None:
            continue
        ref_heat, ref_box = reference(batch)
        for name, got, want in (("heat", heat, ref_heat), ("box", box, ref_box)):
            worst[name] = max(worst[name], float(np.max(np.abs(got - want))))
            if not np.allclose(got, want, atol=args.atol, rtol=args.rtol):
                ok = False
        ref_lines = [format_result(p.name, d, top_k=top_k, threshold=args.threshold) for p, d in zip(paths, decode_batch(model, ref_heat, ref_box, sizes), strict=True)]
        mismatched += [p.name for p, a, b in zip(paths, lines, ref_lines, strict=True) if a != b]
    if reference is not None:
        # Printed values are rounded, so tiny differences can still flip a last digit; the raw-output check decides.
        print(
            f"compare: images={len(images)} max_abs_diff_heat={worst['heat']:.3e} max_abs_diff_box={worst['box']:.3e} "
            f"atol={args.atol:g} rtol={args.rtol:g} lines_differ={len(mismatched)} ok={ok}",
            flush=True,
        )
        if not ok:
            LOG.error("onnxruntime and Paddle Inference disagree beyond the tolerance (%s)", ", ".join(mismatched) or "raw outputs")
            return EXIT_MISMATCH
    return 0


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
