"""The terminal side of `tipc run`: live and plain progress, a summary that fits, failure excerpts, run-root hints."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import pytest
from rich.console import Console

from harness import progress
from harness.cli import main
from harness.status import StepResult, StepStatus

pytest_plugins = ["pytester"]

DATA = Path(__file__).parent / "data"
CHAIN = "norm_train_gpus_-1_autocast_False_nodes_1_with_a_long_name_that_would_wrap"


def result(step: str, status: StepStatus, *, log: str = "", reason: str = "", seconds: float = 1.0) -> StepResult:
    return StepResult(chain_id=CHAIN, step_name=step, kind="train", status=status, command="python3 x.py",
                      log_path=log, duration_s=seconds, reason=reason)  # fmt: skip


def test_the_summary_fits_the_terminal_width(tmp_path: Path) -> None:
    (tmp_path / "t.log").write_text("Traceback (most recent call last):\n  File \"x.py\", line 3\n"
                                    "KeyError: 'Global.pretrained_model'\n# exit code 1 after 1.0 s\n")  # fmt: skip
    results = [
        result("train", StepStatus.FAILED, log="t.log", reason="exit code 1"),
        result("infer_gpu_batchsize_1_precision_fp32_mkldnn_False", StepStatus.SKIPPED, reason="no CUDA device"),
    ]
    out = io.StringIO()
    progress.summary(results, Console(file=out, width=80, no_color=True), root=tmp_path)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    text = out.getvalue()
    # the reason says why, not only the exit code (folded inside its column)
    assert "exit code 1:" in text and "KeyError" in text
    assert lines[-1] == "1 failed, 1 skipped in 2.0 s"


def test_failure_report_shows_reason_hint_and_last_lines(tmp_path: Path) -> None:
    (tmp_path / "t.log").write_text("".join(f"line {i}\n" for i in range(1, 41)) + "ValueError: bad shape\n")
    lines = progress.failure_report([result("train", StepStatus.FAILED, log="t.log", reason="exit code 2"),
                                     result("eval", StepStatus.SKIPPED, reason="needs train, which failed")],
                                    root=tmp_path, hints={f"{CHAIN}::train": "run tipc prepare"})  # fmt: skip
    assert lines[1] == f"FAILED {CHAIN}::train: exit code 2: ValueError: bad shape"
    assert lines[2] == f"  log: {tmp_path / 't.log'}"
    assert lines[3] == "  run tipc prepare"
    assert lines[-1] == "  ValueError: bad shape" and "  line 27" in lines and "  line 26" not in lines
    assert not any("eval" in line for line in lines)  # skipped steps are not failures


def test_missing_data_names_tipc_prepare(tmp_path: Path) -> None:
    (tmp_path / "t.log").write_text("FileNotFoundError: [Errno 2] No such file or directory: "
                                    "'lite_data/cls_digits/val_list.txt'\n")  # fmt: skip
    failed = result("train", StepStatus.FAILED, log="t.log", reason="exit code 1")
    ours = str(tmp_path / "test_tipc" / "configs" / "mobilenet_v3_small" / "train_infer_python.txt")
    hint = progress.missing_data_hint(failed, root=tmp_path, config=ours, mode="m")
    assert hint == f"input data missing? build it first: tipc prepare {ours} m"
    # no hint for a config nothing prepares (not one of ours, no test_tipc/prepare.sh), or for an unrelated error
    foreign = str(tmp_path / "test_tipc" / "configs" / "toy" / "train_infer_python.txt")
    assert progress.missing_data_hint(failed, root=tmp_path, config=foreign, mode="m") == ""
    (tmp_path / "test_tipc" / "prepare.sh").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "test_tipc" / "prepare.sh").write_text("#!/bin/bash\ntar -xf lite_data.tar\n")
    assert progress.missing_data_hint(failed, root=tmp_path, config=foreign, mode="m").endswith(f"{foreign} m")
    (tmp_path / "t.log").write_text("ZeroDivisionError: division by zero\n")
    assert progress.missing_data_hint(failed, root=tmp_path, config=ours, mode="m") == ""


def test_plain_lines_and_a_heartbeat_when_not_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "t.log").write_text("epoch: 1/3 iter: 2/10 loss: 2.31\r\x1b[32mepoch: 1/3 iter: 3/10 loss: 2.2\x1b[0m\n")
    out = io.StringIO()
    with progress.Progress(root=tmp_path, stream=out, live=False, heartbeat_s=0.05) as display:
        display.start(f"{CHAIN}::train", "t.log")
        deadline = time.monotonic() + 20
        while "running" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        display.finish(result("train", StepStatus.PASSED, seconds=2.5))
    text = out.getvalue()
    assert text.startswith(f"RUN      {CHAIN}::train\n")
    assert f"...      {CHAIN}::train running " in text
    assert "s: epoch: 1/3 iter: 3/10 loss: 2.2\n" in text  # the log's last line, colours stripped
    assert f"PASSED   {CHAIN}::train  [2.5 s]\n" in text
    assert "\x1b[" not in text  # no escape codes in a pipe or CI log


def test_the_live_display_shows_each_running_step(tmp_path: Path) -> None:
    (tmp_path / "t.log").write_text("starting\n[epoch 2/3] loss: 1.5\n")
    display = progress.Progress(root=tmp_path, stream=io.StringIO(), live=True)
    display.start(f"{CHAIN}::train", "t.log")
    out = io.StringIO()
    Console(file=out, width=200, no_color=True).print(display)
    assert f"RUNNING {CHAIN}::train" in out.getvalue()
    assert "[epoch 2/3] loss: 1.5" in out.getvalue()  # log text is not read as rich markup


def test_live_display_only_on_a_terminal_outside_ci() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress.use_live_display(Tty(), {}) is True
    assert progress.use_live_display(Tty(), {"CI": "true"}) is False
    assert progress.use_live_display(io.StringIO(), {}) is False


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with test_tipc/configs/toy/ and its scripts."""
    root = tmp_path / "repo"
    shutil.copytree(DATA / "run", root)
    (root / "test_tipc" / "configs" / "toy").mkdir(parents=True)
    shutil.copy(root / "configs" / "ok.txt", root / "test_tipc" / "configs" / "toy" / "train_infer_python.txt")
    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    return root


