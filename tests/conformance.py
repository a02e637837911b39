"""Load the shared TIPC conformance corpus and compare the planner's --quirks output with the reference argv."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from harness.config import load_config
from harness.plan import PlanOptions, build_plan

__all__ = ["CORPUS", "Case", "cases", "planned"]

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "tipc-conformance"


@dataclasses.dataclass(frozen=True)
class Case:
    config: Path
    oracle: Path
    mode: str

    @property
    def id(self) -> str:
        return f"{self.config.parent.name}/{self.config.stem}::{self.mode}"


def cases() -> list[Case]:
    if not (CORPUS / "manifest.json").is_file():
        return []
    out = []
    for item in json.loads((CORPUS / "manifest.json").read_text()):
        config = CORPUS / item["local_config"]
        for mode in item["modes"]:
            out.append(Case(config, config.with_name(f"{config.stem}.{mode}.json"), mode))
    return out


def planned(case: Case) -> tuple[list[list[str]], list[str]]:
    """(argv lists, cwd list) the planner gives in quirks mode, with {REPO_ROOT} as the run root."""
    plan = build_plan(load_config(case.config), case.mode, PlanOptions(quirks=True, repo_root="{REPO_ROOT}"))
    steps = [s for s in plan.steps if s.kind.value != "compare"]
    return [list(s.command.argv) for s in steps], [s.command.cwd for s in steps]
