"""Flaky re-runs: a failed step is re-run before its dependents; a pass on a re-run is FLAKY everywhere, never PASSED."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy  # noqa: F401  (imported before pytester's in-process runs, which drop modules first imported inside them)

from harness.cli import main
from harness.history import FLAKY, History, classify
from harness.reports import load_junit

pytest_plugins = ["pytester"]

DATA = Path(__file__).parent / "data" / "plugin"
CONFIG = "test_tipc/configs/wobbly/train_infer_python.txt"
OUT = "test_tipc/output/wobbly/lite_train_lite_infer"


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    pytester.makeini("[pytest]\n")
    shutil.copytree(DATA / "scripts", pytester.path / "scripts")
    shutil.copytree(DATA / "configs" / "wobbly", pytester.path / "test_tipc" / "configs" / "wobbly")
    return pytester


def test_without_reruns_the_first_failure_stands(project: pytest.Pytester) -> None:
    result = project.runpytest("-p", "harness.pytest_plugin")
    result.assert_outcomes(passed=0, failed=1, skipped=3)
    assert (project.path / "wobbly.count").read_text() == "1"


@pytest.mark.parametrize("workers", [(), ("-p", "xdist.plugin", "-n", "2")], ids=["serial", "xdist"])
def test_a_pass_on_a_rerun_is_flaky_and_dependents_run_once(
    project: pytest.Pytester, tmp_path: Path, workers: tuple[str, ...]
) -> None:
    url = str(tmp_path / "h.sqlite")
    result = project.runpytest("-p", "harness.pytest_plugin", *workers, "--tipc-reruns=2", "--junitxml=j.xml",
                               f"--tipc-history={url}", "-v")  # fmt: skip
    # terminal: FLAKY, counted apart from the passes
    result.stdout.re_match_lines([r".*(FLAKY \S+::train|::train FLAKY)", r".*3 passed, 1 flaky"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("flaky") == 1 and outcomes.get("passed") == 3
    # train ran twice (one re-run, not two), the failed attempt's log is kept, its dependents ran once each
    assert (project.path / "wobbly.count").read_text() == "2"
    chain_dir = next((project.path / OUT).glob("*.log.attempt1"))
    assert "transient failure" in chain_dir.read_text()
    results = (project.path / OUT / "results_python.log").read_text().splitlines()
    assert len(results) == 4 and all(line.startswith("Run successfully") for line in results)
    # JUnit: a property, and the report reads it back as flaky
    train = next(r for r in load_junit([project.path / "j.xml"]) if r.step == "train")
    assert (train.status, train.attempts) == ("flaky", 2)
    assert train.reason == "flaky: passed on attempt 2 after exit code 1"
    # history: stored as flaky, classified as flaky
    with History(url) as history:
        rows = history.rows()
    assert {r.step: r.status for r in rows}["train"] == "flaky"
    assert {v.key.rsplit("::", 1)[1]: v.verdict for v in classify(rows)}["train"] == FLAKY


def test_cli_reruns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "repo"
    shutil.copytree(DATA / "scripts", root / "scripts")
    shutil.copytree(DATA / "configs" / "wobbly", root / "test_tipc" / "configs" / "wobbly")
    monkeypatch.chdir(root)
    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    assert main(["run", CONFIG, "lite_train_lite_infer", "--reruns", "1"]) == 0
    out = capsys.readouterr().out
    assert "FLAKY    norm_train_gpus_-1_autocast_False_nodes_1::train  (flaky: passed on attempt 2 after exit code 1)" in out
    # totals: the flaky step passes for the exit code, and the line says it was flaky
    assert any(line.startswith("4 passed in ") and line.endswith("(1 of them flaky: passed only on a re-run)")
               for line in out.splitlines()), out
