"""Train the model a YAML config names: `train.py -c configs/picodet_lite.yml [--pact] [-o Key.sub=value ...]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # repo root: the scripts run as files, not as modules
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.common.dispatch import run_tool  # noqa: E402

__all__ = ["main"]


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pact", action="store_true", help="PACT quantization-aware training (same as -o Slim.quant=pact)")
    parser.add_argument("--amp_level", choices=("O0", "O1", "O2"), default=None, help="mixed precision level (GPU only)")


def _overrides(args: argparse.Namespace) -> list[str]:
    out = []
    if args.pact:
        out.append("Slim.quant=pact")
    if args.amp_level:
        out.append(f"AMP.level={args.amp_level}")
    return out


def main(argv: list[str] | None = None) -> int:
    return run_tool(
        "train", __doc__ or "", argv, add_flags=_flags, flag_overrides=_overrides, family_root=Path(__file__).resolve().parents[1]
    )


if __name__ == "__main__":
    raise SystemExit(main())