def test_run_from_test_tipc_writes_into_the_repository(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.chdir(repo / "test_tipc")
    assert main(["run", "configs/toy/train_infer_python.txt", "lite_train_lite_infer"]) == 0
    out = capsys.readouterr().out
    assert f"note: run root {repo} (the config's repository)" in out
    assert (repo / "test_tipc" / "output" / "toy_ok" / "lite_train_lite_infer" / "results_python.log").is_file()
    assert not (repo / "test_tipc" / "test_tipc").exists()


def test_run_from_elsewhere_warns_and_says_where_output_goes(repo: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # a config outside any test_tipc/configs, run from a folder that is not a repository root
    bare = tmp_path / "bare"
    shutil.copytree(DATA / "run", bare)
    monkeypatch.chdir(bare)
    assert main(["run", "configs/ok.txt", "lite_train_lite_infer"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {bare} has no test_tipc/configs" in err
    assert f"output goes to {bare / 'test_tipc/output/toy_ok/lite_train_lite_infer'}" in err
    # a config inside a repository, run from an unrelated folder: the repository is the run root
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["run", str(repo / "test_tipc/configs/toy/train_infer_python.txt"), "lite_train_lite_infer"]) == 0
    assert list(elsewhere.iterdir()) == []


def test_pytest_warns_when_the_root_is_not_a_repository(pytester: pytest.Pytester,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest("-p", "harness.pytest_plugin", "--collect-only")
    result.stdout.fnmatch_lines([f"tipc: warning: {pytester.path} has no test_tipc/configs*"])
    (pytester.path / "test_tipc" / "configs").mkdir(parents=True)
    assert "has no test_tipc/configs" not in pytester.runpytest("-p", "harness.pytest_plugin", "--collect-only").stdout.str()
