"""Tests for harness.runner: real subprocesses, exit codes, timeouts, logs, env and interpreter resolution."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from harness.command import Command
from harness.runner import child_environment, is_interpreter, run_command
from harness.status import StepStatus
from procs import alive, read_pid

SCRIPTS = Path(__file__).parent / "data" / "run" / "scripts"


def py(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def command(
    argv: tuple[str, ...],
    *,
    log: str = "logs/step.log",
    cwd: str = ".",
    env: tuple[tuple[str, str | None], ...] = (),
    timeout_s: float = 60.0,
) -> Command:
    return Command(argv=argv, log_path=log, cwd=cwd, env=env, timeout_s=timeout_s)


def log_text(root: Path, log: str = "logs/step.log") -> str:
    return (root / log).read_text(encoding="utf-8")


def test_exit_zero_passes_and_logs_output(tmp_path: Path) -> None:
    outcome = run_command(command(py("print('hello from the step')")), root=tmp_path)
    assert outcome.status is StepStatus.PASSED
    assert outcome
    assert outcome.returncode == 0
    assert outcome.reason == ""
    assert outcome.duration_s > 0
    assert "hello from the step" in log_text(tmp_path)


def test_exit_one_fails_and_keeps_log_with_context(tmp_path: Path) -> None:
    outcome = run_command(command(py("print('partial output'); raise SystemExit(1)")), root=tmp_path)
    assert outcome.status is StepStatus.FAILED
    assert not outcome
    assert outcome.returncode == 1
    assert outcome.reason == "exit code 1"
    text = log_text(tmp_path)
    assert text.startswith("# command: ")
    assert "partial output" in text
    assert "# cwd: " in text
    assert "# started: " in text
    assert re.search(r"\n# exit code 1 after \d+\.\d\d s\n$", text)


def test_killed_by_signal_reason(tmp_path: Path) -> None:
    outcome = run_command(command(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")), root=tmp_path)
    assert outcome.status is StepStatus.FAILED
    assert outcome.returncode == -9
    assert outcome.reason == "killed by SIGKILL"


def test_stderr_goes_to_the_log(tmp_path: Path) -> None:
    outcome = run_command(command((sys.executable, str(SCRIPTS / "stderr.py"))), root=tmp_path)
    assert outcome
    text = log_text(tmp_path)
    assert "to stdout" in text
    assert "to stderr" in text


def test_header_comes_before_child_output(tmp_path: Path) -> None:
    run_command(command(py("print('CHILD')"), env=(("TIPC_A", "1"), ("TIPC_B", None))), root=tmp_path)
    text = log_text(tmp_path)
    assert text.index("# started: ") < text.index("\nCHILD\n")
    assert "# env overrides: TIPC_A=1, unset TIPC_B" in text


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    # The step itself would sleep an hour, so only the timeout can end it; the grandchild would too.
    cmd = command((sys.executable, str(SCRIPTS / "sleep.py")), env=(("TIPC_TEST_PIDFILE", str(pidfile)),), timeout_s=5)
    outcome = run_command(cmd, root=tmp_path, grace_s=0.5)
    assert outcome.status is StepStatus.TIMEOUT
    assert outcome.reason == "timed out after 5 s"
    assert "process group killed" in log_text(tmp_path)
    assert not alive(read_pid(pidfile))  # gone when run_command returns: nothing to wait for


def test_background_child_left_in_the_group_is_reaped(tmp_path: Path) -> None:
    """A step that exits 0 but leaves a child running in its process group: the group is stopped, the log says so."""
    pidfile = tmp_path / "grandchild.pid"
    cmd = command(
        (sys.executable, str(SCRIPTS / "sleep.py")), env=(("TIPC_TEST_PIDFILE", str(pidfile)), ("TIPC_TEST_DETACH", "1"))
    )
    outcome = run_command(cmd, root=tmp_path, grace_s=0.5)
    assert outcome.status is StepStatus.PASSED  # the step's own result is kept
    assert not alive(read_pid(pidfile))
    assert "# 1 background process(es) left in the step's process group; group killed" in log_text(tmp_path)


def test_background_child_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    env = (("TIPC_TEST_PIDFILE", str(pidfile)), ("TIPC_TEST_DETACH", "1"), ("TIPC_TEST_IGNORE_TERM", "1"))
    outcome = run_command(command((sys.executable, str(SCRIPTS / "sleep.py")), env=env), root=tmp_path, grace_s=0.2)
    assert outcome
    assert not alive(read_pid(pidfile))


def test_a_clean_step_leaves_no_note(tmp_path: Path) -> None:
    assert run_command(command(py("print('done')")), root=tmp_path)
    assert "background process" not in log_text(tmp_path)


def test_timeout_escalates_to_sigkill(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('armed', flush=True); time.sleep(60)"
    )
    # 5 s: far more than an interpreter needs to start and install the handler, so SIGTERM always finds it armed.
    outcome = run_command(command(py(stubborn), timeout_s=5.0), root=tmp_path, grace_s=0.3)
    assert outcome.status is StepStatus.TIMEOUT
    assert "armed" in log_text(tmp_path)
    assert outcome.returncode == -9


def test_timeout_argument_overrides_command_timeout(tmp_path: Path) -> None:
    outcome = run_command(
        command(py("import time; time.sleep(30)"), timeout_s=3600), root=tmp_path, timeout_s=0.3, grace_s=0.2
    )
    assert outcome.status is StepStatus.TIMEOUT


def test_missing_executable_is_an_error_with_a_log_line(tmp_path: Path) -> None:
    outcome = run_command(command(("tipc-no-such-program-xyz", "--flag")), root=tmp_path)
    assert outcome.status is StepStatus.ERROR
    assert outcome.returncode is None
    assert outcome.reason == "executable not found: tipc-no-such-program-xyz"
    assert "# error: executable not found: tipc-no-such-program-xyz" in log_text(tmp_path)


def test_missing_cwd_is_an_error_with_a_log_line(tmp_path: Path) -> None:
    outcome = run_command(command(py("pass"), cwd="no/such/dir"), root=tmp_path)
    assert outcome.status is StepStatus.ERROR
    assert outcome.reason == f"working directory does not exist: {tmp_path / 'no/such/dir'}"
    assert "# error: working directory does not exist" in log_text(tmp_path)


def test_cwd_is_relative_to_root(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    outcome = run_command(command(py("import os; print('CWD', os.getcwd())"), cwd="deploy"), root=tmp_path)
    assert outcome
    assert f"CWD {tmp_path / 'deploy'}" in log_text(tmp_path)


def test_env_override_and_removal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIPC_TEST_REMOVE_ME", "present")
    monkeypatch.setenv("TIPC_TEST_KEEP_ME", "kept")
    names = ("TIPC_TEST_SET", "TIPC_TEST_REMOVE_ME", "TIPC_TEST_KEEP_ME")
    code = f"import json, os; print('ENV ' + json.dumps({{k: os.environ.get(k) for k in {names!r}}}))"
    cmd = command(py(code), env=(("TIPC_TEST_SET", "hello world"), ("TIPC_TEST_REMOVE_ME", None)))
    assert run_command(cmd, root=tmp_path)
    line = next(line for line in log_text(tmp_path).splitlines() if line.startswith("ENV "))
    assert json.loads(line[4:]) == {
        "TIPC_TEST_SET": "hello world",
        "TIPC_TEST_REMOVE_ME": None,
        "TIPC_TEST_KEEP_ME": "kept",
    }


def test_child_path_starts_with_our_interpreter_folder() -> None:
    env = child_environment((), base={"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep) == [os.path.dirname(sys.executable), "/usr/bin"]
    assert child_environment((("PATH", "/only"),), base={"PATH": "/usr/bin"})["PATH"] == "/only"


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ("python", True),
        ("python3", True),
        ("python3.7", True),
        ("/usr/bin/python3.11", True),
        ("pythonw", False),
        ("bash", False),
        ("tools/train.py", False),
    ],
)
def test_is_interpreter(program: str, expected: bool) -> None:
    assert is_interpreter(program) is expected


def test_missing_config_interpreter_falls_back_to_ours(tmp_path: Path) -> None:
    outcome = run_command(command(("python9.99", "-c", "import sys; print('EXE', sys.executable)")), root=tmp_path)
    assert outcome
    text = log_text(tmp_path)
    assert f"config interpreter python9.99 not found; using {sys.executable}" in text
    assert f"EXE {sys.executable}" in text


def test_python_option_replaces_config_interpreter(tmp_path: Path) -> None:
    outcome = run_command(command(("python", "-c", "print('ran')")), root=tmp_path, python=sys.executable)
    assert outcome
    assert f"--python {sys.executable} replaces config interpreter python" in log_text(tmp_path)


def test_shell_syntax_reaches_the_program_verbatim(tmp_path: Path) -> None:
    tricky = (
        "$(touch made_by_dollar)",
        "`touch made_by_backtick`",
        "a; touch made_by_semicolon",
        "x > redirected",
        "*",
    )
    outcome = run_command(command((sys.executable, str(SCRIPTS / "argv.py"), *tricky)), root=tmp_path)
    assert outcome
    line = next(line for line in log_text(tmp_path).splitlines() if line.startswith("ARGV "))
    assert json.loads(line[5:]) == list(tricky)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]


def test_log_folder_is_created_and_log_truncated_per_run(tmp_path: Path) -> None:
    cmd = command(py("print('run')"), log="a/b/c/step.log")
    run_command(cmd, root=tmp_path)
    run_command(cmd, root=tmp_path)
    assert log_text(tmp_path, "a/b/c/step.log").count("# command: ") == 1


def test_unwritable_log_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    outcome = run_command(command(py("pass"), log="blocker/step.log"), root=tmp_path)
    assert outcome.status is StepStatus.ERROR
    assert outcome.reason.startswith("cannot open log file")


def test_unbounded_timeout_is_accepted(tmp_path: Path) -> None:
    assert run_command(command(py("pass"), timeout_s=float("inf")), root=tmp_path)
