"""Run history in a real database: SQLite always, PostgreSQL when TIPC_TEST_POSTGRES_URL names a server (.ci/run)."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy  # noqa: F401  (imported before pytester's in-process runs, which drop modules first imported inside them)

from harness.cli import main
from harness.environment import RunEnvironment
from harness.history import (
    FIXED,
    FLAKY,
    NEW_FAILURE,
    STILL_FAILING,
    History,
    HistoryError,
    classify,
    database_url,
    numbers_from_log,
    trends,
)
from harness.reports import CaseRecord, render_html

pytest_plugins = ["pytester"]

POSTGRES_ENV = "TIPC_TEST_POSTGRES_URL"
DATA = Path(__file__).parent / "data"
OUT = "test_tipc/output/alpha/lite_train_lite_infer"


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty history: a SQLite file, or a schema of its own on the PostgreSQL server .ci/run starts."""
    if request.param == "sqlite":
        yield str(tmp_path / "history.sqlite")
        return
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} (.ci/run starts one and sets it)")
    import sqlalchemy as sa

    schema = f"tipc_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(database_url(server))
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in server else "?"
    try:
        yield f"{server}{separator}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def step(name: str, status: str, *, seconds: float = 1.0, reason: str = "", log: str = "") -> CaseRecord:
    return CaseRecord(
        key=f"cfg.txt::lite_train_lite_infer::chain::{name}",
        model="alpha",
        mode="lite_train_lite_infer",
        config="cfg.txt",
        chain="chain",
        step=name,
        kind="train",
        status=status,
        duration_s=seconds,
        reason=reason,
        log_path=log,
    )


def env(commit: str, started: str) -> RunEnvironment:
    return RunEnvironment(harness="0.1.0", paddle="3.1.0 (CPU)", gpus="none", python="3.11.7", commit=commit,
                          hostname="ci-1", started=started)  # fmt: skip


