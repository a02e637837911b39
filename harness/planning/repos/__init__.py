"""Script models: repositories whose test_train_inference_python.sh builds commands in its own shape."""

from __future__ import annotations

__all__: list[str] = []
