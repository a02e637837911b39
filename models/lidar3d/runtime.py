"""Process setup shared by the lidar3d scripts; import it before paddle (it only sets environment defaults)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["REPO_ROOT", "pin_numerics", "resolve_path"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def pin_numerics() -> None:
    """One CPU thread and MKL's reproducible code path, so a fixed seed gives the same weights on every run.

    One thread also keeps a chain polite on a shared 2-core machine. Values already in the environment win.
    """
    os.environ.setdefault("MKL_CBWR", "COMPATIBLE")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


def resolve_path(path: str | Path) -> Path:
    """A config or flag path: as given when it exists relative to the cwd, otherwise relative to the repo root."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    rooted = REPO_ROOT / candidate
    return rooted if rooted.exists() else candidate


if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
