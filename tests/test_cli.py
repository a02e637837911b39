"""End-to-end tests for the ``tipc`` CLI on small hand-made configs whose steps are tiny Python scripts."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import ExitCode, main
from harness.logger import LOGGER_NAME
from procs import alive, read_pid, wait_until

DATA = Path(__file__).parent / "data" / "run"
PROJECT = Path(__file__).resolve().parent.parent
MODE = "lite_train_lite_infer"
CHAIN = "norm_train_gpus_-1_autocast_False_nodes_1"
OUT = f"test_tipc/output/{{model}}/{MODE}"


@pytest.fixture(autouse=True)
def _reset_harness_logger() -> Iterator[None]:
    """main() installs a stderr handler; drop it so the next test's capture starts clean."""
    yield
    harness_logger = logging.getLogger(LOGGER_NAME)
    for handler in list(harness_logger.handlers):
        harness_logger.removeHandler(handler)
    harness_logger.setLevel(logging.NOTSET)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway run root holding configs/ and scripts/, as the cwd, on a host with no GPU."""
    root = tmp_path / "repo"
    shutil.copytree(DATA, root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    monkeypatch.setenv("TIPC_TENSORRT", "0")
    return root


def out_dir(model: str) -> str:
    return OUT.format(model=model)


def results_lines(root: Path, model: str) -> list[str]:
    return (root / out_dir(model) / "results_python.log").read_text().splitlines()


def run_module(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m harness ...`` in a real process, to see exactly what a user sees."""
    full_env = {**os.environ, "TIPC_GPU_COUNT": "0", "TIPC_TENSORRT": "0", **(env or {})}
    argv = [sys.executable, "-m", "harness", *args]
    return subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120, check=False)


# --- plan ----------------------------------------------------------------------------------------------------------


def test_plan_json_has_the_documented_keys(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "configs/ok.txt", MODE, "--json"]) == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    assert {"model_name", "mode", "flavor", "chains"} <= data.keys()
    assert (data["model_name"], data["mode"]) == ("toy_ok", MODE)
    [chain] = data["chains"]
    assert chain["id"] == CHAIN
    assert [s["name"] for s in chain["steps"]] == ["train", "eval", "export", "infer_gpu_bs_1", "infer_cpu_bs_1"]
    for step in chain["steps"]:
        assert {"name", "kind", "argv", "cwd", "env", "log"} <= step.keys()
    assert chain["steps"][0]["argv"][:3] == ["python", "scripts/ok.py", "--train"]
    assert not (repo / "test_tipc").exists()  # planning runs nothing and writes nothing


def test_plan_human_listing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "configs/ok.txt", MODE]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "model:   toy_ok" in out
    assert f"chain {CHAIN}" in out
    assert "  infer_gpu_bs_1 [infer]  (line 27)" in out
    assert "    requires: gpu" in out
    assert not (repo / "test_tipc").exists()


# --- run -----------------------------------------------------------------------------------------------------------


def test_run_passes_with_gpu_steps_skipped(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "configs/ok.txt", MODE]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"SKIPPED  {CHAIN}::infer_gpu_bs_1  (no CUDA device)" in out
    assert "4 passed, 1 skipped in " in out
    lines = results_lines(repo, "toy_ok")
    assert [line.split(" with command - ")[0] for line in lines] == ["Run successfully"] * 3 + [
        "Run skipped",
        "Run successfully",
    ]
    assert all(" with command - toy_ok - " in line for line in lines)
    train_log = f"{out_dir('toy_ok')}/{CHAIN}.log"
    assert lines[0].startswith(
        "Run successfully with command - toy_ok - env CUDA_VISIBLE_DEVICES='' python scripts/ok.py --train "
    )
    assert lines[0].endswith(f" > {train_log} 2>&1!")
    assert lines[3].endswith("! reason: no CUDA device")
    infer_log = (repo / out_dir("toy_ok") / CHAIN / "python_infer_cpu_batchsize_1.log").read_text()
    assert "to stderr" in infer_log  # the step's stderr is in its log


