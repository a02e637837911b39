"""Classify images with an exported MobileNetV3 through Paddle Inference; print result lines and benchmark timings."""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

MODEL_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(MODEL_ROOT))
if str(MODEL_ROOT.parents[1]) not in sys.path:
    sys.path.insert(1, str(MODEL_ROOT.parents[1]))  # the repository root, for models.common

import numpy as np  # noqa: E402
from presets import list_images, load_image, preprocess  # noqa: E402

from models.common.config import bool_flag  # noqa: E402
from models.common.inference import effective_precision, engine_line, quant_op_count  # noqa: E402

__all__ = ["InferenceEngine", "Timings", "format_result", "get_args_parser", "main", "str2bool"]

# Where the lite chain's demo images are, relative to the repository root (the TIPC working directory).
DEFAULT_IMAGES = "./lite_data/cls_digits/demo"


str2bool = bool_flag  # the one shared TIPC True/False flag type (models/common/config.py)


def format_result(name: str, class_ids: Sequence[int], scores: Sequence[float]) -> str:
    """The one parsable line per image that harness/golden.py reads."""
    ids = ", ".join(str(int(c)) for c in class_ids)
    probs = ", ".join(f"{float(s):.6f}" for s in scores)
    return f"result: image={name} class_ids=[{ids}] scores=[{probs}]"


def find_model(model_dir: Path) -> tuple[Path, Path]:
    """`inference.json` (PIR, Paddle 3.x float export) or `inference.pdmodel` (legacy; the PACT export)."""
    params = model_dir / "inference.pdiparams"
    candidates = [p for p in (model_dir / "inference.json", model_dir / "inference.pdmodel") if p.is_file()]
    if not candidates or not params.is_file():
        msg = f"no exported model in {model_dir} (expected inference.json or inference.pdmodel + inference.pdiparams)"
        raise FileNotFoundError(msg)
    # Both present means two exports wrote here; the newer one is the model that belongs to the weights.
    return max(candidates, key=lambda p: p.stat().st_mtime_ns), params


class Timings:
    """Per-stage wall times in milliseconds, summarised the way AutoLog reports them."""

    def __init__(self) -> None:
        self.stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": []}

    def add(self, stage: str, seconds: float) -> None:
        self.stages[stage].append(seconds * 1000.0)

    def summary(self, stage: str) -> str:
        values = np.array(self.stages[stage], dtype=np.float64)
        if values.size == 0:
            return f"{stage}_time(ms): n/a"
        return (
            f"{stage}_time(ms): mean {values.mean():.4f} p50 {np.percentile(values, 50):.4f} "
            f"p99 {np.percentile(values, 99):.4f} (n={values.size})"
        )


class InferenceEngine:
    """A configured Paddle Inference predictor plus the model's pre- and post-processing."""

    def __init__(self, args: argparse.Namespace) -> None:
        from paddle import inference

        self.args = args
        model_file, params_file = find_model(Path(args.model_dir))
        self.model_file = model_file
        config = inference.Config(str(model_file), str(params_file))
        if args.use_gpu:
            config.enable_use_gpu(args.gpu_mem, args.gpu_id)
            if args.use_tensorrt:
                modes = {
                    "fp32": inference.PrecisionType.Float32,
                    "fp16": inference.PrecisionType.Half,
                    "int8": inference.PrecisionType.Int8,
                }
                config.enable_tensorrt_engine(
                    workspace_size=1 << 30,
                    max_batch_size=args.batch_size,
                    min_subgraph_size=3,
                    precision_mode=modes[args.precision],
                    use_static=False,
                    use_calib_mode=False,
                )
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(args.cpu_threads)
            if args.use_mkldnn:
                config.enable_mkldnn()
                if args.precision == "int8":
                    config.enable_mkldnn_int8()
            else:
                config.disable_mkldnn()
        config.switch_ir_optim(True)
        # No enable_memory_optim(): with a PIR program Paddle 3.3 fails in create_predictor ("Not find
        # predictor_id 0 and pass_name memory_optimize_pass"), and a 2 MB model gains nothing from it.
        config.disable_glog_info()
        self.predictor = inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])
        shape = list(self.input.shape())
        # The export fixes H and W in its InputSpec; -1 would mean an exporter that did not.
        self.image_size = int(shape[-1]) if len(shape) == 4 and int(shape[-1]) > 0 else args.image_size

    def preprocess(self, paths: Sequence[Path]) -> np.ndarray:
        return np.stack([preprocess(load_image(p), self.image_size) for p in paths])

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.input.reshape(list(batch.shape))
        self.input.copy_from_cpu(batch)
        self.predictor.run()
        return np.asarray(self.output.copy_to_cpu(), dtype=np.float32)

    def postprocess(self, probs: np.ndarray) -> list[tuple[list[int], list[float]]]:
        """Top-k class ids and probabilities per row; ties go to the lower class id."""
        k = min(self.args.topk, probs.shape[1])
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [([int(c) for c in row], [float(probs[i, c]) for c in row]) for i, row in enumerate(order)]


