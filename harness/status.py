"""Step outcomes and the TIPC ``results_python.log`` line format (a contract with existing log readers)."""

from __future__ import annotations

import dataclasses
import enum
import fcntl
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "INTERRUPTED_REASON",
    "PREVIOUS_SUFFIX",
    "ResultsLine",
    "ResultsLog",
    "StepResult",
    "StepStatus",
    "parse_results_line",
    "reference_results_line",
    "results_line",
    "run_interrupted",
    "run_succeeded",
    "start_fresh",
    "summary_table",
    "totals_line",
]

# Reasons of a run stopped by a signal start with this word: "interrupted by SIGTERM" for the step that was running
# (FAILED), "not run: the run was interrupted by SIGTERM" for those after it (SKIPPED).
INTERRUPTED_REASON = "interrupted"

# The previous run's results_python.log is kept beside the new one under this suffix.
PREVIOUS_SUFFIX = ".prev"


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
    attempts: int = 1  # >1 when re-run after failing (--reruns); a pass then is flaky

    def __bool__(self) -> bool:
        return self.status is StepStatus.PASSED

    @property
    def flaky(self) -> bool:
        """Passed, but only on a re-run."""
        return self.status is StepStatus.PASSED and self.attempts > 1

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


# Colour codes the reference scripts' `echo -e "\033[33m ... \033[0m"` writes into the file (QUIRKS.md 1.1).
_YELLOW = "\x1b[33m"
_RESET = "\x1b[0m"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LINE = re.compile(r"^Run (?P<word>successfully|failed|skipped) with command - (?P<rest>.*)$")
_REDIRECT = re.compile(r"^(?P<command>.*?)\s+>\s*(?P<log>\S+)\s+2>&1\s*$")
_STATUS_WORD = {StepStatus.PASSED: "successfully", StepStatus.SKIPPED: "skipped"}


def results_line(model_name: str, result: StepResult) -> str:
    """The default ``results_python.log`` line: ``Run <successfully|failed|skipped> with command - <model> -
    <command> - <log>!``.

    A contract: split on `` - `` and the fields are status, model, command and log path (relative to the run
    root), as Paddle's own tooling splits the reference lines. Failed covers a non-zero exit, a timeout and a
    command that could not start; the reason is in the terminal summary and the reports, not in this line.
    """
    word = _STATUS_WORD.get(result.status, "failed")
    return f"Run {word} with command - {model_name} - {result.command} - {result.log_path}!"


def reference_results_line(result: StepResult, reference_line: str) -> str | None:
    """The --quirks line, byte for byte as the flavor's reference script prints it (colours included), from the
    planner's ``Command.reference_line``; None for a skipped step, for which the scripts print nothing."""
    if result.status is StepStatus.SKIPPED:
        return None
    word = "successfully" if result.status is StepStatus.PASSED else "failed"
    return f"{_YELLOW} Run {word} with command - {reference_line}{_RESET}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ResultsLine:
    """One parsed ``results_python.log`` line (default format, --quirks format, or a reference script's)."""

    status: str  # "successfully", "failed" or "skipped", as written
    model: str
    command: str
    log_path: str  # "" when the line names none (the reference's train lines)
    reason: str = ""  # only lines written before the format became a contract carry one


def parse_results_line(raw: str) -> ResultsLine | None:
    """Parse a line in any of the formats above; None for anything else (output of a step, blank lines)."""
    line = _ANSI.sub("", raw).strip()
    match = _LINE.match(line)
    if match is None:
        return None
    rest = match.group("rest")
    reason = ""
    if "! reason: " in rest:  # lines from before the contract: "... 2>&1! reason: exit code 1"
        rest, _, reason = rest.partition("! reason: ")
    rest = rest.rstrip().removesuffix("!").rstrip()
    model, sep, rest = rest.partition(" - ")
    if not sep:
        model, rest = "", model
    log = ""
    command, sep, tail = rest.rpartition(" - ")
    if sep and tail and " " not in tail.strip():
        log = tail.strip()
    else:
        command = rest
    redirected = _REDIRECT.match(command)
    if redirected is not None:
        command = redirected.group("command")
        log = log or redirected.group("log")
    return ResultsLine(status=match.group("word"), model=model, command=command.strip(), log_path=log, reason=reason)


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

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        model_name: str,
        run_id: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.model_name = model_name
        # With a run id the first open of a run moves the previous run's file aside (start_fresh).
        self.run_id = run_id
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
            if self.run_id is not None:
                start_fresh(self.path, self.run_id)
            # O_NOFOLLOW: a link planted in place of the log is never appended through to a file elsewhere.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def write(self, result: StepResult, *, reference_line: str = "") -> str:
        """Append the line for ``result`` and return it ('' when the format has no line for it).

        ``reference_line`` is the step's ``Command.reference_line`` (set in --quirks plans): the line is then the
        reference script's, byte for byte; otherwise it is the default format (``results_line``)."""
        if reference_line:
            line = reference_results_line(result, reference_line)
            if line is None:
                return ""
        else:
            line = results_line(self.model_name, result)
        self.write_line(line)
        return line

    def write_line(self, line: str) -> None:
        fd = self.open()
        data = (line.rstrip("\n") + "\n").encode("utf-8", "replace")
        while data:  # a regular file takes it all at once; the loop only guards against a short write
            written = os.write(fd, data)
            data = data[written:]


def start_fresh(path: str | os.PathLike[str], run_id: str) -> bool:
    """Begin a new run's results file: once per ``run_id`` (xdist workers share one), move the previous file to
    ``<name>.prev`` so old lines never mix with this run's. True when this call moved or started it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = target.with_name(f".{target.name}.run")
    with open(target.with_name(f".{target.name}.lock"), "ab") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file closes
        try:
            if stamp.read_text(encoding="utf-8").strip() == run_id:
                return False
        except OSError:
            pass
        if target.exists():
            os.replace(target, target.with_name(target.name + PREVIOUS_SUFFIX))
        stamp.write_text(run_id + "\n", encoding="utf-8")
    return True


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
