"""Terminal output of ``tipc run``: live progress per running step, a summary that fits, and failure excerpts (rich)."""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

from harness.prepare import lookup, repository_script
from harness.status import StepResult, StepStatus, run_interrupted, totals_line

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

__all__ = [
    "FAILURE_LINES",
    "Progress",
    "cause_line",
    "failure_report",
    "last_line",
    "missing_data_hint",
    "root_warning",
    "summary",
    "use_live_display",
]

FAILURE_LINES: Final = 15  # log lines shown per failed step at the end of a run
HEARTBEAT_S: Final = 30.0  # plain mode: a line per running step this often, so CI logs never go quiet for long
_STYLES: Final = {
    "passed": "green",
    "failed": "bold red",
    "timeout": "bold yellow",
    "error": "bold magenta",
    "skipped": "dim",
}
_ANSI: Final = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# What a script says when its input is not there (the lite data is built by `tipc prepare`).
_MISSING: Final = re.compile(r"(No such file or directory|FileNotFoundError|not found|does not exist|no such file)", re.I)
_DATA_WORDS: Final = re.compile(r"(lite_data|dataset|data[/_ ]|images?|\.npz|\.json|label|annotation)", re.I)


def use_live_display(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """A redrawn display only on a terminal and outside CI (CI logs and pipes get one plain line per event)."""
    env = os.environ if environ is None else environ
    if env.get("CI") or env.get("TERM") == "dumb" or env.get("TIPC_PLAIN"):
        return False
    return stream.isatty()


def _width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


def _console(stream: TextIO, *, live: bool) -> Console:
    from rich.console import Console  # noqa: PLC0415  (rich loads only for the run display)

    # Not a terminal: no colours or cursor moves, and the width of the terminal the user would read it in.
    return Console(file=stream, force_terminal=live, no_color=not live, width=None if live else _width(),
                   highlight=False, soft_wrap=False)


def last_line(path: Path, *, limit: int = 160) -> str:
    """The last non-empty line of a log that is still being written (progress bars' carriage returns resolved)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8192))
            data = handle.read()
    except OSError:
        return ""
    text = _ANSI.sub("", data.decode("utf-8", "replace"))
    for line in reversed(re.split(r"[\r\n]+", text)):
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


class _Running:
    __slots__ = ("log", "name", "started")

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.started = time.monotonic()


class Progress:
    """What ``tipc run`` shows while steps run: a live table (terminal) or plain lines with a heartbeat (CI, pipes).

    ``start``/``finish`` may come from any thread; the display reads each running step's log for its last line.
    """

    def __init__(self, *, root: Path, stream: TextIO | None = None, live: bool | None = None,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.root = root
        self.stream = stream if stream is not None else sys.stdout
        self.live = use_live_display(self.stream) if live is None else live
        self.console = _console(self.stream, live=self.live)
        self.heartbeat_s = heartbeat_s
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: object | None = None
        self.done = 0

    def __enter__(self) -> Progress:
        if self.live:
            from rich.live import Live  # noqa: PLC0415

            live = Live(self, console=self.console, refresh_per_second=4, transient=True)
            live.start()
            self._live = live
        elif self.heartbeat_s > 0:
            self._thread = threading.Thread(target=self._beat, name="tipc-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._live is not None:
            self._live.stop()  # type: ignore[attr-defined]
            self._live = None

    def print(self, text: str, *, style: str | None = None) -> None:
        # rich markup is off: commands and log lines are full of square brackets.
        # soft_wrap: one event is one line however long (CI logs and greps read lines).
        self.console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def start(self, key: str, log_path: str) -> None:
        with self._lock:
            self._running[key] = _Running(key, self.root / log_path)
        if not self.live:
            self.print(f"{'RUN':<8} {key}")

    def finish(self, result: StepResult, *, hint: str = "") -> None:
        key = f"{result.chain_id}::{result.step_name}"
        with self._lock:
            self._running.pop(key, None)
            self.done += 1
        status = str(result.status)
        took = f"  [{result.duration_s:.1f} s]" if result.status is not StepStatus.SKIPPED else ""
        why = f"  ({result.reason})" if result.reason else ""
        shown = "FLAKY" if result.flaky else status.upper()
        self.print(f"{shown:<8} {key}{why}{took}", style=_STYLES.get(status) if self.live else None)
        if hint:
            self.print(f"         {hint}", style="yellow" if self.live else None)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                running = list(self._running.values())
            for entry in running:
                elapsed = time.monotonic() - entry.started
                line = last_line(entry.log)
                self.print(f"{'...':<8} {entry.name} running {elapsed:.0f} s{': ' + line if line else ''}")

    def __rich__(self) -> RenderableType:
        from rich.table import Table  # noqa: PLC0415

        table = Table.grid(padding=(0, 1), expand=False)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(overflow="ellipsis", no_wrap=True, ratio=1)
        with self._lock:
            running = list(self._running.values())
        for entry in running:
            elapsed = time.monotonic() - entry.started
            table.add_row(f"[cyan]RUNNING[/] {entry.name}", f"{elapsed:5.0f} s", f"[dim]{_escape(last_line(entry.log))}[/]")
        return table


def _escape(text: str) -> str:
    from rich.markup import escape  # noqa: PLC0415

    return escape(text)


_ERROR_LINE: Final = re.compile(r"^\s*(\w+\.)*\w*(Error|Exception|Interrupt|Exit)\b.*|.*\b(error|failed|fatal)\b.*", re.I)


def cause_line(log: Path, *, limit: int = 200) -> str:
    """The line of a failed step's log most likely to say why: its last error-looking line, else its last line.

    Lines the runner adds (``# exit code ...``) and traceback frames are passed over.
    """
    from harness.reports import read_log_tail  # noqa: PLC0415

    lines = [
        line.strip()
        for line in read_log_tail(log, 60).splitlines()
        if line.strip() and not line.startswith("#") and not line.lstrip().startswith(("File \"", "^", "~"))
    ]
    found = next((line for line in reversed(lines) if _ERROR_LINE.match(line)), lines[-1] if lines else "")
    return found if len(found) <= limit else found[: limit - 1] + "…"


def summary(results: Sequence[StepResult], console: Console, *, root: Path | None = None) -> None:
    """A table of every step (step, status, seconds, reason) sized to the console, then the totals line."""
    from rich import box  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    table.add_column("step", overflow="fold", ratio=3)
    table.add_column("status", no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=2)
    for r in results:
        status = str(r.status)
        table.add_row(
            f"{r.chain_id}::{r.step_name}",
            "FLAKY" if r.flaky else status.upper(),
            f"{r.duration_s:.1f}" if r.status is not StepStatus.SKIPPED else "-",
            _reason(r, root),
            style=_STYLES.get(status) if console.is_terminal else None,
        )
    console.print(table)
    flaky = sum(1 for r in results if r.flaky)
    note = f" ({flaky} of them flaky: passed only on a re-run)" if flaky else ""
    console.print(totals_line(results) + note, markup=False, highlight=False)
    stopped = run_interrupted(results)
    if stopped is not None:
        console.print(f"run {stopped}: the step running then is failed, later steps are skipped", markup=False,
                      highlight=False)


def _reason(result: StepResult, root: Path | None) -> str:
    """The summary's reason: for a failure, the harness's reason and the log line that says why."""
    if not result.failed or root is None:
        return result.reason
    cause = cause_line(root / result.log_path)
    return f"{result.reason}: {cause}" if cause else result.reason


def failure_report(results: Sequence[StepResult], *, root: Path, hints: Mapping[str, str] | None = None,
                   lines: int = FAILURE_LINES) -> list[str]:
    """For each failed step: its name and one-line reason, the log path, then the log's last ``lines`` lines."""
    from harness.reports import read_log_tail  # noqa: PLC0415

    out: list[str] = []
    for r in results:
        if not r.failed:
            continue
        key = f"{r.chain_id}::{r.step_name}"
        out += ["", f"{str(r.status).upper()} {key}: {_reason(r, root) or r.status}", f"  log: {root / r.log_path}"]
        hint = (hints or {}).get(key)
        if hint:
            out.append(f"  {hint}")
        tail = read_log_tail(root / r.log_path, lines)
        if tail.strip():
            out.append(f"  ---- last {lines} lines ----")
            out += [f"  {line}" for line in tail.splitlines()]
        else:
            out.append("  (the log is empty)")
    return out


def missing_data_hint(result: StepResult, *, root: Path, config: str, mode: str) -> str:
    """'input data missing: run `tipc prepare CONFIG MODE`' when a failed step's log says its data is not there.

    Only where `tipc prepare` has something to run: this project's generator for the config's folder, or the
    repository's own test_tipc/prepare.sh.
    """
    if not result.failed or (lookup(config, root) is None and repository_script(root) is None):
        return ""
    from harness.reports import read_log_tail  # noqa: PLC0415

    for line in read_log_tail(root / result.log_path, 40).splitlines():
        if _MISSING.search(line) and _DATA_WORDS.search(line):
            return f"input data missing? build it first: tipc prepare {config} {mode}"
    return ""


def root_warning(root: Path, output_dir: str) -> str:
    """A warning when ``root`` is not a repository root (no test_tipc/configs under it), naming where output goes."""
    if (root / "test_tipc" / "configs").is_dir():
        return ""
    return (
        f"warning: {root} has no test_tipc/configs, so it does not look like a repository root "
        f"(run from the repository root or pass --root); output goes to {root / output_dir}"
    )
