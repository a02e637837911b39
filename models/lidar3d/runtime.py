"""Process setup shared by the lidar3d scripts; import it before paddle (it only sets environment defaults)."""

from __future__ import annotations

import sys
from pathlib import Path

from models.common.numerics import pin_numerics

__all__ = ["REPO_ROOT", "pin_numerics", "resolve_path"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_path(path: str | Path) -> Path:
    """A config or flag path: as given when it exists relative to the cwd, otherwise relative to the repo root."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    rooted = REPO_ROOT / candidate
    return rooted if rooted.exists() else candidate


if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
