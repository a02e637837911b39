"""Reports: reading and merging JUnit XML, run-to-run comparison, results logs, and the HTML page."""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.reports import (
    CaseRecord,
    ReportError,
    compare_records,
    load_junit,
    merge_junit,
    records_from_run_dir,
    render_html,
)

CONFIG = "test_tipc/configs/alpha/train_infer_python.txt"
CHAIN = "norm_train_gpus_-1_autocast_False_nodes_1"
OUT = "test_tipc/output/alpha/lite_train_lite_infer"


def case(step: str, kind: str, status: str = "passed", *, reason: str = "", text: str = "", seconds: float = 1.5) -> str:
    """A <testcase> as the pytest plugin's JUnit output has it."""
    props = {
        "model": "alpha",
        "mode": "lite_train_lite_infer",
        "config": CONFIG,
        "chain": CHAIN,
        "trainer": "norm_train",
        "step": step,
        "kind": kind,
        "command": f"python3 scripts/{step}.py --out <dir> && echo",
        "log_path": f"{OUT}/{CHAIN}_{step}.log",
        "returncode": {"passed": "0", "failed": "3"}.get(status, ""),
        "duration_s": str(seconds),
        "status": status,
        "reason": reason,
    }
    body = "".join(f'<property name="{k}" value="{v.replace("&", "&amp;").replace("<", "&lt;")}"/>' for k, v in props.items())
    result = ""
    if status == "failed":
        result = f'<failure message="{reason}">{text}</failure>'
    elif status == "skipped":
        result = f'<skipped type="pytest.skip" message="{CONFIG}:17: {reason}">{CONFIG}:17: {reason}</skipped>'
    classname = f"test_tipc.configs.alpha.train_infer_python.txt.lite_train_lite_infer.{CHAIN}"
    return f'<testcase classname="{classname}" name="{step}" time="{seconds}"><properties>{body}</properties>{result}</testcase>'


def junit(path: Path, *cases: str, extra: str = "") -> Path:
    n = len(cases) + (1 if extra else 0)
    path.write_text(
        f'<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" tests="{n}" errors="0" failures="0" skipped="0" time="1.0">'
        f"{''.join(cases)}{extra}</testsuite></testsuites>",
        encoding="utf-8",
    )
    return path


FAILED_TRAIN = case("train", "train", "failed", reason="exit code 3", text="command: x\nexit code: 3\nboom &lt;here&gt;")
SKIPPED_EVAL = case("eval", "eval", "skipped", reason="needs train, which failed")
PLAIN_TEST = '<testcase classname="tests.test_x" name="test_y" time="0.1"/>'
COLLECT_ERROR = (
    '<testcase classname="" name="test_tipc.configs.bad.train_infer_python.txt" time="0">'
    '<error message="collection failure">test_tipc/configs/bad/train_infer_python.txt:15: header is wrong</error>'
    "</testcase>"
)


def test_load_junit_reads_the_plugin_properties(tmp_path: Path) -> None:
    path = junit(tmp_path / "j.xml", case("export", "export"), FAILED_TRAIN, SKIPPED_EVAL, extra=PLAIN_TEST + COLLECT_ERROR)
    records = load_junit([path])
    by_step = {r.step: r for r in records}
    assert by_step["export"].status == "passed"
    assert by_step["export"].duration_s == 1.5
    assert by_step["export"].key == f"{CONFIG}::lite_train_lite_infer::{CHAIN}::export"
    assert by_step["train"].status == "failed"
    assert by_step["train"].returncode == "3"
    assert by_step["train"].details == "command: x\nexit code: 3\nboom <here>"
    assert by_step["eval"].status == "skipped"
    assert by_step["eval"].reason == "needs train, which failed"
    assert by_step["test_y"].tipc is False
    error = by_step["(collect)"]
    assert (error.status, error.model, error.reason) == ("error", "bad", "test_tipc/configs/bad/train_infer_python.txt:15: header is wrong")


def test_load_junit_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"missing.xml: no such file$"):
        load_junit([tmp_path / "missing.xml"])
    bad = tmp_path / "bad.xml"
    bad.write_text("<testsuites><testsuite>")
    with pytest.raises(ReportError, match=r"bad.xml: not valid XML"):
        load_junit([bad])
    other = tmp_path / "other.xml"
    other.write_text("<html/>")
    with pytest.raises(ReportError, match=r"other.xml: not a JUnit XML file"):
        load_junit([other])


