"""Reports over step results: JUnit merge and comparison (junitparser), a self-contained HTML page (jinja2)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from harness.environment import ENVIRONMENT_FILE, RunEnvironment, read_environment
from harness.errors import CommandFailed, HarnessError
from harness.history import FIXED, FLAKY, NEW_FAILURE, HistoryRow, classify, trends
from harness.status import INTERRUPTED_REASON, StepResult, parse_results_line
from harness.steps import Chain, Plan, Step

if TYPE_CHECKING:
    import jinja2
    import junitparser

__all__ = [
    "KIND_ORDER",
    "interrupted_runs",
    "PROPERTY_NAMES",
    "RESULTS_LOG",
    "SIDECAR",
    "TAIL_LINES",
    "append_record",
    "CaseRecord",
    "compare_records",
    "Comparison",
    "JunitTotals",
    "load_junit",
    "merge_junit",
    "read_log_tail",
    "records_from_run_dir",
    "register_cli",
    "render_html",
    "ReportError",
    "command_failed",
    "failure_signature",
    "failure_text",
    "load_junit_environment",
    "step_record",
    "step_trainer",
]

# The names of the <property> elements the pytest plugin writes into each <testcase> (via item.user_properties).
PROPERTY_NAMES: Final = (
    "model",
    "mode",
    "config",
    "chain",
    "trainer",
    "step",
    "kind",
    "command",
    "log_path",
    "returncode",
    "duration_s",
    "status",
    "reason",
    "flaky",
    "attempts",
)
# Grid columns, in chain order; kinds the plan may add later are appended after these.
KIND_ORDER: Final = ("prepare", "setup", "train", "eval", "export", "kl_quant", "paddle2onnx", "infer", "compare", "check")
# "flaky": failed, then passed on a re-run (--tipc-reruns); counted apart from plain passes everywhere.
STATUSES: Final = ("passed", "flaky", "failed", "timeout", "error", "skipped")
FAILING: Final = frozenset({"failed", "timeout", "error"})
# Worst first: a grid cell takes the colour of the worst status among its steps.
_SEVERITY: Final = {"error": 0, "timeout": 1, "failed": 2, "flaky": 3, "skipped": 4, "passed": 5}
# `tipc report compare` lists at most this many steps per group unless --limit says otherwise.
COMPARE_LIMIT: Final = 20
# Environment values the pytest plugin writes as JUnit <testsuite> properties: tipc_env_<field>.
ENV_PROPERTY_PREFIX: Final = "tipc_env_"
TAIL_LINES: Final = 30
RESULTS_LOG: Final = "results_python.log"
SIDECAR: Final = "results.jsonl"  # one CaseRecord per line, next to results_python.log
_TEMPLATE: Final = "report.html.j2"


class ReportError(Exception):
    """An input a report cannot be built from (missing or malformed file); the CLI shows it as one line."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CaseRecord:
    """One step's outcome, whichever source it came from (JUnit XML, or a run folder's results logs)."""

    key: str  # stable identity across runs: config::mode::chain::step (or the JUnit classname::name)
    model: str
    mode: str
    config: str = ""
    chain: str = ""
    trainer: str = ""
    step: str = ""
    kind: str = ""
    status: str  # one of STATUSES
    duration_s: float = 0.0
    command: str = ""
    log_path: str = ""  # relative to the run root
    returncode: str = ""
    reason: str = ""  # skip reason, or the failure's one-line summary
    details: str = ""  # failure text: command, exit code, log path, last lines of the log
    tipc: bool = True  # False for ordinary test cases that share a JUnit file with the chains
    attempts: int = 1  # >1: the step was re-run (--tipc-reruns); status "flaky" when a re-run passed

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JunitTotals:
    files: int
    tests: int
    failures: int
    errors: int
    skipped: int
    duplicates: tuple[str, ...] = ()  # case keys found in more than one input (overlapping shards)

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped

    def line(self) -> str:
        return (
            f"{self.tests} tests from {self.files} file{'s' if self.files != 1 else ''}: {self.passed} passed, "
            f"{self.failures} failed, {self.errors} errors, {self.skipped} skipped"
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    newly_failing: tuple[CaseRecord, ...]
    newly_passing: tuple[CaseRecord, ...]
    still_failing: tuple[CaseRecord, ...]
    missing: tuple[str, ...]  # keys present in the old run only

    def to_json(self) -> dict[str, object]:
        def rows(records: Sequence[CaseRecord]) -> list[dict[str, str]]:
            return [{"key": r.key, "status": r.status, "reason": r.reason} for r in records]

        return {
            "newly_failing": rows(self.newly_failing),
            "newly_passing": rows(self.newly_passing),
            "still_failing": rows(self.still_failing),
            "missing": list(self.missing),
        }

    def text(self, *, limit: int = COMPARE_LIMIT) -> str:
        """Counts and the first ``limit`` entries of each list (0: no limit), with how many were left out."""
        out: list[str] = []

        def listed(lines: Sequence[str]) -> None:
            shown = lines if limit <= 0 else lines[:limit]
            out.extend(f"  {line}" for line in shown)
            if len(lines) > len(shown):
                out.append(f"  ... and {len(lines) - len(shown)} more (--limit 0 lists all, --format json too)")

        for title, records in (
            ("newly failing", self.newly_failing),
            ("newly passing", self.newly_passing),
            ("still failing", self.still_failing),
        ):
            out.append(f"{title}: {len(records)}")
            listed([f"{r.key} ({r.status}{': ' + r.reason if r.reason else ''})" for r in records])
        if self.missing:
            out.append(f"not in the new run: {len(self.missing)}")
            listed(list(self.missing))
        return "\n".join(out)


# --------------------------------------------------------------------------- JUnit input


def _read_junit(path: Path) -> junitparser.JUnitXml:
    import junitparser  # noqa: PLC0415  (on use: it pulls in importlib.metadata, slow for every other command)

    try:
        return junitparser.JUnitXml.fromfile(str(path))
    except FileNotFoundError:
        msg = f"{path}: no such file"
        raise ReportError(msg) from None
    except (OSError, junitparser.JUnitXmlError) as exc:
        msg = f"{path}: not a JUnit XML file ({exc})"
        raise ReportError(msg) from None
    except Exception as exc:  # the XML parser's own error types differ between lxml and ElementTree
        msg = f"{path}: not valid XML ({exc})"
        raise ReportError(msg) from None


def _properties(case: junitparser.TestCase) -> dict[str, str]:
    import junitparser  # noqa: PLC0415

    props = case.child(junitparser.Properties)  # type: ignore[no-untyped-call]  # junitparser is untyped here
    if props is None:
        return {}
    return {str(p.name): str(p.value or "") for p in props}


def _case_status(case: junitparser.TestCase, props: Mapping[str, str]) -> tuple[str, str, str]:
    """(status, one-line reason, details) of a test case."""
    import junitparser  # noqa: PLC0415

    for result in case.result:
        message = str(result.message or "")
        text = str(result.text or "")
        if isinstance(result, junitparser.Skipped):
            # pytest writes "path:line: reason" into the message; the plugin's own reason is cleaner when present.
            return "skipped", props.get("reason") or _skip_reason(message), text
        if isinstance(result, junitparser.Error):
            return "error", props.get("reason") or message, text
        if isinstance(result, junitparser.Failure):
            status = props.get("status", "")
            return (status if status in FAILING else "failed"), props.get("reason") or message, text
    if props.get("flaky") == "true":
        return "flaky", props.get("reason", ""), ""
    return "passed", "", ""


def _skip_reason(message: str) -> str:
    # pytest's skip messages look like "path:12: needs train, which failed".
    match = re.match(r"^\S+:\d+: (.*)$", message, re.S)
    return match.group(1) if match else message


def _records_of(xml: junitparser.JUnitXml) -> list[CaseRecord]:
    records: list[CaseRecord] = []
    for suite in xml:
        for case in suite:
            props = _properties(case)
            status, reason, details = _case_status(case, props)
            classname = str(case.classname or "")
            name = str(case.name or "")
            duration = float(case.time or 0.0)
            if "model" in props:
                records.append(
                    CaseRecord(
                        key="::".join((props.get("config", classname), props.get("mode", ""), props.get("chain", ""), props.get("step", name))),
                        model=props["model"],
                        mode=props.get("mode", ""),
                        config=props.get("config", ""),
                        chain=props.get("chain", ""),
                        trainer=props.get("trainer", ""),
                        step=props.get("step", name),
                        kind=props.get("kind", ""),
                        status=status,
                        duration_s=_float(props.get("duration_s"), duration),
                        command=props.get("command", ""),
                        log_path=props.get("log_path", ""),
                        returncode=props.get("returncode", ""),
                        reason=reason,
                        details=details,
                        attempts=_int(props.get("attempts"), 1),
                    )
                )
            elif not classname and name.endswith(".txt") and status == "error":
                # A config that did not parse: pytest reports the file as one case with the error line as text.
                records.append(
                    CaseRecord(
                        key=name,
                        model=_model_from_mangled(name),
                        mode="",
                        config=name,
                        step="(collect)",
                        kind="collect",
                        status="error",
                        reason=_first_line(details) or reason,
                        details=details,
                    )
                )
            else:
                records.append(
                    CaseRecord(
                        key=f"{classname}::{name}" if classname else name,
                        model="",
                        mode="",
                        step=name,
                        status=status,
                        duration_s=duration,
                        reason=reason,
                        details=details,
                        tipc=False,
                    )
                )
    return records


def _float(text: str | None, fallback: float) -> float:
    try:
        return float(text) if text else fallback
    except ValueError:
        return fallback


def _int(text: str | None, fallback: int) -> int:
    try:
        return int(text) if text else fallback
    except ValueError:
        return fallback


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _model_from_mangled(name: str) -> str:
    # "test_tipc.configs.<model>.<file>.txt": JUnit turned the path's slashes into dots.
    parts = name.split(".")
    return parts[2] if len(parts) > 4 and parts[:2] == ["test_tipc", "configs"] else "(config)"


def load_junit(paths: Iterable[Path], *, logs_beside: Path | None = None) -> tuple[CaseRecord, ...]:
    """Every test case of the given JUnit files, TIPC steps and ordinary tests alike (see CaseRecord.tipc).

    ``logs_beside``: each file's log paths are relative to the folder holding that file (a CI cell's own folder);
    they are rewritten relative to ``logs_beside`` (the report's log root).
    """
    records: list[CaseRecord] = []
    for path in paths:
        found = _records_of(_read_junit(path))
        if logs_beside is not None:
            base = path.resolve().parent
            top = logs_beside.resolve()
            found = [
                dataclasses.replace(r, log_path=Path(os.path.relpath(base / r.log_path, top)).as_posix())
                if r.log_path and not Path(r.log_path).is_absolute()
                else r
                for r in found
            ]
        records.extend(found)
    return tuple(records)


def load_junit_environment(paths: Iterable[Path]) -> RunEnvironment | None:
    """The run environment the pytest plugin wrote as ``tipc_env_*`` suite properties (the first file that has one)."""
    import junitparser  # noqa: PLC0415  (on use: start-up)

    for path in paths:
        xml = _read_junit(path)
        suites = [xml] if isinstance(xml, junitparser.TestSuite) else list(xml)
        for suite in suites:
            values = {
                str(p.name)[len(ENV_PROPERTY_PREFIX) :]: str(p.value or "")
                for p in suite.properties()  # type: ignore[no-untyped-call]
                if str(p.name).startswith(ENV_PROPERTY_PREFIX)
            }
            if values:
                return RunEnvironment.from_json(values)
    return None


def merge_junit(paths: Sequence[Path], output: Path) -> JunitTotals:
    """Combine several JUnit files (one per shard) into one ``<testsuites>`` file and count what it holds."""
    if not paths:
        msg = "no JUnit files to merge"
        raise ReportError(msg)
    import junitparser  # noqa: PLC0415

    merged = junitparser.JUnitXml(name="tipc")
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    for path in paths:
        xml = _read_junit(path)
        for record in _records_of(xml):
            if record.key in seen and seen[record.key] != str(path):
                duplicates.append(record.key)
            seen.setdefault(record.key, str(path))
        for suite in xml:
            # Append, not add_testsuite: two shards' suites can look equal (same name, no timestamp) and must
            # still stay two suites.
            merged.append(suite)  # type: ignore[no-untyped-call]
    merged.update_statistics()  # type: ignore[no-untyped-call]
    output.parent.mkdir(parents=True, exist_ok=True)
    merged.write(str(output))
    return JunitTotals(
        files=len(paths),
        tests=int(merged.tests or 0),
        failures=int(merged.failures or 0),
        errors=int(merged.errors or 0),
        skipped=int(merged.skipped or 0),
        duplicates=tuple(duplicates),
    )


def compare_records(old: Sequence[CaseRecord], new: Sequence[CaseRecord]) -> Comparison:
    """What changed between two runs, keyed by step identity; steps new in the new run count as 'newly'."""
    before = {r.key: r for r in old}
    after = {r.key: r for r in new}
    newly_failing = [r for r in after.values() if r.failing and not (r.key in before and before[r.key].failing)]
    newly_passing = [r for r in after.values() if r.status == "passed" and r.key in before and before[r.key].failing]
    still_failing = [r for r in after.values() if r.failing and r.key in before and before[r.key].failing]
    missing = [key for key in before if key not in after]
    return Comparison(
        newly_failing=tuple(sorted(newly_failing, key=lambda r: r.key)),
        newly_passing=tuple(sorted(newly_passing, key=lambda r: r.key)),
        still_failing=tuple(sorted(still_failing, key=lambda r: r.key)),
        missing=tuple(sorted(missing)),
    )


# --------------------------------------------------------------------------- run folder input

def read_log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when it cannot be read); logs may be large, so read the end only."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _status_of_reason(reason: str) -> str:
    if reason.startswith(INTERRUPTED_REASON):
        return "failed"  # the step a signal stopped
    if reason.startswith("timed out"):
        return "timeout"
    if reason.startswith(("exit code", "killed by")):
        return "failed"
    return "error"


