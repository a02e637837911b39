"""Root conftest. The TIPC plugin is loaded through its pytest11 entry point (setup.cfg), not from here:
registering the module here as well would register one module under two names (pytest-dev/pytest#5661)."""

from __future__ import annotations

__all__: list[str] = []