def test_run_failure_skips_dependents_and_exits_1(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "configs/fail.txt", MODE]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert f"FAILED   {CHAIN}::export  (exit code 1)" in out
    assert f"SKIPPED  {CHAIN}::infer_cpu_bs_1  (needs export, which failed)" in out
    lines = results_lines(repo, "toy_fail")
    assert lines[2].startswith(
        "Run failed with command - toy_fail - env CUDA_VISIBLE_DEVICES='' python scripts/fail.py --export "
    )
    assert lines[2].endswith("_export.log 2>&1! reason: exit code 1")
    assert lines[3].endswith("! reason: needs export, which failed")
    assert lines[4].endswith("! reason: needs export, which failed")
    export_log = (repo / out_dir("toy_fail") / f"{CHAIN}_export.log").read_text()
    assert "fail.py is about to fail" in export_log
    assert "# command: " in export_log


def test_results_log_is_appended_across_runs(repo: Path) -> None:
    main(["run", "configs/ok.txt", MODE])
    main(["run", "configs/ok.txt", MODE])
    assert len(results_lines(repo, "toy_ok")) == 10


def test_run_timeout_kills_the_step_tree(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = repo / "grandchild.pid"
    monkeypatch.setenv("TIPC_TEST_PIDFILE", str(pidfile))
    # The step and its grandchild would sleep an hour: only the timeout ends them, and both must be gone.
    assert main(["run", "configs/sleep.txt", MODE, "--timeout", "5", "--only", "train"]) == ExitCode.FAILED
    assert f"TIMEOUT  {CHAIN}::train  (timed out after 5 s)" in capsys.readouterr().out
    assert results_lines(repo, "toy_sleep")[0].endswith("! reason: timed out after 5 s")
    assert not alive(read_pid(pidfile))


def test_shell_syntax_in_config_is_passed_literally(repo: Path) -> None:
    assert main(["run", "configs/inject.txt", MODE, "--only", "train"]) == ExitCode.OK
    config_line = next(
        line for line in (repo / "configs/inject.txt").read_text().splitlines() if line.startswith("norm_train:")
    )
    expected = shlex.split(config_line.split(":", 1)[1])[1:]  # everything after the script
    log = (repo / out_dir("toy_inject") / f"{CHAIN}.log").read_text()
    argv = json.loads(next(line for line in log.splitlines() if line.startswith("ARGV "))[5:])
    assert argv[: len(expected)] == expected
    assert "$(touch" in expected[0] and "`touch" in expected
    assert list(repo.rglob("pwned*")) == []


def test_only_runs_the_chosen_kinds(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "configs/fail.txt", MODE, "--only", "infer"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "--only infer: 3 other step(s) not run" in out
    assert f"PASSED   {CHAIN}::infer_cpu_bs_1" in out
    assert not (repo / out_dir("toy_fail") / f"{CHAIN}_export.log").exists()
    assert len(results_lines(repo, "toy_fail")) == 2


def test_python_option_replaces_the_config_interpreter(repo: Path) -> None:
    assert main(["run", "configs/ok.txt", MODE, "--only", "train", "--python", sys.executable]) == ExitCode.OK
    log = (repo / out_dir("toy_ok") / f"{CHAIN}.log").read_text()
    assert f"# interpreter: --python {sys.executable} replaces config interpreter python" in log


def test_gpu_ids_argument_narrows_visible_devices(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: Fake (UUID: a)'\necho 'GPU 1: Fake (UUID: b)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("TIPC_GPU_COUNT")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert main(["run", "configs/ok.txt", MODE, "1", "--only", "train"]) == ExitCode.OK
    assert "; 1 CUDA device, no TensorRT;" in capsys.readouterr().out
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # restored after the run


# --- errors and exit codes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["plan", "run", "prepare"])
@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.txt", None, r"missing\.txt:0: no such config file"),
        ("binary.txt", b"===\x00\x01\x02", r"binary\.txt:1: binary data"),
        ("configs/broken.txt", None, r"configs/broken\.txt:15: 'eval_params' header is on logical line 15"),
    ],
)
def test_config_errors_are_one_line_with_exit_2(
    repo: Path, capsys: pytest.CaptureFixture[str], command: str, name: str, content: bytes | None, expected: str
) -> None:
    if content is not None:
        (repo / name).write_bytes(content)
    assert main([command, name, MODE]) == ExitCode.CONFIG_ERROR
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert re.match(expected, lines[0])
    assert "Traceback" not in captured.err + captured.out


def test_config_error_in_a_real_process_has_no_traceback(repo: Path) -> None:
    done = run_module(["run", "configs/broken.txt", MODE], cwd=repo)
    assert done.returncode == 2
    assert done.stderr.startswith("configs/broken.txt:15: ")
    assert len(done.stderr.splitlines()) == 1


def test_usage_errors_exit_2(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "configs/ok.txt", "no_such_mode"]) == ExitCode.USAGE
    assert main(["run", "configs/ok.txt", MODE, "--timeout", "-3"]) == ExitCode.USAGE
    assert main(["run", "configs/ok.txt", MODE, "--only", "bake"]) == ExitCode.USAGE
    assert main([]) == ExitCode.USAGE
    assert "invalid choice: 'no_such_mode'" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == ExitCode.OK
    assert "plan" in capsys.readouterr().out