def test_merge_combines_shards_and_counts(tmp_path: Path) -> None:
    one = junit(tmp_path / "shard1.xml", case("export", "export"), FAILED_TRAIN)
    two = junit(tmp_path / "shard2.xml", SKIPPED_EVAL, extra=PLAIN_TEST)
    totals = merge_junit([one, two], tmp_path / "out" / "merged.xml")
    assert (totals.tests, totals.passed, totals.failures, totals.errors, totals.skipped) == (4, 2, 1, 0, 1)
    assert totals.line() == "4 tests from 2 files: 2 passed, 1 failed, 0 errors, 1 skipped"
    assert totals.duplicates == ()
    root = ET.parse(tmp_path / "out" / "merged.xml").getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("4", "1", "1")
    assert len(root.findall("testsuite")) == 2
    merged = load_junit([tmp_path / "out" / "merged.xml"])
    assert sorted(r.key for r in merged) == sorted(r.key for r in load_junit([one, two]))


def test_merge_reports_overlapping_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = junit(tmp_path / "a.xml", FAILED_TRAIN)
    two = junit(tmp_path / "b.xml", FAILED_TRAIN)
    assert main(["report", "merge", str(one), str(two), "-o", str(tmp_path / "m.xml")]) == 0
    captured = capsys.readouterr()
    expected = f"merged into {tmp_path / 'm.xml'}: 2 tests from 2 files: 0 passed, 2 failed, 0 errors, 0 skipped"
    assert captured.out.strip() == expected
    assert "1 test cases appear in more than one file" in captured.err
    assert main(["report", "merge", str(tmp_path / "nope.xml"), "-o", str(tmp_path / "m.xml")]) == 2


def _record(step: str, status: str) -> CaseRecord:
    return CaseRecord(key=f"k::{step}", model="alpha", mode="lite", step=step, kind="train", status=status)


def test_compare_sorts_changes_into_three_lists() -> None:
    old = [_record("a", "passed"), _record("b", "failed"), _record("c", "failed"), _record("d", "passed"), _record("gone", "failed")]
    new = [_record("a", "failed"), _record("b", "passed"), _record("c", "timeout"), _record("d", "skipped"), _record("new", "error")]
    result = compare_records(old, new)
    assert [r.key for r in result.newly_failing] == ["k::a", "k::new"]
    assert [r.key for r in result.newly_passing] == ["k::b"]
    assert [r.key for r in result.still_failing] == ["k::c"]
    assert result.missing == ("k::gone",)
    assert result.text().splitlines() == [
        "newly failing: 2",
        "  k::a (failed)",
        "  k::new (error)",
        "newly passing: 1",
        "  k::b (passed)",
        "still failing: 1",
        "  k::c (timeout)",
        "not in the new run: 1",
        "  k::gone",
    ]


