"""Export trained MobileNetV3 weights (float or PACT-quantized) as a Paddle Inference model `<dir>/inference.*`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

MODEL_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(MODEL_ROOT))

from modeling import MODELS, ModelMeta, build_model, make_qat, read_meta  # noqa: E402

import paddle  # noqa: E402

__all__ = ["InferenceNet", "export", "get_args_parser", "main", "model_files"]

# Every file a previous export may have left behind; removed first so a folder never holds two programs.
_OUTPUT_SUFFIXES = (".json", ".pdmodel", ".pdiparams", ".pdiparams.info")


class InferenceNet(paddle.nn.Layer):
    """The classifier followed by softmax, so the predictor hands out probabilities (as the tutorial exports)."""

    def __init__(self, net: paddle.nn.Layer) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.nn.functional.softmax(self.net(x), axis=-1)


def model_files(prefix: Path) -> list[Path]:
    """The program and parameter files that exist for `prefix` (PIR `.json` or legacy `.pdmodel`)."""
    return [prefix.with_name(prefix.name + s) for s in _OUTPUT_SUFFIXES if prefix.with_name(prefix.name + s).exists()]


def export(meta: ModelMeta, weights: str | None, save_dir: Path) -> list[Path]:
    """Build, load and save; returns the files written."""
    paddle.device.set_device("cpu")
    wrapper = InferenceNet(build_model(meta.model, scale=meta.scale, num_classes=meta.num_classes))
    qat = None
    if meta.quant == "pact":
        # Quantize the wrapper, not the bare net: QAT.save_quantized_model rebuilds the network from the copy it
        # takes here (to drop the PACT clips), and that copy must already include the softmax.
        qat = make_qat()
        qat.quantize(wrapper)
    if weights:
        state = paddle.load(weights)
        missing, unexpected = wrapper.set_state_dict({f"net.{k}": v for k, v in state.items()})
        if missing or unexpected:
            msg = f"{weights}: weights do not fit the model (missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]})"
            raise SystemExit(msg)
    wrapper.eval()

    save_dir.mkdir(parents=True, exist_ok=True)
    prefix = save_dir / "inference"
    for stale in model_files(prefix):
        stale.unlink()
    spec = [paddle.static.InputSpec(shape=[None, 3, meta.image_size, meta.image_size], dtype="float32", name="x")]
    if qat is not None:
        # paddleslim writes the legacy program format (it runs under paddle's OldIrGuard): inference.pdmodel.
        qat.save_quantized_model(wrapper, str(prefix), input_spec=spec)
        paddle.disable_static()  # save_quantized_model may leave static mode switched on
    else:
        # Paddle 3.x writes the PIR program inference.json; 2.x (or FLAGS_enable_pir_api=0) inference.pdmodel.
        static = paddle.jit.to_static(wrapper, input_spec=spec, full_graph=True)
        paddle.jit.save(static, str(prefix))
    return model_files(prefix)


def main(args: argparse.Namespace) -> int:
    sidecar = read_meta(args.pretrained) if args.pretrained else None
    if sidecar is None:
        meta = ModelMeta(
            model=args.model,
            scale=args.scale,
            num_classes=args.num_classes,
            image_size=args.image_size,
            quant="pact" if args.pact_quant else None,
        )
        if args.pretrained:
            print(f"export: no sidecar next to {args.pretrained}; using the command-line shape", flush=True)
    else:
        if sidecar.model != args.model:
            print(f"export: --model={args.model} but the weights are {sidecar.model}", file=sys.stderr)
            return 2
        meta = sidecar
        if args.pact_quant and meta.quant != "pact":
            print("export: --pact_quant given but the weights were trained without it", file=sys.stderr)
            return 2
    written = export(meta, args.pretrained, Path(args.save_inference_dir))
    names = ", ".join(p.name for p in written)
    print(
        f"export: model={meta.model} scale={meta.scale} image_size={meta.image_size} quant={meta.quant} "
        f"-> {Path(args.save_inference_dir) / 'inference'} ({names})",
        flush=True,
    )
    return 0


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, add_help=add_help)
    parser.add_argument("--model", default="mobilenet_v3_small", choices=MODELS)
    parser.add_argument("--pretrained", default=None, help="weights (.pdparams); the .json sidecar decides the shape")
    parser.add_argument("--save-inference-dir", default="./output/mobilenet_v3_small_infer/")
    parser.add_argument("--pact_quant", action="store_true", help="weights are PACT-quantized (else from the sidecar)")
    parser.add_argument("--scale", type=float, default=1.0, help="used only when there is no sidecar")
    parser.add_argument("--num-classes", type=int, default=10, help="used only when there is no sidecar")
    parser.add_argument("--image-size", type=int, default=64, help="used only when there is no sidecar")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = get_args_parser().parse_args(argv)
    if args.pretrained in ("", "null", "None"):
        args.pretrained = None
    return args


if __name__ == "__main__":
    raise SystemExit(main(parse_args()))
