"""Re-running a failed step (``--tipc-reruns N`` / ``tipc run --reruns N``); a pass on a re-run is flaky, not a pass.

Why not pytest-rerunfailures: it re-runs an item through pytest's whole setup/teardown protocol, which for a
StepItem means tearing down its ChainNode (the chain's lock and its step results) in the middle of the chain, and
it reports the final attempt as an ordinary pass. A step is re-run here, inside one runtest: its dependents have
not run yet, so they run once, after the step's last attempt, and only they ever see the retried outputs.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from harness.logger import logger
from harness.status import StepResult, StepStatus

__all__ = ["attempt_log", "flaky_reason", "run_with_reruns"]


def attempt_log(log_path: Path, attempt: int) -> Path:
    """Where the log of a failed attempt is kept (the next attempt writes the step's usual log path)."""
    return log_path.with_name(f"{log_path.name}.attempt{attempt}")


def flaky_reason(attempts: int, first_failure: str) -> str:
    return f"flaky: passed on attempt {attempts} after {first_failure}"


def run_with_reruns(run_once: Callable[[], StepResult], *, reruns: int, root: Path) -> StepResult:
    """Run a step, and again while it fails (up to ``reruns`` more times).

    Failed attempts' logs are kept beside the step's log (``<log>.attemptN``). The result carries ``attempts``;
    a step that passed after failing gets status PASSED with ``attempts > 1`` and a ``flaky: ...`` reason, which
    reports and history show as flaky. Skipped steps are never re-run.
    """
    result = run_once()
    first_failure = result.reason or str(result.status)
    attempt = 1
    while result.failed and not result.interrupted and attempt <= reruns:  # a signal stops the run, not a retry
        log = root / result.log_path
        if log.is_file():
            shutil.copyfile(log, attempt_log(log, attempt))
        logger.warning("%s::%s failed (%s); re-run %d of %d", result.chain_id, result.step_name, result.reason,
                       attempt, reruns)
        attempt += 1
        result = run_once()
    if attempt == 1:
        return result
    if result.status is StepStatus.PASSED:
        return dataclasses.replace(result, attempts=attempt, reason=flaky_reason(attempt, first_failure))
    return dataclasses.replace(result, attempts=attempt, reason=f"{result.reason} (failed {attempt} attempts)")
