"""Run detector weights with paddle's own forward pass (the export script's flags plus --image_dir)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.common.dispatch import run_tool  # noqa: E402

__all__ = ["main"]


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image_dir", required=True, help="an image folder, as given to deploy/infer.py")


def main(argv: list[str] | None = None) -> int:
    return run_tool("forward", __doc__ or "", argv, add_flags=_flags, family_root=Path(__file__).resolve().parents[1])


if __name__ == "__main__":
    raise SystemExit(main())
