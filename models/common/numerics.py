"""Process setup for reproducible CPU numerics; call it before paddle is imported."""

from __future__ import annotations

import os

__all__ = ["pin_numerics"]


def pin_numerics() -> None:
    """One CPU thread and MKL's reproducible code path, so a fixed seed gives the same weights on every run.

    With two threads the order of floating-point reductions depends on scheduling, and a short training run
    amplifies last-bit differences into different weights; goldens then stop matching. One thread also keeps a
    chain polite on a shared machine. Values already in the environment win.
    """
    os.environ.setdefault("MKL_CBWR", "COMPATIBLE")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
