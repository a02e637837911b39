"""Tests for harness.status: results_python.log lines, the append-only results log, the summary table."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from harness.status import (
    ResultsLine,
    ResultsLog,
    StepResult,
    StepStatus,
    parse_results_line,
    reference_results_line,
    results_line,
    run_succeeded,
    start_fresh,
    summary_table,
    totals_line,
)

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
    ("status", "reason", "word"),
    [
        (StepStatus.PASSED, "", "successfully"),
        (StepStatus.FAILED, "exit code 1", "failed"),
        (StepStatus.TIMEOUT, "timed out after 5 s", "failed"),
        (StepStatus.ERROR, "executable not found: x", "failed"),
        (StepStatus.SKIPPED, "no CUDA device", "skipped"),
    ],
)
def test_results_line_is_status_model_command_log(status: StepStatus, reason: str, word: str) -> None:
    line = results_line("toy", result(status, reason=reason))
    assert line == f"Run {word} with command - toy - {CMD} - {LOG}!"
    # The contract: split on " - " as Paddle's tooling does.
    assert line.split(" - ") == [f"Run {word} with command", "toy", CMD, f"{LOG}!"]
    parsed = parse_results_line(line)
    assert parsed == ResultsLine(status=word, model="toy", command=CMD, log_path=LOG)


STEP6_TRAIN = (
    "mobilenet_v3_small - python3.7 train.py --output-dir=./test_tipc/output/mobilenet_v3_small/lite_train_lite_infer/"
    "norm_train_gpus_-1_autocast_False_nodes_1.log --epochs=5   --batch-size=4!  "
)
STEP6_EVAL = (
    "mobilenet_v3_small - python3.7 train.py --test-only --pretrained=./o/x.log/latest.pdparams > ./o/x_eval.log 2>&1 !  "
)


def test_reference_results_line_is_the_scripts_bytes() -> None:
    passed = reference_results_line(result(StepStatus.PASSED), STEP6_TRAIN)
    assert passed == f"\x1b[33m Run successfully with command - {STEP6_TRAIN}\x1b[0m"
    failed = reference_results_line(result(StepStatus.TIMEOUT, reason="timed out"), STEP6_EVAL)
    assert failed == f"\x1b[33m Run failed with command - {STEP6_EVAL}\x1b[0m"
    assert reference_results_line(result(StepStatus.SKIPPED, reason="needs train"), STEP6_EVAL) is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (  # Step6 train: no log
            f"\x1b[33m Run successfully with command - {STEP6_TRAIN}\x1b[0m",
            ResultsLine(status="successfully", model="mobilenet_v3_small", log_path="",
                        command="python3.7 train.py --output-dir=./test_tipc/output/mobilenet_v3_small/"
                        "lite_train_lite_infer/norm_train_gpus_-1_autocast_False_nodes_1.log --epochs=5   --batch-size=4"),
        ),
        (  # Step6 eval: the redirection names the log
            f"\x1b[33m Run failed with command - {STEP6_EVAL}\x1b[0m",
            ResultsLine(status="failed", model="mobilenet_v3_small", log_path="./o/x_eval.log",
                        command="python3.7 train.py --test-only --pretrained=./o/x.log/latest.pdparams"),
        ),
        (  # PaddleClas: redirection and a " - <log>" suffix
            "\x1b[33m Run successfully with command - M - python3.7 tools/eval.py -o a=b > /r/e.log 2>&1  - /r/e.log  \x1b[0m",
            ResultsLine(status="successfully", model="M", command="python3.7 tools/eval.py -o a=b", log_path="/r/e.log"),
        ),
        (  # written before the format became a contract
            f"Run failed with command - toy - {CMD} > {LOG} 2>&1! reason: exit code 1",
            ResultsLine(status="failed", model="toy", command=CMD, log_path=LOG, reason="exit code 1"),
        ),
        ("epoch 1 loss 0.3", None),
    ],
)
def test_parse_results_line(line: str, expected: ResultsLine | None) -> None:
    assert parse_results_line(line) == expected


def test_results_log_appends_exact_lines(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results_python.log"
    path.parent.mkdir()
    path.write_text("line from an earlier run\n")
    with ResultsLog(path, model_name="toy") as log:
        written = log.write(result(StepStatus.PASSED))
        log.write(result(StepStatus.SKIPPED, name="infer", reason="needs export, which failed"))
        assert log.write(result(StepStatus.SKIPPED, name="infer"), reference_line=STEP6_EVAL) == ""
        log.write(result(StepStatus.PASSED), reference_line=STEP6_TRAIN)
    assert written == results_line("toy", result(StepStatus.PASSED))
    assert path.read_text().splitlines() == [
        "line from an earlier run",
        f"Run successfully with command - toy - {CMD} - {LOG}!",
        f"Run skipped with command - toy - {CMD} - {LOG}!",
        f"\x1b[33m Run successfully with command - {STEP6_TRAIN}\x1b[0m",
    ]


def test_each_run_starts_a_fresh_file_and_keeps_the_previous(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results_python.log"
    for run, worker in (("run1", "a"), ("run1", "b"), ("run2", "a")):
        log = ResultsLog(path, model_name="toy", run_id=run)
        log.write_line(f"{run} {worker}")
        log.close()
    assert path.read_text() == "run2 a\n"
    assert path.with_name("results_python.log.prev").read_text() == "run1 a\nrun1 b\n"  # workers of one run share it
    assert start_fresh(path, "run2") is False
    assert start_fresh(path, "run3") is True
    assert not path.exists()
    assert path.with_name("results_python.log.prev").read_text() == "run2 a\n"


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
