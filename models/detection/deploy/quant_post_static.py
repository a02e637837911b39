"""Post-training int8 quantization of an exported model over the lite calibration images (`kl_quant` in TIPC)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# paddle.static.quantization's PTQ passes run on the legacy program IR only; this must be set before Paddle
# is imported, so it is set here, at the very top of the script.
os.environ["FLAGS_enable_pir_api"] = "0"

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402

from models.common.dispatch import run_tool  # noqa: E402

__all__ = ["main"]


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model_dir",
        type=Path,
        default=None,
        help="exported float model; then -o Global.save_inference_dir names the output (default: quantize "
        "Global.save_inference_dir into its quant_post_static_model/ folder)",
    )


def main(argv: list[str] | None = None) -> int:
    return run_tool("quant_post_static", __doc__ or "", argv, add_flags=_flags, family_root=Path(__file__).resolve().parents[1])


if __name__ == "__main__":
    raise SystemExit(main())
