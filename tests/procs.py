"""Test helpers for real processes: is a pid still running, wait for an event (a file, a log line) to happen."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["alive", "read_pid", "wait_until"]


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, waiting for its parent to reap it) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def wait_until(event: Callable[[], bool], *, what: str, limit_s: float = 120.0) -> None:
    """Poll for ``event``; ``limit_s`` only bounds a hung test, no assertion depends on how long it took."""
    deadline = time.monotonic() + limit_s
    while not event():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def read_pid(path: Path) -> int:
    return int(path.read_text())