def test_exit_code_values() -> None:
    codes = (
        ExitCode.OK,
        ExitCode.FAILED,
        ExitCode.USAGE,
        ExitCode.CONFIG_ERROR,
        ExitCode.INTERRUPTED,
        ExitCode.TERMINATED,
    )
    assert [int(c) for c in codes] == [0, 1, 2, 2, 130, 143]


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == ExitCode.OK
    out = capsys.readouterr().out
    for name in ("plan", "run", "lint", "prepare", "report", "matrix"):
        assert name in out


def test_run_writes_the_report_sidecar(repo: Path) -> None:
    import json

    assert main(["run", "configs/fail.txt", MODE]) == ExitCode.FAILED
    records = [json.loads(line) for line in (repo / out_dir("toy_fail") / "results.jsonl").read_text().splitlines()]
    by_step = {r["step"]: r for r in records}
    assert by_step["export"]["status"] == "failed"
    assert by_step["export"]["returncode"] == "1"
    assert "fail.py is about to fail" in by_step["export"]["details"]
    assert by_step["infer_cpu_bs_1"]["status"] == "skipped"
    assert by_step["export"]["key"] == f"configs/fail.txt::{MODE}::{CHAIN}::export"


@pytest.mark.parametrize(
    ("sig", "code", "message"),
    [
        (signal.SIGINT, ExitCode.INTERRUPTED, "tipc: interrupted (SIGINT)"),
        (signal.SIGTERM, ExitCode.TERMINATED, "tipc: terminated (SIGTERM)"),
        (signal.SIGHUP, ExitCode.HANGUP, "tipc: hung up (SIGHUP)"),
    ],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_interrupt_stops_the_step_tree(repo: Path, sig: signal.Signals, code: ExitCode, message: str) -> None:
    pidfile = repo / "grandchild.pid"
    log = repo / out_dir("toy_sleep") / f"{CHAIN}.log"
    env = {**os.environ, "TIPC_GPU_COUNT": "0", "TIPC_TENSORRT": "0", "TIPC_TEST_PIDFILE": str(pidfile)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "configs/sleep.txt", MODE],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Events, not sleeps: the signal goes out once the step and its grandchild are known to run.
        wait_until(lambda: pidfile.exists() and log.exists() and "sleep.py sleeping" in log.read_text(),
                   what="the step started")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code
    assert message in err
    assert "Traceback" not in err
    assert f"run interrupted by {sig.name}" in out  # the summary says what happened
    assert "# interrupted; process group killed" in log.read_text()
    assert not alive(read_pid(pidfile))  # no process of the step's tree is left when tipc has exited
    lines = results_lines(repo, "toy_sleep")
    assert lines[0].startswith("Run failed with command - toy_sleep - ")
    assert lines[0].endswith(f"! reason: interrupted by {sig.name}")
    assert len(lines) == 5
    assert all(line.endswith(f"! reason: not run: the run was interrupted by {sig.name}") for line in lines[1:])


# --- lint ----------------------------------------------------------------------------------------------------------


def test_lint_reports_every_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "binary.txt").write_bytes(b"\x00")
    configs = ["configs/ok.txt", "configs/bad_gpu.txt", "configs/broken.txt", "binary.txt", "missing.txt"]
    assert main(["lint", *configs]) == ExitCode.CONFIG_ERROR
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        "configs/bad_gpu.txt:4",
        "configs/broken.txt:15",
        "binary.txt:1",
        "missing.txt:0",
    ]
    assert (
        lines[0] == "configs/bad_gpu.txt:4: gpu_list entry 'gpu0' is not -1, a device id, a list of ids or 'ip,ip;ids'"
    )
    assert "5 config(s), 4 error(s)" in captured.err