_KIND_WORDS: Final = ("compare", "kl_quant", "export", "eval", "infer")


def _kind_of(text: str) -> str:
    """A step kind guessed from a log file name or a command (the results log does not name kinds)."""
    lowered = text.lower()
    for kind in _KIND_WORDS:
        if kind in lowered or (kind == "eval" and "--test-only" in lowered):
            return kind
    return "train"


def _chain_and_step(log: str, mode: str) -> tuple[str, str]:
    """(chain, step) from a TIPC log path: ``<mode>/<chain>.log`` (train), ``<mode>/<chain>_eval.log``,
    ``<mode>/<chain>_export.log``, ``<mode>/<chain>/python_infer_*.log``; chain folders keep ``0,1`` in paths
    where chain ids say ``0-1``."""
    path = Path(log)
    stem = path.stem
    if path.parent.name != mode:
        return _NODE_UNSAFE.sub("-", path.parent.name), stem
    for suffix in ("_eval", "_export", "_kl_quant", "_train"):
        if stem.endswith(suffix) and "_gpus_" in stem:
            return _NODE_UNSAFE.sub("-", stem[: -len(suffix)]), suffix[1:]
    if "_gpus_" in stem:
        return _NODE_UNSAFE.sub("-", stem), "train"
    return mode, stem


