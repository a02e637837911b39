"""Evaluate with any registered model family: `-c config.yml [-o Key.sub=value ...]`, dispatched by `architecture`."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # repo root: the script runs as a file, not as a module
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.common.dispatch import run_tool  # noqa: E402

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    return run_tool("eval", __doc__ or "", argv, family_root=ROOT)


if __name__ == "__main__":
    raise SystemExit(main())