def test_lint_clean_configs_exit_0(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "configs/ok.txt", "configs/fail.txt", "configs/inject.txt"]) == ExitCode.OK
    assert capsys.readouterr().out == ""


# --- prepare -------------------------------------------------------------------------------------------------------


def test_prepare_unknown_model_needs_nothing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "configs/ok.txt", MODE]) == ExitCode.OK
    assert "toy_ok (lite_train_lite_infer) needs no data preparation" in capsys.readouterr().out


def test_prepare_runs_the_registered_script(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = repo / "lite_data" / "make_cls_lite.py"
    script.parent.mkdir()
    script.write_text("import pathlib\npathlib.Path('lite_data/built').write_text('yes')\nprint('built the set')\n")
    assert main(["prepare", "configs/prepare.txt", MODE]) == ExitCode.OK
    assert (repo / "lite_data" / "built").read_text() == "yes"
    assert "built the set" in (repo / out_dir("mobilenet_v3_small") / "prepare.log").read_text()
    assert "PASSED in " in capsys.readouterr().out


def test_prepare_fails_when_the_registered_script_is_missing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "configs/prepare.txt", MODE]) == ExitCode.FAILED
    assert "preparation script lite_data/make_cls_lite.py not found" in capsys.readouterr().err


# --- drop-in bash entry points -------------------------------------------------------------------------------------


def bash(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIPC_GPU_COUNT": "0", "TIPC_TENSORRT": "0"}
    argv = ["bash", str(PROJECT / "test_tipc" / script), *args]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_bash_entry_points(repo: Path) -> None:
    done = bash("test_train_inference_python.sh", "configs/ok.txt", MODE, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "4 passed, 1 skipped" in done.stdout
    assert (repo / out_dir("toy_ok") / "results_python.log").is_file()
    assert bash("test_train_inference_python.sh", "configs/fail.txt", MODE, cwd=repo).returncode == 1
    prepare = bash("prepare.sh", "configs/ok.txt", MODE, cwd=repo)
    assert prepare.returncode == 0
    assert "needs no data preparation" in prepare.stdout


# --- interpreter and options -----------------------------------------------------------------------------------------


def test_missing_config_interpreter_is_said_on_the_terminal(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (repo / "configs" / "ok.txt").read_text().replace("python:python\n", "python:python3.99\n")
    (repo / "configs" / "py399.txt").write_text(text.replace("model_name:toy_ok", "model_name:toy_py399"))
    assert main(["run", "configs/py399.txt", MODE, "--only", "train"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"note: interpreter 'python3.99' from the config's python: line is not found; steps run with {sys.executable}" in out


def test_missing_python_option_is_said_on_the_terminal(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "configs/ok.txt", MODE, "--only", "train", "--python", "no-such-python-xyz"]) == ExitCode.FAILED
    assert "note: --python no-such-python-xyz not found" in capsys.readouterr().out


def test_run_help_states_the_default_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == ExitCode.OK
    assert "(default: 14400" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon"])
def test_bad_timeout_is_a_usage_error(repo: Path, value: str) -> None:
    assert main(["run", "configs/ok.txt", MODE, f"--timeout={value}"]) == ExitCode.USAGE
