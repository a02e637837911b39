"""Tests for harness.status: results_python.log lines, the append-only results log, the summary table."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from harness.status import ResultsLog, StepResult, StepStatus, results_line, run_succeeded, summary_table, totals_line

CMD = "python3.7 tools/train.py -o Global.epochs=2"
LOG = "test_tipc/output/toy/lite_train_lite_infer/norm_train_gpus_0.log"


def result(status: StepStatus, *, name: str = "train", reason: str = "", duration_s: float = 1.25) -> StepResult:
    return StepResult(
        chain_id="norm_train_gpus_0",
        step_name=name,
        kind="train",
        status=status,
        command=CMD,
        log_path=LOG,
        returncode=0 if status is StepStatus.PASSED else None,
        duration_s=duration_s,
        reason=reason,
    )


@pytest.mark.parametrize(
    ("status", "reason", "line"),
    [
        (StepStatus.PASSED, "", f"Run successfully with command - toy - {CMD} > {LOG} 2>&1!"),
        (StepStatus.FAILED, "exit code 1", f"Run failed with command - toy - {CMD} > {LOG} 2>&1! reason: exit code 1"),
        (
            StepStatus.TIMEOUT,
            "timed out after 5 s",
            f"Run failed with command - toy - {CMD} > {LOG} 2>&1! reason: timed out after 5 s",
        ),
        (
            StepStatus.ERROR,
            "executable not found: x",
            f"Run failed with command - toy - {CMD} > {LOG} 2>&1! reason: executable not found: x",
        ),
        (StepStatus.SKIPPED, "no CUDA device", f"Run skipped with command - toy - {CMD}! reason: no CUDA device"),
    ],
)
def test_results_line(status: StepStatus, reason: str, line: str) -> None:
    assert results_line("toy", result(status, reason=reason)) == line


def test_results_log_appends_exact_lines(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results_python.log"
    path.parent.mkdir()
    path.write_text("line from an earlier run\n")
    with ResultsLog(path, model_name="toy") as log:
        written = log.write(result(StepStatus.PASSED))
        log.write(result(StepStatus.SKIPPED, name="infer", reason="needs export, which failed"))
    assert written == results_line("toy", result(StepStatus.PASSED))
    assert path.read_text().splitlines() == [
        "line from an earlier run",
        f"Run successfully with command - toy - {CMD} > {LOG} 2>&1!",
        f"Run skipped with command - toy - {CMD}! reason: needs export, which failed",
    ]


def test_results_log_creates_folders_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "results_python.log"
    log = ResultsLog(path, model_name="toy")
    log.write_line("first")
    log.close()
    log.write_line("second\n")  # writing after close reopens; a trailing newline is not doubled
    log.close()
    assert path.read_text() == "first\nsecond\n"


def test_two_processes_appending_keep_lines_whole(tmp_path: Path) -> None:
    path = tmp_path / "results_python.log"
    writer = (
        "import sys\n"
        "from harness.status import ResultsLog\n"
        "log = ResultsLog(sys.argv[1], model_name='toy')\n"
        "for i in range(300):\n"
        "    log.write_line(f'{sys.argv[2]} {i:04d} ' + sys.argv[2] * 2000)\n"
        "log.close()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(path), tag]) for tag in ("A", "B")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    lines = path.read_text().splitlines()
    assert len(lines) == 600
    for line in lines:
        tag, number, body = line.split(" ")
        assert body == tag * 2000
        assert 0 <= int(number) < 300
    assert sorted(lines) == sorted(f"{t} {i:04d} {t * 2000}" for t in "AB" for i in range(300))


def test_run_succeeded_ignores_skips() -> None:
    assert run_succeeded([])
    assert run_succeeded([result(StepStatus.PASSED), result(StepStatus.SKIPPED, reason="no CUDA device")])
    for bad in (StepStatus.FAILED, StepStatus.TIMEOUT, StepStatus.ERROR):
        assert not run_succeeded([result(StepStatus.PASSED), result(bad)])


def test_totals_line() -> None:
    results = [
        result(StepStatus.PASSED),
        result(StepStatus.PASSED),
        result(StepStatus.FAILED),
        result(StepStatus.SKIPPED, duration_s=0),
    ]
    assert totals_line(results) == "2 passed, 1 failed, 1 skipped in 3.8 s"
    assert totals_line([]) == "no steps in 0.0 s"


def test_summary_table() -> None:
    rows = [
        result(StepStatus.PASSED),
        result(StepStatus.FAILED, name="export", reason="exit code 2", duration_s=12.0),
        result(StepStatus.SKIPPED, name="infer", reason="needs export, which failed", duration_s=0),
    ]
    table = summary_table([dataclasses.replace(r, log_path=f"out/{r.step_name}.log") for r in rows])
    assert table.splitlines() == [
        "step                       status   seconds  log             reason",
        "-------------------------  -------  -------  --------------  --------------------------",
        "norm_train_gpus_0::train   PASSED       1.2  out/train.log",
        "norm_train_gpus_0::export  FAILED      12.0  out/export.log  exit code 2",
        "norm_train_gpus_0::infer   SKIPPED        -  -               needs export, which failed",
        "1 passed, 1 failed, 1 skipped in 13.2 s",
    ]
