"""tipc-harness: run PaddlePaddle TIPC train -> quantize -> export -> inference chains from TIPC configs."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
