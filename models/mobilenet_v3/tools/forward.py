"""The framework's own forward pass of a checkpoint (dygraph, eval mode): the same `result:` lines as infer.py.

Takes the export script's flags (so a check step runs it on exactly what the chain exported) plus
`--img-path`; the check step then compares these lines with Paddle Inference's (`python -m harness.checks agree`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

MODEL_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(MODEL_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(MODEL_ROOT / "deploy" / "inference_python"))

import numpy as np  # noqa: E402
from check_export import dygraph_probs  # noqa: E402
from export_model import get_args_parser as export_parser  # noqa: E402
from infer import format_result  # noqa: E402
from modeling import ModelMeta, read_meta  # noqa: E402
from presets import list_images, load_image, preprocess  # noqa: E402

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, parents=[export_parser(add_help=False)])
    parser.add_argument("--img-path", required=True, help="an image file or a folder, as given to infer.py")
    parser.add_argument("--topk", type=int, default=3)
    args = parser.parse_args(argv)
    if args.pretrained in (None, "", "null", "None"):
        print("forward: --pretrained is required", file=sys.stderr)
        return 2
    meta = read_meta(args.pretrained) or ModelMeta(
        model=args.model, scale=args.scale, num_classes=args.num_classes, image_size=args.image_size,
        quant="pact" if args.pact_quant else None,
    )
    images = list_images(args.img_path)
    batch = np.stack([preprocess(load_image(path), meta.image_size) for path, _ in images])
    probs = dygraph_probs(meta, args.pretrained, batch)
    print(f"engine: precision=fp32 requested=fp32 quant_ops=0 backend=dygraph quant={meta.quant}", flush=True)
    k = min(args.topk, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    for (_, name), row, p in zip(images, order, probs, strict=True):
        print(format_result(name, [int(c) for c in row], [float(p[c]) for c in row]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
