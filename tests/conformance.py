"""Load the shared TIPC conformance corpus and compare the planner's --quirks output with the reference argv."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from harness.config import load_config
from harness.plan import PlanOptions, build_plan

__all__ = ["CORPUS", "MANIFESTS", "Case", "cases", "planned"]

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "tipc-conformance"
# manifest.json: Step6 and PaddleClas; manifest-more.json: PaddleDetection, PaddleSeg, PaddleVideo, PaddleGAN, PaddleOCR
MANIFESTS = ("manifest.json", "manifest-more.json")


@dataclasses.dataclass(frozen=True)
class Case:
    config: Path
    oracle: Path
    mode: str

    @property
    def id(self) -> str:
        return f"{self.config.parent.name}/{self.config.stem}::{self.mode}"


def cases(manifests: tuple[str, ...] = MANIFESTS) -> list[Case]:
    """Every config x mode of the given manifests (those present beside this checkout), in manifest order."""
    out = []
    for manifest in manifests:
        if not (CORPUS / manifest).is_file():
            continue
        for item in json.loads((CORPUS / manifest).read_text()):
            config = CORPUS / item["local_config"]
            for mode in item["modes"]:
                out.append(Case(config, config.with_name(f"{config.stem}.{mode}.json"), mode))
    return out


def planned(case: Case) -> tuple[list[list[str]], list[str]]:
    """(argv lists, cwd list) the planner gives in quirks mode, with {REPO_ROOT} as the run root."""
    plan = build_plan(load_config(case.config), case.mode, PlanOptions(quirks=True, repo_root="{REPO_ROOT}"))
    steps = [s for s in plan.steps if s.kind.value != "compare"]
    return [list(s.command.argv) for s in steps], [s.command.cwd for s in steps]
