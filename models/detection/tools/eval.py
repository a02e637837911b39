"""Evaluate trained weights on the config's val set and print `eval: mAP=0.XXXX mAP50=0.XXXX`."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.common.dispatch import run_tool  # noqa: E402

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    return run_tool("eval", __doc__ or "", argv, family_root=Path(__file__).resolve().parents[1])


if __name__ == "__main__":
    raise SystemExit(main())