_NODE_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]")


def step_trainer(step: Step, chain: Chain) -> str:
    """The trainer a step belongs to (its tag), else the chain id's prefix."""
    for tag in step.tags:
        if tag.endswith("_train") or tag == "kl_quant":
            return tag
    return chain.id.split("_gpus_", 1)[0]


def failure_text(*, command: str, returncode: int | None, log_path: str, reason: str, tail: str) -> str:
    """What a reader needs about a failed command: command, exit code, log path and the end of the log."""
    code = "none (it did not exit by itself)" if returncode is None else str(returncode)
    lines = [f"command:   {command}", f"exit code: {code}", f"log:       {log_path}"]
    if reason and reason != f"exit code {returncode}":
        lines.append(f"reason:    {reason}")  # timeouts, signals, a missing executable
    tail = tail.rstrip("\n")
    lines.append(f"---- last {TAIL_LINES} lines of the log ----" if tail else "---- the log is empty ----")
    if tail:
        lines.append(tail)
    return "\n".join(lines)


def command_failed(result: StepResult, *, root: Path) -> CommandFailed | None:
    """The failure of a step that did not pass (with the end of its log), or None for passed/skipped steps."""
    if not result.failed:
        return None
    return CommandFailed(
        command=result.command,
        returncode=result.returncode,
        log_path=result.log_path,
        reason=result.reason or str(result.status),
        tail=read_log_tail(root / result.log_path, TAIL_LINES),
    )


