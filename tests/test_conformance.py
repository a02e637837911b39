"""Every config x mode of the shared conformance corpus plans, with --quirks, to the reference argv and cwd."""

from __future__ import annotations

import json

import pytest

from conformance import Case, cases, planned
from harness.config import load_config
from harness.plan import PlanOptions, build_plan

CASES = cases()
pytestmark = pytest.mark.skipif(not CASES, reason="../shared/tipc-conformance is not beside this checkout")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_quirks_plan_matches_reference_argv(case: Case) -> None:
    oracle = json.loads(case.oracle.read_text())
    argv, cwd = planned(case)
    assert len(argv) == len(oracle["argv"]), "number of commands differs"
    for ours, reference in zip(argv, oracle["argv"], strict=True):
        assert ours == reference
    assert cwd == oracle["argv_cwd"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_quirks_plan_names_the_reference_log_folder(case: Case) -> None:
    oracle = json.loads(case.oracle.read_text())
    plan = build_plan(load_config(case.config), case.mode, PlanOptions(quirks=True, repo_root="{REPO_ROOT}"))
    if oracle["model_name"] is not None:  # None where the reference script wrote no log at all
        assert plan.model_name == oracle["model_name"]
        assert [plan.results_log] == oracle["results_logs"]


def test_corpus_is_not_trivially_empty() -> None:
    total = sum(len(json.loads(c.oracle.read_text())["argv"]) for c in CASES)
    assert total > 500