def check_device(args: argparse.Namespace) -> str | None:
    """Why these flags cannot run on this machine, or None."""
    if args.use_gpu:
        import paddle

        if not paddle.device.is_compiled_with_cuda():
            return f"--use-gpu=True, but this paddle {paddle.version.full_version} is built without CUDA; rerun with --use-gpu=False"
        if paddle.device.cuda.device_count() < 1:
            return "--use-gpu=True, but no CUDA device is visible (check CUDA_VISIBLE_DEVICES); rerun with --use-gpu=False"
    elif args.use_tensorrt:
        return "--use-tensorrt=True needs --use-gpu=True"
    elif args.precision == "fp16":
        return "--precision=fp16 needs --use-gpu=True (Paddle Inference has no fp16 CPU kernels)"
    return None


def main(args: argparse.Namespace) -> int:
    problem = check_device(args)
    if problem is not None:
        print(f"infer: error: {problem}", file=sys.stderr, flush=True)
        return 2
    try:
        images = list_images(args.img_path)
        engine = InferenceEngine(args)
    except FileNotFoundError as exc:
        print(f"infer: error: {exc}", file=sys.stderr, flush=True)
        return 2
    device = "gpu" if args.use_gpu else "cpu"
    quant_ops = quant_op_count(engine.model_file)
    ran = effective_precision(args.precision, use_gpu=args.use_gpu, use_mkldnn=args.use_mkldnn,
                              use_trt=args.use_tensorrt, quant_ops=quant_ops)
    print(engine_line(requested=args.precision, effective=ran, quant_ops=quant_ops,
                      backend=f"paddle-inference {device}"), flush=True)
    print(
        f"infer: model={engine.model_file} device={device} use_mkldnn={args.use_mkldnn} "
        f"cpu_threads={args.cpu_threads} batch_size={args.batch_size} precision={args.precision} "
        f"use_tensorrt={args.use_tensorrt} images={len(images)}",
        flush=True,
    )
    batches = [images[i : i + args.batch_size] for i in range(0, len(images), args.batch_size)]
    if args.benchmark:
        warm = engine.preprocess([p for p, _ in batches[0]])
        for _ in range(args.warmup):
            engine.run(warm)
    timings = Timings()
    start = time.perf_counter()
    for repeat in range(args.repeats if args.benchmark else 1):
        for batch in batches:
            t0 = time.perf_counter()
            data = engine.preprocess([p for p, _ in batch])
            t1 = time.perf_counter()
            probs = engine.run(data)
            t2 = time.perf_counter()
            results = engine.postprocess(probs)
            t3 = time.perf_counter()
            timings.add("preprocess", t1 - t0)
            timings.add("inference", t2 - t1)
            timings.add("postprocess", t3 - t2)
            if repeat == 0:
                for (_, name), (ids, scores) in zip(batch, results, strict=True):
                    print(format_result(name, ids, scores), flush=True)
    total = time.perf_counter() - start
    if args.benchmark:
        print("----------------------- Model info ----------------------", flush=True)
        print(f" model_file: {engine.model_file}, precision: {args.precision}, image_size: {engine.image_size}")
        print("----------------------- Data info -----------------------")
        print(f" batch_size: {args.batch_size}, images: {len(images)}, repeats: {args.repeats}, warmup: {args.warmup}")
        print("----------------------- Conf info -----------------------")
        print(
            f" device: {device}, use_mkldnn: {args.use_mkldnn}, cpu_math_library_num_threads: {args.cpu_threads}, "
            f"use_tensorrt: {args.use_tensorrt}, host: {platform.machine()} {platform.processor() or ''}".rstrip()
        )
        print("----------------------- Perf info -----------------------")
        print(f" total time spent(s): {total:.4f}")
        for stage in ("preprocess", "inference", "postprocess"):
            print(f" {timings.summary(stage)}")
        sys.stdout.flush()
    return 0


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, add_help=add_help)
    parser.add_argument("--model-dir", default="./output/mobilenet_v3_small_infer/", help="folder with inference.*")
    parser.add_argument("--img-path", default=DEFAULT_IMAGES, help="an image file or a folder (searched recursively)")
    parser.add_argument("--use-gpu", type=str2bool, default=False)
    parser.add_argument("--gpu-id", type=int, default=0)
    parser.add_argument("--gpu-mem", type=int, default=500, help="initial GPU memory pool (MB)")
    parser.add_argument("--use-tensorrt", type=str2bool, default=False)
    parser.add_argument("--use-mkldnn", type=str2bool, default=False)
    parser.add_argument("--cpu-threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    parser.add_argument("--image-size", type=int, default=64, help="only if the model does not fix its input size")
    parser.add_argument("--topk", type=int, default=3, help="classes per result line")
    parser.add_argument("--benchmark", type=str2bool, default=False, help="warm up, then report per-stage latency")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before a benchmark")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the images in a benchmark")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = get_args_parser().parse_args(argv)
    if args.batch_size < 1 or args.cpu_threads < 1 or args.topk < 1:
        print("--batch-size, --cpu-threads and --topk must be positive", file=sys.stderr)
        raise SystemExit(2)
    return args


if __name__ == "__main__":
    raise SystemExit(main(parse_args()))
