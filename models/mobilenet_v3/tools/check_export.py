"""Inspect an exported model: its program's op types and, given the weights, predictor-vs-dygraph agreement."""

from __future__ import annotations

import argparse
import collections
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

MODEL_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(MODEL_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from modeling import ModelMeta, build_model, make_qat, read_meta  # noqa: E402
from presets import load_image, preprocess, read_list  # noqa: E402

__all__ = ["dygraph_probs", "main", "op_types", "predictor_probs"]

QUANT_OP_MARKERS = ("quantize_linear", "dequantize_linear", "fake_quantize", "fake_dequantize", "quant")


def _walk_pir_ops(node: Any) -> Iterator[str]:
    """Op names in a PIR JSON program: dicts inside an "ops" list, named by their "#" field ("1.conv2d")."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "ops" and isinstance(value, list):
                for op in value:
                    if isinstance(op, dict) and isinstance(op.get("#"), str):
                        yield op["#"]
            yield from _walk_pir_ops(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_pir_ops(item)


def op_types(model_dir: Path) -> tuple[str, dict[str, int]]:
    """("pir" | "legacy", op type -> count) of `<model_dir>/inference.*`.

    PIR names carry a dialect number ("1.quantize_linear" is pd_op.quantize_linear); it is dropped, and the
    builtin parameter op "p" is left out. A legacy `.pdmodel` is read as a ProgramDesc.
    """
    pir = model_dir / "inference.json"
    legacy = model_dir / "inference.pdmodel"
    counts: collections.Counter[str] = collections.Counter()
    if pir.is_file() and (not legacy.is_file() or pir.stat().st_mtime_ns >= legacy.stat().st_mtime_ns):
        for name in _walk_pir_ops(json.loads(pir.read_text())):
            if name != "p":
                counts[name.split(".", 1)[-1]] += 1
        return "pir", dict(sorted(counts.items()))
    if not legacy.is_file():
        msg = f"no inference.json or inference.pdmodel in {model_dir}"
        raise FileNotFoundError(msg)
    from paddle.base import core

    desc = core.ProgramDesc(legacy.read_bytes())
    for b in range(desc.num_blocks()):
        block = desc.block(b)
        for i in range(block.op_size()):
            counts[block.op(i).type()] += 1
    return "legacy", dict(sorted(counts.items()))


def _inputs(data_path: str, list_name: str, image_size: int, limit: int) -> np.ndarray:
    items = read_list(data_path, list_name)[:limit]
    return np.stack([preprocess(load_image(path), image_size) for path, _ in items])


def dygraph_probs(meta: ModelMeta, weights: str, batch: np.ndarray) -> np.ndarray:
    """Softmax of the dynamic-graph model in eval mode (with fake quantization when it was PACT-trained)."""
    import paddle

    paddle.device.set_device("cpu")
    net = build_model(meta.model, scale=meta.scale, num_classes=meta.num_classes)
    if meta.quant == "pact":
        make_qat().quantize(net)
    net.set_state_dict(paddle.load(weights))
    net.eval()
    with paddle.no_grad():
        logits = net(paddle.to_tensor(batch))
    return np.asarray(paddle.nn.functional.softmax(logits, axis=-1).numpy(), dtype=np.float32)


def predictor_probs(model_dir: Path, batch: np.ndarray) -> np.ndarray:
    """The exported model through Paddle Inference on CPU, without oneDNN."""
    sys.path.insert(0, str(MODEL_ROOT / "deploy" / "inference_python"))
    from infer import InferenceEngine, get_args_parser  # the deploy script's own engine: what users run

    args = get_args_parser().parse_args([f"--model-dir={model_dir}", f"--batch-size={len(batch)}"])
    return InferenceEngine(args).run(batch)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", required=True, type=Path, help="folder with inference.*")
    parser.add_argument("--pretrained", default=None, help="the weights the export came from (enables the comparison)")
    parser.add_argument("--data-path", default="./lite_data/cls_digits")
    parser.add_argument("--list", default="val_list.txt")
    parser.add_argument("--limit", type=int, default=16, help="images to compare on")
    args = parser.parse_args(argv)
    fmt, ops = op_types(args.model_dir)
    report: dict[str, Any] = {
        "format": fmt,
        "ops": ops,
        "quant_ops": sum(n for name, n in ops.items() if any(m in name for m in QUANT_OP_MARKERS)),
    }
    if args.pretrained:
        meta = read_meta(args.pretrained)
        if meta is None:
            print(f"check_export: no sidecar next to {args.pretrained}", file=sys.stderr)
            return 2
        batch = _inputs(args.data_path, args.list, meta.image_size, args.limit)
        dyn = dygraph_probs(meta, args.pretrained, batch)
        pred = predictor_probs(args.model_dir, batch)
        report["compared"] = int(len(batch))
        report["max_abs_diff"] = float(np.abs(dyn - pred).max())
        report["top1_agree"] = int((dyn.argmax(axis=1) == pred.argmax(axis=1)).sum())
    print("check_export: " + json.dumps(report, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
