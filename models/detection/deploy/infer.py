"""Paddle Inference on exported PicoDetLite models, taking the TIPC inference flags; one `result:` line per image."""

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
from models.common.inference import effective_precision, engine_line, quant_op_count  # noqa: E402
from models.detection.data import load_coco  # noqa: E402
from models.detection.deploy.predictor import (  # noqa: E402
    PaddlePredictor,
    decode_batch,
    image_batches,
    list_images,
    load_exported,
)
from models.detection.metrics import coco_detections, coco_map  # noqa: E402
from models.detection.postprocess import Detections, format_result  # noqa: E402

__all__ = ["build_parser", "main"]

LOG = logging.getLogger("models")


_bool = bool_flag  # the one shared TIPC True/False flag type


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model_dir", required=True, type=Path, help="folder written by export_model.py or quant_post_static.py")
    parser.add_argument("--image_dir", required=True, type=Path, help="an image file or a folder of images")
    parser.add_argument("--use_gpu", type=_bool, default=False)
    parser.add_argument("--use_mkldnn", type=_bool, default=False)
    parser.add_argument("--cpu_threads", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
    parser.add_argument("--use_tensorrt", type=_bool, default=False)
    parser.add_argument("--benchmark", type=_bool, default=False, help="also print per-stage times")
    parser.add_argument("--save_log_path", default=None, help="also write the result lines to this file ('null' = no)")
    parser.add_argument("--top_k", type=int, default=None, help="detections per result line (default: infer_cfg.yml print_top_k)")
    parser.add_argument("--threshold", type=float, default=0.0, help="also drop printed detections scoring below this")
    parser.add_argument(
        "--ann_file",
        type=Path,
        default=None,
        help="COCO annotations of --image_dir: also print `eval: mAP=... mAP50=...` for this inference model",
    )
    parser.add_argument("--quiet", type=_bool, default=False, help="do not print the per-image result lines")
    return parser


def _evaluate(ann_file: Path, image_dir: Path, dets: dict[str, Detections]) -> tuple[float, float]:
    """COCO mAP of the inference model's detections (all scores, not only those above the print threshold)."""
    dataset = load_coco(ann_file, image_dir if image_dir.is_dir() else image_dir.parent)
    missing = [s.path.name for s in dataset.samples if s.path.name not in dets]
    if missing:
        raise DataError(ann_file, f"{len(missing)} annotated images were not inferred, e.g. {missing[0]}")
    return coco_map(ann_file, coco_detections(dataset, [dets[s.path.name] for s in dataset.samples]))


def run(args: argparse.Namespace) -> int:
    model = load_exported(args.model_dir)
    images = list_images(args.image_dir)
    predictor = PaddlePredictor(
        model,
        use_gpu=args.use_gpu,
        use_mkldnn=args.use_mkldnn,
        cpu_threads=args.cpu_threads,
        use_tensorrt=args.use_tensorrt,
        precision=args.precision,
        batch_size=args.batch_size,
    )
    quant_ops = quant_op_count(model.model_file)
    ran = effective_precision(args.precision, use_gpu=args.use_gpu, use_mkldnn=args.use_mkldnn,
                              use_trt=args.use_tensorrt, quant_ops=quant_ops)
    print(engine_line(requested=args.precision, effective=ran, quant_ops=quant_ops,
                      backend=f"paddle-inference {'gpu' if args.use_gpu else 'cpu'}"), flush=True)
    top_k = int(model.info.get("print_top_k", 3)) if args.top_k is None else args.top_k
    LOG.info(
        "model=%s (quant=%s) images=%d gpu=%s mkldnn=%s threads=%d batch=%d precision=%s trt=%s",
        model.model_file, model.info.get("quant", "none"), len(images), args.use_gpu, args.use_mkldnn,
        args.cpu_threads, args.batch_size, args.precision, args.use_tensorrt,
    )
    times = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
    lines: list[str] = []
    all_dets: dict[str, Detections] = {}
    t0 = time.perf_counter()
    for paths, batch, sizes in image_batches(images, model, args.batch_size):
        t1 = time.perf_counter()
        heat, box = predictor(batch)
        t2 = time.perf_counter()
        dets = decode_batch(model, heat, box, sizes)
        for path, det in zip(paths, dets, strict=True):
            all_dets[path.name] = det
            lines.append(format_result(path.name, det, top_k=top_k, threshold=args.threshold))
            if not args.quiet:
                print(lines[-1], flush=True)
        t3 = time.perf_counter()
        times["preprocess"] += t1 - t0
        times["inference"] += t2 - t1
        times["postprocess"] += t3 - t2
        t0 = time.perf_counter()
    if args.benchmark:
        per = {k: 1000.0 * v / len(images) for k, v in times.items()}
        print(
            f"benchmark: images={len(images)} batch_size={args.batch_size} preprocess_ms={per['preprocess']:.3f} "
            f"inference_ms={per['inference']:.3f} postprocess_ms={per['postprocess']:.3f}",
            flush=True,
        )
    if args.ann_file is not None:
        m_ap, m_ap50 = _evaluate(args.ann_file, args.image_dir, all_dets)
        print(f"eval: mAP={m_ap:.4f} mAP50={m_ap50:.4f}", flush=True)
    if args.save_log_path and str(args.save_log_path).lower() not in ("null", "none"):
        out = Path(args.save_log_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(f"{line}\n" for line in lines))
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
