"""User-input errors shared by the model families: each renders as one line that names the offending file."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DataError", "UserError"]


class UserError(Exception):
    """Bad input (config, data, model files) rather than a bug: shown as `path: message`, exit code 2."""

    def __init__(self, path: str | Path, msg: str) -> None:
        self.path = str(path)
        self.msg = msg
        super().__init__(f"{self.path}: {msg}")


class DataError(UserError):
    """A data set file (annotation, image, inference model) that is missing, unreadable or malformed."""
