"""Root conftest: registers the TIPC pytest plugin once (there is deliberately no pytest11 entry point as well)."""

from __future__ import annotations

__all__ = ["pytest_plugins"]

pytest_plugins = ["harness.pytest_plugin"]
