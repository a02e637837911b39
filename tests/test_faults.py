"""Fault injection on real processes: signals (single and double), a step ignoring SIGTERM, a grandchild left
behind, a full disk, an unwritable output folder and two runs of one folder at once. No mocked Popen: each test
runs ``python -m harness run`` as a user would, and waits for events (a pid file, a log line), never for time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from procs import alive, read_pid, wait_until

DATA = Path(__file__).parent / "data" / "run"
PROJECT = Path(__file__).resolve().parents[1]
# The harness of this checkout, whatever the virtualenv has installed: the runs start in other folders.
PYTHONPATH = os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH", "")]))
MODE = "lite_train_lite_infer"
CHAIN = "norm_train_gpus_-1_autocast_False_nodes_1"
STEPS_OF_SLEEP = ("train", "eval", "export", "infer_gpu_bs_1", "infer_cpu_bs_1")


def out_dir(root: Path, model: str) -> Path:
    return root / "test_tipc" / "output" / model / MODE


def make_repo(root: Path) -> Path:
    shutil.copytree(DATA, root, dirs_exist_ok=True)
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def start(root: Path, config: str, *args: str, **env: str) -> subprocess.Popen[str]:
    full_env = {**os.environ, "TIPC_GPU_COUNT": "0", "TIPC_TENSORRT": "0", "PYTHONPATH": PYTHONPATH, **env}
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", config, MODE, *args],
        cwd=root,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # our own Ctrl-C never reaches it; only the signals a test sends do
    )


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def step_log(root: Path, model: str = "toy_sleep") -> Path:
    return out_dir(root, model) / f"{CHAIN}.log"


def started(root: Path, pidfile: Path) -> bool:
    log = step_log(root)
    return pidfile.exists() and Path(f"{pidfile}.step").exists() and log.exists() and (
        "sleep.py sleeping" in log.read_text()
    )


def assert_true_record(root: Path, sig: signal.Signals) -> None:
    """results_python.log and results.jsonl both say: train failed (interrupted), the other steps skipped."""
    lines = (out_dir(root, "toy_sleep") / "results_python.log").read_text().splitlines()
    assert len(lines) == len(STEPS_OF_SLEEP)
    assert lines[0].startswith("Run failed with command - toy_sleep - ")
    assert lines[0].endswith(f"2>&1! reason: interrupted by {sig.name}")
    for line in lines[1:]:
        assert line.startswith("Run skipped with command - toy_sleep - ")
        assert line.endswith(f"! reason: not run: the run was interrupted by {sig.name}")
    records = [json.loads(x) for x in (out_dir(root, "toy_sleep") / "results.jsonl").read_text().splitlines()]
    assert [(r["step"], r["status"]) for r in records] == [
        ("train", "failed"),
        *((name, "skipped") for name in STEPS_OF_SLEEP[1:]),
    ]
    assert records[0]["reason"] == f"interrupted by {sig.name}"


# --- signals -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_one_signal_stops_the_tree_and_leaves_a_true_record(repo: Path, sig: signal.Signals, code: int) -> None:
    pidfile = repo / "grandchild.pid"
    proc = start(repo, "configs/sleep.txt", TIPC_TEST_PIDFILE=str(pidfile))
    wait_until(lambda: started(repo, pidfile), what="the step and its grandchild started")
    proc.send_signal(sig)
    out, err = finish(proc)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert f"run interrupted by {sig.name}" in out
    assert not alive(read_pid(pidfile))
    assert not alive(read_pid(Path(f"{pidfile}.step")))
    assert_true_record(repo, sig)


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_second_signal_does_not_cut_the_cleanup_short(repo: Path, second: signal.Signals) -> None:
    """The step ignores SIGTERM, so the harness is in its kill grace period when the second signal arrives."""
    pidfile = repo / "grandchild.pid"
    proc = start(repo, "configs/sleep.txt", TIPC_TEST_PIDFILE=str(pidfile), TIPC_TEST_IGNORE_TERM="1")
    wait_until(lambda: started(repo, pidfile), what="the step started")
    proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "sleep.py got SIGTERM" in step_log(repo).read_text(), what="the grace period began")
    proc.send_signal(second)
    out, err = finish(proc)
    assert proc.returncode == 143, err  # the first signal decides the exit code
    assert "Traceback" not in err
    assert f"{second.name} again; still stopping the running step" in err
    assert not alive(read_pid(pidfile))  # the grandchild ignored SIGTERM too: SIGKILL still came
    assert not alive(read_pid(Path(f"{pidfile}.step")))
    assert "# interrupted; process group killed" in step_log(repo).read_text()
    assert_true_record(repo, signal.SIGTERM)


def test_a_step_ignoring_sigterm_is_killed_after_the_grace_period(repo: Path) -> None:
    pidfile = repo / "grandchild.pid"
    proc = start(repo, "configs/sleep.txt", TIPC_TEST_PIDFILE=str(pidfile), TIPC_TEST_IGNORE_TERM="1")
    wait_until(lambda: started(repo, pidfile), what="the step started")
    proc.send_signal(signal.SIGTERM)
    out, err = finish(proc)
    assert proc.returncode == 143, err
    assert "sleep.py got SIGTERM" in step_log(repo).read_text()
    assert not alive(read_pid(Path(f"{pidfile}.step")))
    assert not alive(read_pid(pidfile))


def test_a_grandchild_left_behind_by_a_passing_step_is_reaped(repo: Path) -> None:
    pidfile = repo / "grandchild.pid"
    proc = start(repo, "configs/sleep.txt", "--only", "train", TIPC_TEST_PIDFILE=str(pidfile), TIPC_TEST_DETACH="1")
    out, err = finish(proc)
    assert proc.returncode == 0, out + err
    assert not alive(read_pid(pidfile))
    assert "background process(es) left in the step's process group; group killed" in step_log(repo).read_text()
    lines = (out_dir(repo, "toy_sleep") / "results_python.log").read_text().splitlines()
    assert lines[0].startswith("Run successfully with command - toy_sleep - ")


def test_report_html_of_an_interrupted_run_says_so(repo: Path) -> None:
    pidfile = repo / "grandchild.pid"
    proc = start(repo, "configs/sleep.txt", TIPC_TEST_PIDFILE=str(pidfile))
    wait_until(lambda: started(repo, pidfile), what="the step started")
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    report = subprocess.run(
        [sys.executable, "-m", "harness", "report", "html", "--run-dir", "test_tipc/output", "-o", "r.html"],
        cwd=repo, capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "PYTHONPATH": PYTHONPATH},
    )
    assert report.returncode == 0, report.stderr
    assert f"run interrupted: toy_sleep {MODE}: {CHAIN}::train interrupted by SIGTERM" in report.stdout
    page = (repo / "r.html").read_text()
    assert "run interrupted</strong>" in page
    assert "interrupted by SIGTERM" in page


# --- two runs at once ----------------------------------------------------------------------------------------------


def test_a_second_run_of_the_same_folder_is_refused_and_the_first_keeps_its_logs(repo: Path) -> None:
    pidfile = repo / "grandchild.pid"
    first = start(repo, "configs/sleep.txt", TIPC_TEST_PIDFILE=str(pidfile))
    try:
        wait_until(lambda: started(repo, pidfile), what="the first run's step started")
        second = start(repo, "configs/sleep.txt", TIPC_TEST_SLEEP="0")
        out, err = finish(second)
        assert second.returncode == 3
        assert f"another run is writing {out_dir(repo, 'toy_sleep')} (pid {first.pid})" in err
        assert "Traceback" not in err
        assert "sleep.py sleeping" in step_log(repo).read_text()  # the first run's log is untouched
        assert (out_dir(repo, "toy_sleep") / "results_python.log").read_text() == ""  # the second recorded nothing
    finally:
        first.send_signal(signal.SIGTERM)
        finish(first)
    # The lock went with the first run: the same run now goes through.
    again = start(repo, "configs/sleep.txt", "--only", "train", TIPC_TEST_SLEEP="0")
    out, err = finish(again)
    assert again.returncode == 0, out + err


# --- full disk and unwritable output -------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted when this process may mount (root in a container that allows it)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def test_full_disk_keeps_the_steps_own_failure_and_names_the_path(small_disk: Path) -> None:
    root = make_repo(small_disk / "repo")
    config = (root / "configs" / "ok.txt").read_text().replace("scripts/ok.py --train", "scripts/fill.py --train")
    assert "scripts/fill.py" in config
    (root / "configs" / "fill.txt").write_text(config.replace("model_name:toy_ok", "model_name:toy_fill"))
    proc = start(root, "configs/fill.txt", "--only", "train")
    out, err = finish(proc)
    assert proc.returncode == 1
    assert "Traceback" not in out + err
    # The step filled the disk and exited 3: that is its outcome, not a harness error.
    assert f"FAILED   {CHAIN}::train  (exit code 3)" in out
    assert "harness error" not in out + err
    results = out_dir(root, "toy_fill") / "results_python.log"
    trouble = [line for line in err.splitlines() if line.startswith("tipc: cannot write ")]
    assert trouble, err
    assert all("No space left on device" in line for line in trouble)
    assert any(str(results) in line or str(results.parent / "results.jsonl") in line for line in trouble)
    assert len(set(trouble)) == len({line.split(":")[1] for line in trouble})  # one line per path, not per step


def test_full_disk_before_the_first_step_is_one_line(small_disk: Path) -> None:
    root = make_repo(small_disk / "repo")
    out = out_dir(root, "toy_ok")
    out.mkdir(parents=True)
    (out / ".locks").mkdir()
    filler = small_disk / "filler"
    with open(filler, "wb") as handle:  # fill every block that is left
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    proc = start(root, "configs/ok.txt")
    stdout, err = finish(proc)
    assert proc.returncode != 0
    assert "Traceback" not in stdout + err
    assert "No space left on device" in err
    assert str(out) in err


def test_output_folder_that_cannot_be_created_is_one_line(repo: Path) -> None:
    (repo / "test_tipc").mkdir()
    (repo / "test_tipc" / "output").write_text("a file where the output folder should be\n")
    proc = start(repo, "configs/ok.txt")
    out, err = finish(proc)
    assert proc.returncode == 1
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("tipc: ") and str(repo / "test_tipc" / "output") in lines[0]


# --- the pytest front ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_pytest_run_stopped_by_a_signal_leaves_no_step_process(tmp_path: Path, sig: signal.Signals) -> None:
    root = tmp_path / "project"
    shutil.copytree(DATA / "scripts", root / "scripts")
    config = root / "test_tipc" / "configs" / "toy_sleep" / "train_infer_python.txt"
    config.parent.mkdir(parents=True)
    shutil.copy(DATA / "configs" / "sleep.txt", config)
    (root / "pytest.ini").write_text("[pytest]\n")
    pidfile = root / "grandchild.pid"
    env = {**os.environ, "TIPC_GPU_COUNT": "0", "TIPC_TENSORRT": "0", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
           "TIPC_TEST_PIDFILE": str(pidfile), "PYTHONPATH": PYTHONPATH}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "harness.pytest_plugin", "-p", "no:cacheprovider", "-q"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    wait_until(lambda: started(root, pidfile), what="the train step started under pytest")
    proc.send_signal(sig)
    out, err = finish(proc)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out + err
    assert not alive(read_pid(pidfile))
    assert not alive(read_pid(Path(f"{pidfile}.step")))
    assert "# interrupted; process group killed" in step_log(root).read_text()


def test_pytest_on_a_full_disk_keeps_the_steps_own_failure(small_disk: Path) -> None:
    root = small_disk / "project"
    shutil.copytree(DATA / "scripts", root / "scripts")
    config = root / "test_tipc" / "configs" / "toy_fill" / "train_infer_python.txt"
    config.parent.mkdir(parents=True)
    text = (DATA / "configs" / "ok.txt").read_text().replace("scripts/ok.py --train", "scripts/fill.py --train")
    config.write_text(text.replace("model_name:toy_ok", "model_name:toy_fill"))
    (root / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "TIPC_GPU_COUNT": "0", "TIPC_TENSORRT": "0", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
           "PYTHONPATH": PYTHONPATH}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.pytest_plugin", "-p", "no:cacheprovider", "-q", "-k", "train"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out
    assert "exit code: 3" in out  # the step's own failure, as the plugin shows it
    assert "Traceback" not in out and "OSError" not in out
