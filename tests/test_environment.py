"""The run environment: what reports and the history say a run ran on."""

from __future__ import annotations

import datetime
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import __version__
from harness.environment import RunEnvironment, collect_environment, read_environment, write_environment


def test_collect_names_harness_paddle_python_and_time(tmp_path: Path) -> None:
    when = datetime.datetime(2026, 12, 1, 2, 0, 0, 123, tzinfo=datetime.UTC)
    env = collect_environment(tmp_path, started=when)
    assert env.harness == __version__
    assert env.python == platform.python_version()
    assert env.paddle.endswith(("(CPU)", "(CUDA)")) or env.paddle == "not installed"
    assert env.started == "2026-12-01T02:00:00+00:00"
    assert env.cpu and env.gpus and env.hostname
    labels = [label for label, _ in env.rows()]
    assert labels[:3] == ["harness version", "Paddle", "CPU"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_commit_of_a_repository_and_dirty_work_trees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "f.txt").write_text("1\n")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert collect_environment(tmp_path).commit == head
    (tmp_path / "f.txt").write_text("2\n")
    assert collect_environment(tmp_path).commit == f"{head}+dirty"
    # outside a repository, CI's GITHUB_SHA names the commit
    monkeypatch.setenv("GITHUB_SHA", "abc123")
    assert collect_environment(tmp_path / "nowhere").commit == "abc123"


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    env = RunEnvironment(harness="1", paddle="3.1.0 (CUDA)", gpus="2 x A100", python="3.11.7", commit="c")
    write_environment(tmp_path / "o" / "environment.json", env)
    assert read_environment(tmp_path / "o" / "environment.json") == env
    assert read_environment(tmp_path / "missing.json") is None
    assert env.key() == "paddle 3.1.0 (CUDA); 2 x A100; python 3.11.7"
