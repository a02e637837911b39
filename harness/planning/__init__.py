"""The planner's parts, in data-flow order: roles -> values -> placement -> commands -> grid -> chains."""

from __future__ import annotations

__all__: list[str] = []
