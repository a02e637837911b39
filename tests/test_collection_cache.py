"""Collection cost: the plan cache shared by workers and runs, -k pruning before planning, --tipc-affected-since."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import load_config, parse_config_text
from harness.plan import PlanOptions, build_plan
from harness.plan_cache import PlanCache, folder_fingerprint, plan_key

pytest_plugins = ["pytester"]

DATA = Path(__file__).parent / "data" / "plugin"
ALPHA_CONFIG = DATA / "configs" / "alpha" / "train_infer_python.txt"
LITE = "lite_train_lite_infer"


def test_a_cached_plan_equals_a_fresh_one_and_a_second_process_reads_it(tmp_path: Path) -> None:
    config = load_config(ALPHA_CONFIG)
    options = PlanOptions(repo_root="/r")
    first = PlanCache(tmp_path)
    plan = first.plan(config, LITE, options)
    assert plan == build_plan(config, LITE, options)
    assert (first.hits, first.misses) == (0, 1)
    second = PlanCache(tmp_path)  # what another xdist worker, or the next run, does
    assert second.plan(config, LITE, options) == plan
    assert (second.hits, second.misses) == (1, 0)
    assert len(list(tmp_path.glob("*.pickle"))) == 1


def test_the_key_follows_content_mode_and_options() -> None:
    text = ALPHA_CONFIG.read_text(encoding="utf-8")
    config = parse_config_text("c.txt", text)
    options = PlanOptions()
    key = plan_key(config, LITE, options)
    assert plan_key(parse_config_text("c.txt", text), LITE, options) == key
    assert plan_key(parse_config_text("c.txt", text.replace("--epochs", "--epoch")), LITE, options) != key
    assert plan_key(parse_config_text("d.txt", text), LITE, options) != key  # plans name their config
    assert plan_key(config, "whole_infer", options) != key
    assert plan_key(config, LITE, dataclasses.replace(options, quirks=True)) != key


def test_the_code_fingerprint_covers_subpackages(tmp_path: Path) -> None:
    (tmp_path / "planning").mkdir()
    (tmp_path / "plan.py").write_text("A = 1\n", encoding="utf-8")
    (tmp_path / "planning" / "grid.py").write_text("B = 1\n", encoding="utf-8")
    before = folder_fingerprint(tmp_path)
    (tmp_path / "planning" / "grid.py").write_text("B = 2\n", encoding="utf-8")
    assert folder_fingerprint(tmp_path) != before


def test_a_damaged_cache_file_is_a_miss(tmp_path: Path) -> None:
    config = load_config(ALPHA_CONFIG)
    cache = PlanCache(tmp_path)
    cache.plan(config, LITE, PlanOptions())
    (entry,) = tmp_path.glob("*.pickle")
    entry.write_bytes(b"not a pickle")
    again = PlanCache(tmp_path)
    assert again.plan(config, LITE, PlanOptions()) == build_plan(config, LITE, PlanOptions())
    assert again.misses == 1


# --------------------------------------------------------------------------- through pytest


@pytest.fixture
def root(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    pytester.makeini("[pytest]\naddopts = --strict-markers --strict-config\n")
    shutil.copytree(DATA / "scripts", pytester.path / "scripts")
    for name in ("alpha", "gpu_only"):
        shutil.copytree(DATA / "configs" / name, pytester.path / "test_tipc" / "configs" / name)
    yield pytester.path


def _ids(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def _cached(root: Path) -> list[Path]:
    return sorted((root / ".pytest_cache" / "d" / "tipc-plans").glob("*.pickle"))


def test_the_second_collection_plans_nothing(pytester: pytest.Pytester, root: Path) -> None:
    first = pytester.runpytest("-p", "harness.pytest_plugin", "--collect-only", "-q", "--tipc-plan-cache")
    entries = _cached(root)
    assert len(entries) == 2  # alpha and gpu_only, one mode each
    stamps = [p.stat().st_mtime_ns for p in entries]
    second = pytester.runpytest("-p", "harness.pytest_plugin", "--collect-only", "-q", "--tipc-plan-cache")
    assert _ids(second) == _ids(first) and len(_ids(first)) > 10
    assert [p.stat().st_mtime_ns for p in _cached(root)] == stamps
    # A config edit is a new key: that config is planned again, the other one still comes from the cache.
    alpha = root / "test_tipc" / "configs" / "alpha" / "train_infer_python.txt"
    alpha.write_text(alpha.read_text(encoding="utf-8").replace("1|2", "1"), encoding="utf-8")
    third = pytester.runpytest("-p", "harness.pytest_plugin", "--collect-only", "-q", "--tipc-plan-cache")
    assert len(_cached(root)) == 3
    assert len(_ids(third)) < len(_ids(first))


def test_the_cache_is_off_by_default(pytester: pytest.Pytester, root: Path) -> None:
    result = pytester.runpytest("-p", "harness.pytest_plugin", "--collect-only", "-q")
    assert _ids(result) and _cached(root) == []


def test_xdist_workers_share_the_cache(pytester: pytest.Pytester, root: Path) -> None:
    serial = _ids(pytester.runpytest("-p", "harness.pytest_plugin", "--collect-only", "-q", "-p", "no:cacheprovider"))
    result = pytester.runpytest(
        "-p", "harness.pytest_plugin", "-p", "xdist.plugin", "-n", "2", "--collect-only", "--tipc-plan-cache"
    )
    result.stdout.fnmatch_lines([f"*{len(serial)} items*"])
    assert len(_cached(root)) == 2  # two workers, each config x mode planned and stored once


def test_k_that_rules_a_file_out_skips_planning_it(pytester: pytest.Pytester, root: Path) -> None:
    result = pytester.runpytest(
        "-p", "harness.pytest_plugin", "--collect-only", "-q", "-k", "not gpu_only", "--tipc-plan-cache"
    )
    ids = _ids(result)
    assert ids and all(i.startswith("test_tipc/configs/alpha/") for i in ids)
    assert "deselected" not in result.outlines[-1]  # never collected, so never deselected
    assert len(_cached(root)) == 1
    # An expression a deeper name may satisfy is left to pytest: both files are planned, gpu_only deselected.
    result = pytester.runpytest("-p", "harness.pytest_plugin", "--collect-only", "-q", "-k", "alpha or infer_cpu")
    assert any("gpu_only" in i for i in _ids(result))


def _git(root: Path, *args: str) -> None:
    subprocess.run(("git", "-C", str(root), *args), check=True, capture_output=True)


def test_affected_since_keeps_only_changed_cases(pytester: pytest.Pytester, root: Path) -> None:
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
    alpha = root / "test_tipc" / "configs" / "alpha" / "train_infer_python.txt"
    alpha.write_text(alpha.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    result = pytester.runpytest("-p", "harness.pytest_plugin", "--collect-only", "-q", "--tipc-affected-since", "HEAD")
    ids = _ids(result)
    assert ids and all(i.startswith("test_tipc/configs/alpha/") for i in ids)
    assert "deselected" in result.outlines[-1]
    # The script both configs run: every case.
    (root / "scripts" / "ok.py").write_text("# changed\n", encoding="utf-8")
    result = pytester.runpytest("-p", "harness.pytest_plugin", "--collect-only", "-q", "--tipc-affected-since", "HEAD")
    assert any("gpu_only" in i for i in _ids(result)) and any("alpha" in i for i in _ids(result))


def test_xdist_workers_use_the_controllers_hardware_probe(pytester: pytest.Pytester, root: Path) -> None:
    # Workers would see three GPUs if they probed for themselves; the controller saw none (TIPC_GPU_COUNT=0),
    # so the GPU-only chain must be skipped: the workers used the controller's answer.
    pytester.makeconftest(
        "import os\n"
        "def pytest_configure(config):\n"
        "    if hasattr(config, 'workerinput'):\n"
        "        os.environ['TIPC_GPU_COUNT'] = '3'\n"
    )
    result = pytester.runpytest("-p", "harness.pytest_plugin", "-p", "xdist.plugin", "-n", "2", "-k", "gpu_only")
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped", 0) > 0 and "passed" not in outcomes


def test_affected_since_outside_git_is_a_usage_error(pytester: pytest.Pytester, root: Path) -> None:
    result = pytester.runpytest("-p", "harness.pytest_plugin", "--collect-only", "--tipc-affected-since", "HEAD")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: tipc affected: git *"])
    assert "Traceback" not in result.stderr.str()
