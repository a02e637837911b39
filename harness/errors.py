"""Error types that carry a location so users see one ``path:line: message`` line."""

from __future__ import annotations

__all__ = ["ConfigError", "HarnessError", "CommandFailed"]


class HarnessError(Exception):
    """Base class for errors the CLI reports without a traceback."""


class ConfigError(HarnessError):
    """A problem in a TIPC config file, pinned to a file and a 1-based line (0: the whole file)."""

    def __init__(self, path: str, line: int, msg: str) -> None:
        self.path = str(path)
        self.line = line
        self.msg = msg
        super().__init__(self.render())

    def render(self) -> str:
        return f"{self.path}:{self.line}: {self.msg}"


class CommandFailed(HarnessError):
    """A step's command exited non-zero, timed out or could not start."""

    def __init__(self, *, command: str, returncode: int | None, log_path: str, reason: str, tail: str) -> None:
        self.command = command
        self.returncode = returncode
        self.log_path = log_path
        self.reason = reason
        self.tail = tail
        super().__init__(f"{reason}: {command}")
