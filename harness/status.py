"""Step outcomes and the TIPC ``results_python.log`` line format (a contract with existing log readers)."""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "INTERRUPTED_REASON",
    "ResultsLog",
    "StepResult",
    "StepStatus",
    "results_line",
    "run_interrupted",
    "run_succeeded",
    "summary_table",
    "totals_line",
]

# Reasons of a run stopped by a signal start with this word: "interrupted by SIGTERM" for the step that was running
# (FAILED), "not run: the run was interrupted by SIGTERM" for those after it (SKIPPED).
INTERRUPTED_REASON = "interrupted"


class StepStatus(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # non-zero exit code
    TIMEOUT = "timeout"  # killed after its timeout
    ERROR = "error"  # could not start (missing executable, bad cwd)
    SKIPPED = "skipped"  # prerequisite failed or hardware absent


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    chain_id: str
    step_name: str
    kind: str
    status: StepStatus
    command: str  # Command.display()
    log_path: str
    returncode: int | None = None
    duration_s: float = 0.0
    reason: str = ""

    def __bool__(self) -> bool:
        return self.status is StepStatus.PASSED

    @property
    def interrupted(self) -> bool:
        """True for the step a signal stopped (a FAILED record whose reason says so)."""
        return self.status is StepStatus.FAILED and self.reason.startswith(INTERRUPTED_REASON)

    @property
    def failed(self) -> bool:
        return self.status in (StepStatus.FAILED, StepStatus.TIMEOUT, StepStatus.ERROR)

    def to_json(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["status"] = str(self.status)
        return data


def results_line(model_name: str, result: StepResult) -> str:
    """One ``results_python.log`` line, as the TIPC scripts print it (without their ANSI colours)."""
    if result.status is StepStatus.PASSED:
        return f"Run successfully with command - {model_name} - {result.command} > {result.log_path} 2>&1!"
    if result.status is StepStatus.SKIPPED:
        return f"Run skipped with command - {model_name} - {result.command}! reason: {result.reason}"
    return f"Run failed with command - {model_name} - {result.command} > {result.log_path} 2>&1! reason: {result.reason}"


def run_interrupted(results: Iterable[StepResult]) -> str | None:
    """The interrupted step's reason (``interrupted by SIGINT``) when a signal stopped the run, else None."""
    return next((result.reason for result in results if result.interrupted), None)


def run_succeeded(results: Iterable[StepResult]) -> bool:
    """True unless some step failed, timed out or could not start; skipped steps do not count against a run."""
    return not any(result.failed for result in results)


class ResultsLog:
    """Appends ``results_python.log`` lines for one model.

    Each line goes out in a single ``write`` on a descriptor opened with O_APPEND, so two processes appending to
    the same file (xdist workers, or a rerun beside a running job) interleave whole lines, never parts of lines.
    """

    def __init__(self, path: str | os.PathLike[str], *, model_name: str) -> None:
        self.path = Path(path)
        self.model_name = model_name
        self._fd: int | None = None

    def __enter__(self) -> ResultsLog:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> int:
        """Open (creating folders and file as needed) and return the descriptor; opening twice is harmless."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a link planted in place of the log is never appended through to a file elsewhere.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def write(self, result: StepResult) -> str:
        """Append the line for ``result`` and return it."""
        line = results_line(self.model_name, result)
        self.write_line(line)
        return line

    def write_line(self, line: str) -> None:
        fd = self.open()
        data = (line.rstrip("\n") + "\n").encode("utf-8", "replace")
        while data:  # a regular file takes it all at once; the loop only guards against a short write
            written = os.write(fd, data)
            data = data[written:]


def totals_line(results: Sequence[StepResult]) -> str:
    """``3 passed, 1 failed, 2 skipped in 12.3 s`` (statuses with no steps are left out)."""
    counts = {status: 0 for status in StepStatus}
    for result in results:
        counts[result.status] += 1
    parts = [f"{n} {status}" for status, n in counts.items() if n]
    seconds = sum(result.duration_s for result in results)
    return f"{', '.join(parts) or 'no steps'} in {seconds:.1f} s"


def summary_table(results: Sequence[StepResult]) -> str:
    """A plain-text table (step, status, seconds, log, reason) and a totals line, for the terminal."""
    header = ("step", "status", "seconds", "log", "reason")
    rows = [
        (
            f"{r.chain_id}::{r.step_name}",
            str(r.status).upper(),
            f"{r.duration_s:.1f}" if r.status is not StepStatus.SKIPPED else "-",
            r.log_path if r.status is not StepStatus.SKIPPED else "-",
            r.reason,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    right = {2}  # numbers line up on the right

    def render(row: tuple[str, ...]) -> str:
        cells = (
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(cells).rstrip()

    lines = [render(header), render(tuple("-" * w for w in widths)), *(render(row) for row in rows)]
    lines.append(totals_line(results))
    stopped = run_interrupted(results)
    if stopped is not None:
        lines.append(f"run {stopped}: the step running then is failed, later steps are skipped")
    return "\n".join(lines)