def test_compare_command_text_json_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = junit(tmp_path / "old.xml", case("train", "train"), case("export", "export", "failed", reason="exit code 3"))
    new = junit(tmp_path / "new.xml", FAILED_TRAIN, case("export", "export"))
    assert main(["report", "compare", str(old), str(new), "--format", "json"]) == 1  # a regression
    data = json.loads(capsys.readouterr().out)
    assert [row["key"] for row in data["newly_failing"]] == [f"{CONFIG}::lite_train_lite_infer::{CHAIN}::train"]
    assert [row["key"] for row in data["newly_passing"]] == [f"{CONFIG}::lite_train_lite_infer::{CHAIN}::export"]
    assert data["still_failing"] == [] and data["missing"] == []
    assert main(["report", "compare", str(new), str(new)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "newly failing: 0",
        "newly passing: 0",
        "still failing: 1",
        f"  {CONFIG}::lite_train_lite_infer::{CHAIN}::train (failed: exit code 3)",
    ]


def test_run_dir_from_the_text_results_log(tmp_path: Path) -> None:
    # No results.jsonl sidecar: the TIPC text lines are parsed and chain/step come from the log paths.
    out = tmp_path / "test_tipc" / "output" / "alpha" / "lite_train_lite_infer"
    out.mkdir(parents=True)
    (out / f"{CHAIN}.log").write_text("\n".join(f"line {i}" for i in range(1, 51)) + "\n")
    (out / "results_python.log").write_text(
        f"Run failed with command - alpha - python3 train.py --x=1 > {OUT}/{CHAIN}.log 2>&1! reason: exit code 3\n"
        f"Run skipped with command - alpha - python3 train.py --test-only! reason: needs train, which failed\n"
        f"\x1b[33m Run successfully with command - alpha - python3 infer.py > {OUT}/{CHAIN}/python_infer_cpu_batchsize_1.log 2>&1! \x1b[0m\n"
        f"Run failed with command - alpha - python3 export.py > {OUT}/{CHAIN}_export.log 2>&1! reason: timed out after 5 s\n"
        "some other line\n"
    )
    records = records_from_run_dir(tmp_path / "test_tipc" / "output", root=tmp_path)
    assert [(r.chain, r.step, r.kind, r.status) for r in records] == [
        (CHAIN, "train", "train", "failed"),
        ("", "skipped-line-2", "eval", "skipped"),
        (CHAIN, "python_infer_cpu_batchsize_1", "infer", "passed"),
        (CHAIN, "export", "export", "timeout"),
    ]
    assert records[0].details.endswith("\n".join(f"line {i}" for i in range(21, 51)))
    assert "line 20\n" not in records[0].details
    with pytest.raises(ReportError, match="no such folder"):
        records_from_run_dir(tmp_path / "nope", root=tmp_path)


def _alpha(step: str, kind: str, status: str, **fields: Any) -> CaseRecord:
    record = CaseRecord(key=step, model="alpha", mode="lite_train_lite_infer", config=CONFIG, chain=CHAIN, step=step,
                        kind=kind, status=status)  # fmt: skip
    return dataclasses.replace(record, **fields)


def _records() -> list[CaseRecord]:
    return [
        _alpha("train", "train", "failed", duration_s=2.0, returncode="3",
               command="python3 train.py --x='<script>alert(1)</script>' && rm", log_path=f"{OUT}/{CHAIN}.log",
               reason="exit code 3", details="command: ...\n---- last 30 lines ----\nKeyError: <missing & broken>"),
        _alpha("eval", "eval", "skipped", reason="needs train, which failed"),
        _alpha("infer_cpu_bs_1", "infer", "skipped", reason="needs export, which was skipped"),
        CaseRecord(key="4", model="beta", mode="whole_infer", step="export", kind="export", status="passed", duration_s=1.25),
        CaseRecord(key="5", model="", mode="", step="test_x", status="failed", tipc=False),
    ]  # fmt: skip


def test_html_grid_details_escaping_and_links(tmp_path: Path) -> None:
    report = tmp_path / "reports" / "report.html"
    report.parent.mkdir()
    (tmp_path / OUT).mkdir(parents=True)
    (tmp_path / OUT / f"{CHAIN}.log").write_text("KeyError\n")
    (tmp_path / OUT / "results_python.log").write_text("Run failed with command - ...\n")
    page = render_html(_records(), report_path=report, log_root=tmp_path, title="Nightly <main>", sources=["j.xml"])
    assert "<title>Nightly &lt;main&gt;</title>" in page
    # autoescape: the command and the excerpt are text, never markup
    assert "<script>alert(1)</script>" not in page
    assert "--x=&#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39; &amp;&amp; rm" in page
    assert "KeyError: &lt;missing &amp; broken&gt;" in page
    # the grid: one row per model x mode, one column per step kind present, coloured by the worst status
    grid = page[page.index('<table class="grid"') : page.index("</table>")]
    assert re.findall(r"<th>(\w+)</th>", grid) == [
        "model", "mode", "train", "eval", "export", "infer", "results", "alpha", "beta"
    ]  # fmt: skip
    # a link to each model x mode's results_python.log where there is one, a dash where not
    assert f'<a href="../{OUT}/results_python.log">results_python.log</a>' in grid
    assert grid.count("results_python.log</a>") == 1
    assert 'class="cell status-failed" data-kind="train"' in grid
    assert 'class="cell status-skipped" data-kind="eval"' in grid
    assert 'class="cell status-passed" data-kind="export"' in grid
    assert grid.count("status-none") == 4  # empty cells: alpha/export, beta/train, beta/eval, beta/infer
    # details: a row per step with status, log link relative to the report, and the failure excerpt
    assert f'<a href="../{OUT}/{CHAIN}.log">{OUT}/{CHAIN}.log</a>' in page
    # no dead links: every relative href names a file that exists (skipped steps and missing logs link nowhere)
    for href in re.findall(r'href="([^"#][^"]*)"', page):
        assert (report.parent / href).is_file(), href
    assert page.count('<tr class="step"') == 4
    assert 'data-status="failed"' in page and 'data-status="skipped"' in page
    assert '<pre class="excerpt">' in page
    assert "1 other test case (not TIPC steps) in the input, 1 failing: 5." in page
    # self-contained: no external resources
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "<link" not in page


def test_html_command_from_junit_and_from_a_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = junit(tmp_path / "j.xml", FAILED_TRAIN, SKIPPED_EVAL)
    out = tmp_path / "r" / "report.html"
    assert main(["report", "html", str(path), "-o", str(out), "--log-root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}: 2 steps, 1 failing"
    assert "needs train, which failed" in out.read_text()
    assert main(["report", "html", "-o", str(out)]) == 2
    assert "give JUnit XML files or --run-dir" in capsys.readouterr().err
    (tmp_path / "output" / "alpha" / "whole_infer").mkdir(parents=True)
    (tmp_path / "output" / "alpha" / "whole_infer" / "results_python.log").write_text(
        "Run successfully with command - alpha - python3 x.py > t/whole_infer/python_infer_cpu_batchsize_1.log 2>&1!\n"
    )
    assert main(["report", "html", "--run-dir", str(tmp_path / "output"), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}: 1 steps, 0 failing"


def _failure(chain: str, tail: str, reason: str = "exit code 1") -> CaseRecord:
    details = f"command: python3 x.py --out {chain}\nexit code: 1\n---- last 30 lines of the log ----\n{tail}"
    return _alpha(f"train-{chain}", "train", "failed", chain=chain, reason=reason, details=details, key=chain)


def test_failures_with_one_cause_form_one_block(tmp_path: Path) -> None:
    records = [
        # same reason, same last lines once paths and numbers are blanked: one cause
        _failure("c1", "loading data\nFileNotFoundError: /x/c1/train_list.txt (epoch 1)"),
        _failure("c2", "loading data\nFileNotFoundError: /x/c2/train_list.txt (epoch 2)"),
        _failure("c3", "loading data\nFileNotFoundError: /x/c3/train_list.txt (epoch 3)"),
        # a different last line: another cause
        _failure("c4", "step 3\nRuntimeError: CUDA out of memory"),
        # the same last line but a different reason: another cause
        _failure("c5", "loading data\nFileNotFoundError: /x/c5/train_list.txt (epoch 1)", reason="timed out after 5 s"),
    ]
    page = render_html(records, report_path=tmp_path / "r.html", log_root=tmp_path)
    sections = re.findall(r'<section class="failure[^"]*" id="(failure-\d+)".*?</section>', page, re.S)
    assert sections == ["failure-1", "failure-2", "failure-3"]
    assert "<h2>Failures: 5 steps, 3 causes</h2>" in page
    first = page[page.index('id="failure-1"') : page.index('id="failure-2"')]
    assert [m for m in re.findall(r"&middot; (c\d) &middot;", first)] == ["c1", "c2", "c3"]
    assert "3 steps" in first
    # every failing row links to its block
    assert page.count('<a href="#failure-1">log excerpt</a>') == 3
    assert page.count('<a href="#failure-2">log excerpt</a>') == 1


def test_compare_text_caps_long_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [case(f"infer_{i}", "infer") for i in range(60)]
    old = junit(tmp_path / "old.xml", *cases)
    new = junit(tmp_path / "new.xml", cases[0])
    assert main(["report", "compare", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert "not in the new run: 59" in out
    assert out.count("  test_tipc/configs/alpha") == 20
    assert "  ... and 39 more (--limit 0 lists all, --format json too)" in out
    assert main(["report", "compare", str(old), str(new), "--limit", "0"]) == 0
    assert capsys.readouterr().out.count("  test_tipc/configs/alpha") == 59