def verdicts_of(url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """`tipc history --format json`, as step name -> verdict."""
    assert main(["history", "--history", url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    return {row["key"].rsplit("::", 1)[1]: row["verdict"] for row in rows}


def test_two_runs_classify_new_still_fixed_and_flaky(
    history_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / OUT).mkdir(parents=True)
    (tmp_path / OUT / "a.log").write_text("epoch: 1/1 iter: 1/2 loss: 2.3 ips: 100.0 samples/s\n"
                                          "ips: 120.0 samples/s\neval: top1=0.7170 top5=0.9900 samples=60\n")  # fmt: skip
    with History(history_url) as history:
        history.record_run(
            [step("a", "passed", seconds=10.0, log=f"{OUT}/a.log"), step("b", "failed", reason="exit code 1"),
             step("c", "passed"), step("d", "failed", reason="exit code 2"), step("e", "passed")],
            environment=env("1111111", "2026-11-30T02:00:00+00:00"), run_id="run-1", log_root=tmp_path,
        )  # fmt: skip
        history.record_run(
            [step("a", "failed", seconds=12.5, reason="exit code 1"), step("b", "failed", reason="exit code 1"),
             step("c", "flaky", reason="flaky: passed on attempt 2 after exit code 1"), step("d", "passed"),
             step("e", "passed")],
            environment=env("2222222", "2026-12-01T02:00:00+00:00"), run_id="run-2", log_root=tmp_path,
        )  # fmt: skip
        rows = history.rows()
        assert history.run_ids() == ("run-1", "run-2")
    # stored per step: run, time, commit, environment, status, duration, reason and the numbers from the log
    first_a = next(r for r in rows if r.run_id == "run-1" and r.step == "a")
    assert (first_a.commit, first_a.status, first_a.duration_s) == ("1111111", "passed", 10.0)
    assert first_a.environment == "paddle 3.1.0 (CPU); none; python 3.11.7"
    assert (first_a.metric_name, first_a.metric, first_a.ips) == ("top1", 0.717, 110.0)
    assert first_a.started.isoformat() == "2026-11-30T02:00:00+00:00"
    assert verdicts_of(history_url, capsys) == {
        "a": NEW_FAILURE, "b": STILL_FAILING, "c": FLAKY, "d": FIXED, "e": "passing"
    }  # fmt: skip
    # the text view groups them and shows the duration trend
    assert main(["history", "--history", history_url]) == 0
    text = capsys.readouterr().out
    assert "2 run(s) in " in text
    assert "1 new failure, 1 flaky, 1 still failing, 1 fixed, 1 passing" in text
    assert "new failure: 1\n  cfg.txt::lite_train_lite_infer::chain::a  ▁█ 12.5 s (+25%)  (exit code 1)" in text
    assert "tipc:tipc" not in text  # never prints a password


def test_alternating_results_on_one_commit_are_flaky(history_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with History(history_url) as history:
        for n, status in enumerate(("passed", "failed", "passed"), start=1):
            history.record_run([step("c", status), step("f", "failed")],
                               environment=env("3333333", f"2026-12-0{n}T02:00:00+00:00"), run_id=f"r{n}")  # fmt: skip
        # recording a run id again replaces it instead of adding a fourth run
        history.record_run([step("c", "passed"), step("f", "failed")],
                           environment=env("3333333", "2026-12-03T02:00:00+00:00"), run_id="r3")  # fmt: skip
        assert len(history.run_ids()) == 3
    assert verdicts_of(history_url, capsys) == {"c": FLAKY, "f": STILL_FAILING}


def test_the_html_report_shows_changes_and_a_trend_chart(history_url: str, tmp_path: Path) -> None:
    with History(history_url) as history:
        history.record_run([step("a", "passed", seconds=3.0), step("b", "passed", seconds=1.0)],
                           environment=env("1", "2026-11-30T02:00:00+00:00"), run_id="one")  # fmt: skip
        latest = [step("a", "failed", seconds=4.0, reason="exit code 1"), step("b", "passed", seconds=1.0)]
        history.record_run(latest, environment=env("2", "2026-12-01T02:00:00+00:00"), run_id="two")
        rows = history.rows()
    assert [t.points for t in trends(rows)] == [
        (("2026-11-30T02:00:00+00:00", 4.0, 2, 0), ("2026-12-01T02:00:00+00:00", 5.0, 1, 1))
    ]
    page = render_html(latest, report_path=tmp_path / "r.html", log_root=tmp_path, history=rows,
                       environment=env("2", "2026-12-01T02:00:00+00:00"))  # fmt: skip
    changes = page[page.index('<table class="changes"') :]
    changes = changes[: changes.index("</table>")]
    assert '<tr data-verdict="new failure"><td>cfg.txt::lite_train_lite_infer::chain::a</td>' in changes
    assert "::chain::b" not in changes  # unchanged steps are not listed
    assert '<svg class="trend"' in page and 'class="failing"' in page
    assert "2 runs, last 5.0 s (range 4.0 to 5.0 s)" in page
    assert "<th>Paddle</th><td>3.1.0 (CPU)</td>" in page


def test_cli_run_records_history_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    root = tmp_path / "repo"
    shutil.copytree(DATA / "run", root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    url = str(tmp_path / "h.sqlite")
    for _ in range(2):
        assert main(["run", "configs/ok.txt", "lite_train_lite_infer", "--history", url]) == 0
    out = capsys.readouterr().out
    assert out.count("history: recorded run ") == 2
    with History(url) as history:
        assert len(history.run_ids()) == 2
        rows = history.rows()
    assert {r.status for r in rows} == {"passed", "skipped"}
    assert {v.verdict for v in classify(rows)} == {"passing", "skipped"}
    # the run wrote its environment next to its results; the report of the run folder shows it, and the history
    page = root / "r.html"
    assert main(["report", "html", "--run-dir", "test_tipc/output", "-o", str(page), "--history", url]) == 0
    text = page.read_text()
    assert "<th>Paddle</th>" in text and "<th>host</th>" in text
    assert "Nothing changed since the last recorded run (2 runs in the history)." in text


def test_pytest_records_history_and_the_environment(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    pytester.makeini("[pytest]\n")
    shutil.copytree(DATA / "plugin" / "scripts", pytester.path / "scripts")
    shutil.copytree(DATA / "plugin" / "configs" / "broken", pytester.path / "test_tipc" / "configs" / "broken")
    url = str(tmp_path / "h.sqlite")
    result = pytester.runpytest("-p", "harness.pytest_plugin", f"--tipc-history={url}", "--junitxml=j.xml")
    result.stdout.fnmatch_lines(["tipc: recorded run * (4 steps) in the history"])
    with History(url) as history:
        rows = history.rows()
    assert sorted((r.step, r.status) for r in rows) == [
        ("eval", "skipped"), ("export", "skipped"), ("infer_cpu_bs_1", "skipped"), ("train", "failed")
    ]  # fmt: skip
    assert next(r for r in rows if r.step == "train").reason == "exit code 3"
    assert 'name="tipc_env_python"' in (pytester.path / "j.xml").read_text()


def test_a_bad_url_is_one_line() -> None:
    with pytest.raises(HistoryError, match=r"^history database nosuchdriver://x: "):
        History("nosuchdriver://x")
    assert database_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"


def test_numbers_from_log() -> None:
    assert numbers_from_log("eval: mAP=0.7190 mAP50=0.9150\n") == ("mAP", 0.719, None)
    assert numbers_from_log("nothing here") == ("", None, None)
