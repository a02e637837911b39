"""Start-up: each front loads only what its command needs (module sets, not timings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CONFIG = "test_tipc/configs/mobilenet_v3_small/train_infer_python.txt"
HEAVY = ("junitparser", "jinja2", "yaml", "harness.reports", "harness.matrix", "harness.runner", "harness.golden",
         "harness.hardware", "paddle")


def _loaded_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('MODULES:', ' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("MODULES: ")]
    return set(line.split()[1:])


@pytest.mark.parametrize(
    "code",
    [
        "import harness.cli",
        f"import harness.cli; harness.cli.main(['plan', {CONFIG!r}, 'whole_infer'])",
        f"import harness.cli; harness.cli.main(['lint', {CONFIG!r}])",
    ],
)
def test_plan_and_lint_load_nothing_heavy(code: str) -> None:
    loaded = _loaded_after(code)
    assert "harness.plan" in loaded
    assert sorted(loaded & set(HEAVY)) == []


def test_report_loads_its_modules_on_use() -> None:
    loaded = _loaded_after("import harness.cli; harness.cli.main(['report', 'merge', 'missing.xml', '-o', '/dev/null'])")
    assert {"harness.reports", "junitparser"} <= loaded
