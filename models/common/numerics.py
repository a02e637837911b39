"""Process setup for reproducible CPU numerics, one behaviour for every family; call it before paddle is imported."""

from __future__ import annotations

import os

__all__ = ["pin_numerics"]


def pin_numerics(threads: int = 1) -> None:
    """Pin the math libraries so a fixed seed gives the same weights on every run of one machine.

    A lite schedule is chaotic. Measured (MobileNetV3 PACT, 5 epochs): 2 threads instead of 1 changed the trained
    weights by up to 23; MKL's AVX2 kernels instead of its AVX-512 ones by up to 8 and val top-1 by 15 points.
    So, before paddle is imported (MKL and OpenMP read these once):

    - OMP_NUM_THREADS and MKL_NUM_THREADS are set to `threads`, overriding the environment: a CI runner's
      global thread setting must not silently change the model;
    - MKL_CBWR=COMPATIBLE (MKL's conditional numerical reproducibility, one code path on every x86 CPU) unless
      MKL_CBWR is already set, which only someone who knows MKL does.

    This makes a run repeatable on one machine; it does not make training identical across CPU kinds (oneDNN
    and Paddle's own kernels still pick per-CPU code paths), which is why goldens exist only for the shipped
    checkpoints and trained chains get portable checks (test_tipc/docs/golden_results.md).
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    os.environ.setdefault("MKL_CBWR", "COMPATIBLE")
