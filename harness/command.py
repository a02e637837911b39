"""The frozen description of one process to run: argv, cwd, environment overrides, timeout and log file."""

from __future__ import annotations

import dataclasses
import shlex

__all__ = ["Command", "DEFAULT_TIMEOUT_S"]

# Generous on purpose: a whole_train step may legitimately run for hours; lite steps finish in seconds.
DEFAULT_TIMEOUT_S = 4 * 3600.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One process. Paths are relative to the run root (the model repo root) so plans stay JSON-plain."""

    argv: tuple[str, ...]
    cwd: str = "."
    env: tuple[tuple[str, str | None], ...] = ()  # overrides; None removes the variable
    timeout_s: float = DEFAULT_TIMEOUT_S
    log_path: str
    # What the reference script's status line prints after "Run ... with command - " (model prefix, the command with
    # its spacing and redirection, log suffix): set by the planner in --quirks mode for results_python.log, never
    # executed. Empty outside --quirks.
    reference_line: str = ""

    def display(self) -> str:
        """Shell-quoted form a user can paste; for logs and reports only, never executed."""
        text = shlex.join(self.argv)
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env if v is not None)
        unset = " ".join(f"-u {k}" for k, v in self.env if v is None)
        if prefix or unset:
            text = f"env {unset + ' ' if unset else ''}{prefix + ' ' if prefix else ''}{text}".replace("  ", " ")
        if self.cwd not in ("", "."):
            text = f"cd {shlex.quote(self.cwd)} && {text}"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "argv": list(self.argv),
            "cwd": self.cwd,
            "env": {k: v for k, v in self.env},
            "timeout_s": self.timeout_s,
            "log": self.log_path,
        }