def step_record(
    *, config: str, plan: Plan, chain: Chain, step: Step, result: StepResult, failure: CommandFailed | None
) -> CaseRecord:
    """The sidecar/report record of one step's result; the CLI and the pytest plugin both write these."""
    details = ""
    if failure is not None:
        details = failure_text(
            command=failure.command,
            returncode=failure.returncode,
            log_path=failure.log_path,
            reason=failure.reason,
            tail=failure.tail,
        )
    return CaseRecord(
        key=f"{config}::{plan.mode}::{chain.id}::{step.name}",
        model=plan.model_name,
        mode=plan.mode,
        config=config,
        chain=chain.id,
        trainer=step_trainer(step, chain),
        step=step.name,
        kind=str(step.kind),
        status="flaky" if result.flaky else str(result.status),
        duration_s=round(result.duration_s, 3),
        command=result.command,
        log_path=result.log_path,
        returncode="" if result.returncode is None else str(result.returncode),
        reason=result.reason,
        details=details,
        attempts=result.attempts,
    )


def append_record(path: Path, record: CaseRecord) -> None:
    """Append one record to a ``results.jsonl`` sidecar in a single O_APPEND write (safe from several workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record.to_json(), sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def _records_from_sidecar(path: Path) -> list[CaseRecord]:
    records: list[CaseRecord] = []
    fields = {f.name for f in dataclasses.fields(CaseRecord)}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            records.append(CaseRecord(**{k: v for k, v in data.items() if k in fields}))
        except (ValueError, TypeError) as exc:
            msg = f"{path}:{number}: not a result record ({exc})"
            raise ReportError(msg) from None
    return records


def _records_from_results_log(results: Path, *, root: Path) -> list[CaseRecord]:
    mode = results.parent.name
    try:
        lines = results.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        msg = f"{results}: cannot read ({exc.strerror or exc})"
        raise ReportError(msg) from None
    records: list[CaseRecord] = []
    for number, raw in enumerate(lines, start=1):
        parsed = parse_results_line(raw)  # the format is status.py's contract
        if parsed is None:
            continue
        fields = {"model": parsed.model, "command": parsed.command}
        log = parsed.log_path
        reason = parsed.reason
        if parsed.status == "successfully":
            status = "passed"
        elif parsed.status == "skipped":
            status = "skipped"
        else:
            status = _status_of_reason(reason)
        if log:
            chain, step = _chain_and_step(log, mode)
            kind = _kind_of(step) if step != "train" else "train"
        else:  # a skipped line names no log; the command still tells the kind
            chain, step, kind = "", f"skipped-line-{number}", _kind_of(fields["command"])
        details = ""
        if status in FAILING and log:
            log_file = Path(log) if Path(log).is_absolute() else root / log
            details = f"command: {fields['command']}\nlog: {log}\nreason: {reason}\n\n{read_log_tail(log_file)}"
        records.append(
            CaseRecord(
                key=f"{fields['model']}::{mode}::{chain}::{step}",
                model=fields["model"],
                mode=mode,
                chain=chain,
                step=step,
                kind=kind,
                status=status,
                command=fields["command"],
                log_path=log,
                reason=reason,
                details=details,
            )
        )
    return records


def records_from_run_dir(run_dir: Path, *, root: Path) -> tuple[CaseRecord, ...]:
    """Records of every run under ``run_dir`` (``test_tipc/output``), one ``<model>/<mode>`` folder at a time.

    A folder with a ``results.jsonl`` sidecar (the pytest plugin writes one) is read from it exactly. Otherwise its
    ``results_python.log`` (the TIPC text contract, which names neither chains nor steps) is parsed and chain, step
    and kind are recovered from each log path; failure details are the last lines of the step's log under ``root``.
    """
    if not run_dir.is_dir():
        msg = f"{run_dir}: no such folder"
        raise ReportError(msg)
    records: list[CaseRecord] = []
    folders = sorted({p.parent for p in run_dir.rglob(RESULTS_LOG)} | {p.parent for p in run_dir.rglob(SIDECAR)})
    for folder in folders:
        if (folder / SIDECAR).is_file():
            records.extend(_records_from_sidecar(folder / SIDECAR))
        else:
            records.extend(_records_from_results_log(folder / RESULTS_LOG, root=root))
    return tuple(records)


# --------------------------------------------------------------------------- HTML


def _environment() -> jinja2.Environment:
    # Imported here: the pytest plugin imports this module on every run and never renders HTML.
    import jinja2  # noqa: PLC0415

    # autoescape on for everything: commands and log excerpts are full of <, > and & (shell redirections, C++).
    return jinja2.Environment(
        loader=jinja2.PackageLoader("harness", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _worst(statuses: Iterable[str]) -> str:
    return min(statuses, key=lambda s: _SEVERITY.get(s, 0), default="none")


def _href(log_path: str, *, log_root: Path | None, report_dir: Path) -> str:
    """A relative link to a log file, or '' when there is nothing to link to (so the report has no dead links)."""
    if not log_path or log_root is None:
        return ""
    target = Path(log_path) if Path(log_path).is_absolute() else log_root / log_path
    if not target.is_file():
        return ""
    return Path(os.path.relpath(target.resolve(), report_dir.resolve())).as_posix()


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "--".join(parts)).strip("-") or "x"


_TAIL_MARK: Final = re.compile(r"^---- (last \d+ lines of the log|the log is empty) ----$", re.M)
_PATHISH: Final = re.compile(r"\S*[/\\]\S*")
_NUMBERS: Final = re.compile(r"\d+(\.\d+)?")


def _pattern(text: str) -> str:
    """A line with what differs between chains blanked out: paths and numbers."""
    return _NUMBERS.sub("#", _PATHISH.sub("<path>", text)).strip()


def failure_signature(record: CaseRecord, *, lines: int = 3) -> tuple[str, str, str]:
    """(status, reason pattern, log tail pattern): failures with the same signature have the same cause."""
    details = record.details
    mark = _TAIL_MARK.search(details)
    tail = details[mark.end() :] if mark else details.split("\n\n", 1)[-1]
    last = [line for line in tail.splitlines() if line.strip()][-lines:]
    return record.status, _pattern(record.reason), "\n".join(_pattern(line) for line in last)


def _results_log_href(group: Sequence[CaseRecord], *, log_root: Path | None, report_dir: Path) -> str:
    """The model x mode's results_python.log: the folder above its logs that holds one."""
    if log_root is None:
        return ""
    for record in group:
        if not record.log_path:
            continue
        folder = Path(record.log_path).parent
        while folder.parts:
            candidate = (folder / RESULTS_LOG).as_posix()
            href = _href(candidate, log_root=log_root, report_dir=report_dir)
            if href:
                return href
            folder = folder.parent
    return ""


_CHART_W: Final = 180
_CHART_H: Final = 44


def _chart(points: Sequence[tuple[str, float, int, int]]) -> dict[str, object]:
    """SVG coordinates for one model x mode's trend: total seconds per run, a red dot where a step failed."""
    if not points:
        return {"line": "", "dots": [], "width": _CHART_W, "height": _CHART_H, "label": ""}
    seconds = [p[1] for p in points]
    low, top = min(seconds), max(seconds)
    span = top - low
    step = (_CHART_W - 8) / max(len(points) - 1, 1)
    dots = []
    for i, (when, total, passed, failing) in enumerate(points):
        x = 4 + i * step
        # Scaled between the fastest and the slowest run, so a drift of a few percent is visible.
        y = _CHART_H / 2 if span <= 0 else _CHART_H - 4 - ((total - low) / span) * (_CHART_H - 8)
        dots.append(
            {
                "x": f"{x:.1f}",
                "y": f"{y:.1f}",
                "failing": failing > 0,
                "title": f"{when[:16]}: {total:.1f} s, {passed} passed, {failing} failing",
            }
        )
    return {
        "line": " ".join(f"{d['x']},{d['y']}" for d in dots),
        "dots": dots,
        "width": _CHART_W,
        "height": _CHART_H,
        "label": f"{len(points)} runs, last {seconds[-1]:.1f} s (range {low:.1f} to {top:.1f} s)",
    }


def _history_view(rows: Sequence[HistoryRow], current_keys: Iterable[str]) -> dict[str, object]:
    verdicts = classify(rows)
    wanted = frozenset(current_keys)
    changed = [v for v in verdicts if v.key in wanted and v.verdict in (NEW_FAILURE, FIXED, FLAKY)]
    charts = {(t.model, t.mode): _chart(t.points[-20:]) for t in trends(rows)}
    return {"runs": len({r.run_id for r in rows}), "changed": changed, "charts": charts}


def render_html(
    records: Sequence[CaseRecord],
    *,
    report_path: Path,
    log_root: Path | None,
    title: str = "TIPC report",
    sources: Sequence[str] = (),
    generated: datetime.datetime | None = None,
    environment: RunEnvironment | None = None,
    history: Sequence[HistoryRow] | None = None,
) -> str:
    """The report page: environment, a model x mode x step-kind grid coloured by status, failures grouped by
    cause, what changed since the last recorded run with a duration chart per model x mode, then every step."""
    steps = [r for r in records if r.tipc]
    others = [r for r in records if not r.tipc]
    kinds = [k for k in KIND_ORDER if any(r.kind == k for r in steps)]
    kinds += sorted({r.kind for r in steps if r.kind and r.kind not in KIND_ORDER})
    report_dir = report_path.parent
    view = _history_view(history, (r.key for r in steps)) if history else None
    charts: Mapping[tuple[str, str], object] = view["charts"] if view else {}  # type: ignore[assignment]

    rows = []
    for model, mode in sorted({(r.model, r.mode) for r in steps}):
        group = [r for r in steps if r.model == model and r.mode == mode]
        cells = []
        for kind in kinds:
            members = [r for r in group if r.kind == kind]
            counts = {s: sum(1 for r in members if r.status == s) for s in STATUSES}
            cells.append(
                {
                    "kind": kind,
                    "status": _worst(r.status for r in members),
                    "counts": [(s, n) for s, n in counts.items() if n],
                    "duration": sum(r.duration_s for r in members),
                }
            )
        rows.append(
            {
                "model": model,
                "mode": mode,
                "anchor": _slug(model, mode),
                "cells": cells,
                "results_href": _results_log_href(group, log_root=log_root, report_dir=report_dir),
                "chart": charts.get((model, mode)),
            }
        )

    # Failures with the same cause (status, reason and the pattern of the log's last lines) form one block.
    groups: dict[tuple[str, str, str], dict[str, object]] = {}
    details: list[dict[str, object]] = []
    anchored: set[str] = set()
    # A stable sort: inside one model/mode/config/chain the steps keep their run order.
    for r in sorted(steps, key=lambda r: (r.model, r.mode, r.config, r.chain)):
        anchor = _slug(r.model, r.mode)
        href = "" if r.status == "skipped" else _href(r.log_path, log_root=log_root, report_dir=report_dir)
        item: dict[str, object] = {
            "record": r,
            "anchor": "" if anchor in anchored else anchor,  # the grid links to a group's first row
            "href": href,
            "log_name": Path(r.log_path).name if r.log_path and r.status != "skipped" else "",
            "fail_id": "",
        }
        if r.failing:
            signature = failure_signature(r)
            block = groups.get(signature)
            if block is None:
                block = {
                    "id": f"failure-{len(groups) + 1}",
                    "status": r.status,
                    "reason": r.reason,
                    "excerpt": r.details.strip() or r.reason,
                    "href": href,
                    "log_path": r.log_path,
                    "members": [],
                }
                groups[signature] = block
            listed = block["members"]
            assert isinstance(listed, list)
            listed.append(item)
            item["fail_id"] = block["id"]
        details.append(item)
        anchored.add(anchor)
    totals = {s: sum(1 for r in steps if r.status == s) for s in STATUSES}
    when = (generated or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    template = _environment().get_template(_TEMPLATE)
    return template.render(
        title=title,
        generated=when,
        sources=list(sources),
        environment=environment.rows() if environment else (),
        kinds=kinds,
        rows=rows,
        details=details,
        failure_groups=list(groups.values()),
        failing=sum(1 for r in steps if r.failing),
        history=view,
        totals=totals,
        total=len(steps),
        duration=sum(r.duration_s for r in steps),
        statuses=STATUSES,
        others=len(others),
        others_failing=[r for r in others if r.failing],
        interrupted=interrupted_runs(records),
    )


def interrupted_runs(records: Sequence[CaseRecord]) -> list[str]:
    """One line per model/mode whose run a signal stopped: ``<model> <mode>: <step> interrupted by SIGTERM``."""
    return [
        f"{r.model} {r.mode}: {r.chain}::{r.step} {r.reason}" if r.chain else f"{r.model} {r.mode}: {r.reason}"
        for r in records
        if r.status == "failed" and r.reason.startswith(INTERRUPTED_REASON)
    ]


# --------------------------------------------------------------------------- CLI


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(f"tipc report: {text}\n")


def _record_history(url: str, records: Sequence[CaseRecord], *, environment: RunEnvironment | None,
                    log_root: Path, source: str, run_id: str = "") -> None:
    from harness.history import History  # noqa: PLC0415

    with History(url) as history:
        run = history.record_run(
            records, environment=environment or RunEnvironment(), run_id=run_id, source=source, log_root=log_root
        )
    _out(f"recorded run {run} in the history")


def _newest_environment(run_dir: Path) -> RunEnvironment | None:
    """The environment.json that `tipc run` wrote most recently under a run folder (one per model x mode)."""
    found = sorted(run_dir.rglob(ENVIRONMENT_FILE), key=lambda p: (p.stat().st_mtime, str(p)))
    return read_environment(found[-1]) if found else None


def _cmd_merge(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.files]
    try:
        totals = merge_junit(paths, Path(args.output))
        if args.history:
            root = Path(args.log_root) if args.log_root else Path.cwd()
            records = load_junit(paths, logs_beside=root if args.logs_beside_xml else None)
            _record_history(args.history, records, environment=load_junit_environment(paths), log_root=root,
                            source="merge", run_id=args.run_id or "")
    except (ReportError, HarnessError) as exc:
        _err(str(exc))
        return 2
    _out(f"merged into {args.output}: {totals.line()}")
    if totals.duplicates:
        _err(f"warning: {len(totals.duplicates)} test cases appear in more than one file (overlapping shards?)")
        for key in totals.duplicates[:20]:
            _err(f"  {key}")
    return 0


def _cmd_html(args: argparse.Namespace) -> int:
    output = Path(args.output)
    root = Path(args.log_root) if args.log_root else Path.cwd()
    try:
        if args.run_dir:
            records = records_from_run_dir(Path(args.run_dir), root=root)
            sources = [args.run_dir]
            environment = _newest_environment(Path(args.run_dir))
        else:
            if not args.files:
                _err("give JUnit XML files or --run-dir")
                return 2
            paths = [Path(p) for p in args.files]
            records = load_junit(paths, logs_beside=root if args.logs_beside_xml else None)
            sources = list(args.files)
            environment = load_junit_environment(paths)
        rows = None
        if args.history:
            from harness.history import History  # noqa: PLC0415

            with History(args.history) as history:
                rows = history.rows(last_runs=args.history_runs)
    except (ReportError, HarnessError) as exc:
        _err(str(exc))
        return 2
    page = render_html(records, report_path=output, log_root=root, title=args.title, sources=sources,
                       environment=environment, history=rows)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    steps = [r for r in records if r.tipc]
    failing = sum(1 for r in steps if r.failing)
    _out(f"wrote {output}: {len(steps)} steps, {failing} failing")
    for line in interrupted_runs(records):
        _out(f"run interrupted: {line}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    try:
        comparison = compare_records(load_junit([Path(args.old)]), load_junit([Path(args.new)]))
    except ReportError as exc:
        _err(str(exc))
        return 2
    if args.format == "json":
        _out(json.dumps(comparison.to_json(), indent=2))
    else:
        _out(comparison.text(limit=args.limit))
    # Non-zero only for regressions, so CI can gate on "nothing new broke" while old failures are being fixed.
    return 1 if comparison.newly_failing else 0


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``tipc report merge|html|compare`` to the harness CLI."""
    report = subparsers.add_parser("report", help="merge, render and compare JUnit reports of TIPC runs")
    actions = report.add_subparsers(dest="report_command", metavar="{merge,html,compare}", required=True)
    history_help = "run history: a SQLite file or a SQLAlchemy URL (postgresql://user:pw@host/db)"
    beside_help = "each JUnit file's log paths are relative to its own folder (one folder per CI cell)"

    merge = actions.add_parser("merge", help="combine shard JUnit XML files and print the totals")
    merge.add_argument("files", nargs="+", help="JUnit XML files (one per shard)")
    merge.add_argument("-o", "--output", required=True, help="merged JUnit XML file to write")
    merge.add_argument("--history", default=None, metavar="URL", help=f"record the merged run in the {history_help}")
    merge.add_argument("--run-id", default=None, help="id of the recorded run (default: a new one; same id replaces)")
    merge.add_argument("--log-root", default=None, help="run root the log paths are relative to (default: cwd)")
    merge.add_argument("--logs-beside-xml", action="store_true", help=beside_help)
    merge.set_defaults(handler=_cmd_merge)

    html = actions.add_parser("html", help="render a self-contained HTML report")
    html.add_argument("files", nargs="*", help="JUnit XML files written by pytest --junitxml (or merged)")
    html.add_argument("--run-dir", default=None, help="read results_python.log files under this folder instead")
    html.add_argument("-o", "--output", default="reports/report.html", help="HTML file (default: reports/report.html)")
    html.add_argument("--log-root", default=None, help="run root the log paths are relative to (default: cwd)")
    html.add_argument("--logs-beside-xml", action="store_true", help=beside_help)
    html.add_argument("--title", default="TIPC report")
    html.add_argument("--history", default=None, metavar="URL", help=f"add 'new since last run' and trends from the {history_help}")
    html.add_argument("--history-runs", type=int, default=20, metavar="N", help="runs the trend charts show (default: 20)")
    html.set_defaults(handler=_cmd_html)

    compare = actions.add_parser("compare", help="newly failing / newly passing / still failing between two runs")
    compare.add_argument("old", help="JUnit XML of the earlier run")
    compare.add_argument("new", help="JUnit XML of the later run")
    compare.add_argument("--format", choices=("text", "json"), default="text")
    compare.add_argument(
        "--limit", type=int, default=COMPARE_LIMIT, metavar="N",
        help=f"list at most N steps per group in text output (default: {COMPARE_LIMIT}; 0: all)",
    )
    compare.set_defaults(handler=_cmd_compare)
