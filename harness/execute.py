"""Run plan steps in chain order; a step whose prerequisite did not pass, or whose hardware is absent, is SKIPPED."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping

from harness.hardware import Hardware
from harness.logger import logger
from harness.runner import run_command
from harness.status import INTERRUPTED_REASON, StepResult, StepStatus
from harness.steps import Chain, Plan, Step

__all__ = [
    "ResultCallback",
    "StartCallback",
    "interrupted_result",
    "not_run_results",
    "run_chain",
    "run_plan",
    "run_step",
    "selected",
    "skip_reason",
]

ResultCallback = Callable[[StepResult], None]
StartCallback = Callable[[Chain, Step], None]


def selected(step: Step, only_kinds: Collection[str]) -> bool:
    """True when ``--only`` keeps this step (an empty selection keeps every step)."""
    return not only_kinds or str(step.kind) in only_kinds


def skip_reason(step: Step, *, hardware: Hardware, prior: Mapping[str, StepResult]) -> str | None:
    """Why ``step`` must be skipped (a needed step that ran did not pass, or hardware is missing), else None."""
    for need in step.needs:
        before = prior.get(need)
        if before is not None and not before:
            verb = "was skipped" if before.status is StepStatus.SKIPPED else "failed"
            return f"needs {need}, which {verb}"
    return hardware.missing(step.requires)


def run_step(
    step: Step,
    chain: Chain,
    *,
    root: str | os.PathLike[str],
    hardware: Hardware,
    prior: Mapping[str, StepResult],
    python: str | None = None,
    timeout_s: float | None = None,
    inside: str | None = None,
) -> StepResult:
    """Run one step, or skip it with a reason.

    ``prior`` maps the names of this chain's steps that already ran in this invocation to their results. A needed
    step that ran and did not pass makes this one SKIPPED. A needed step that is absent from ``prior`` was not
    selected this time (``--only infer``, ``pytest -k infer``): the user is re-running later steps on outputs an
    earlier run left behind, so it does not block; if those outputs are missing, this step fails on its own, with
    its log saying which prerequisite was not run. ``inside`` is the run's output folder: the step's log must lie
    in it (see harness.containment).
    """
    reason = skip_reason(step, hardware=hardware, prior=prior)
    if reason is not None:
        return _result(step, chain, StepStatus.SKIPPED, reason=reason)
    notes = tuple(
        f"note: needs {need}, which was not run in this invocation" for need in step.needs if need not in prior
    )
    try:
        outcome = run_command(step.command, root=root, python=python, timeout_s=timeout_s, notes=notes, inside=inside)
    except Exception as exc:  # the one boundary where a harness bug becomes this step's ERROR, not a crash
        logger.exception("harness error while running %s::%s", chain.id, step.name)
        return _result(step, chain, StepStatus.ERROR, reason=f"harness error: {type(exc).__name__}: {exc}")
    return _result(
        step,
        chain,
        outcome.status,
        returncode=outcome.returncode,
        duration_s=outcome.duration_s,
        reason=outcome.reason,
    )


def run_chain(
    chain: Chain,
    *,
    root: str | os.PathLike[str],
    hardware: Hardware,
    only_kinds: Collection[str] = (),
    python: str | None = None,
    timeout_s: float | None = None,
    on_result: ResultCallback | None = None,
    on_start: StartCallback | None = None,
    inside: str | None = None,
) -> tuple[StepResult, ...]:
    """Run a chain's selected steps in order; steps not selected produce no result.

    ``on_start`` is called just before a step's command starts (not for steps about to be skipped), ``on_result``
    after every selected step, skipped ones included.
    """
    prior: dict[str, StepResult] = {}
    for step in chain.steps:
        if not selected(step, only_kinds):
            continue
        if on_start is not None and skip_reason(step, hardware=hardware, prior=prior) is None:
            on_start(chain, step)
        result = run_step(
            step, chain, root=root, hardware=hardware, prior=prior, python=python, timeout_s=timeout_s, inside=inside
        )
        logger.info("%s::%s %s%s", chain.id, step.name, result.status, f" ({result.reason})" if result.reason else "")
        prior[step.name] = result
        if on_result is not None:
            on_result(result)
    return tuple(prior.values())


def run_plan(
    plan: Plan,
    *,
    root: str | os.PathLike[str],
    hardware: Hardware,
    only_kinds: Collection[str] = (),
    python: str | None = None,
    timeout_s: float | None = None,
    on_result: ResultCallback | None = None,
    on_start: StartCallback | None = None,
) -> tuple[StepResult, ...]:
    """Run every chain in plan order; a failure inside one chain never stops the others.

    Every step's log is checked to lie in the plan's output folder before it is written.
    """
    results: list[StepResult] = []
    for chain in plan.chains:
        results.extend(
            run_chain(
                chain,
                root=root,
                hardware=hardware,
                only_kinds=only_kinds,
                python=python,
                timeout_s=timeout_s,
                on_result=on_result,
                on_start=on_start,
                inside=plan.output_dir,
            )
        )
    return tuple(results)


def interrupted_result(step: Step, chain: Chain, *, signal_name: str, duration_s: float) -> StepResult:
    """The record of the step that was running when the run was stopped: failed, with the signal as its reason."""
    return _result(
        step, chain, StepStatus.FAILED, duration_s=duration_s, reason=f"{INTERRUPTED_REASON} by {signal_name}"
    )


def not_run_results(
    plan: Plan,
    *,
    done: Collection[tuple[str, str]],
    only_kinds: Collection[str] = (),
    signal_name: str,
) -> tuple[StepResult, ...]:
    """SKIPPED records for every selected step of ``plan`` that never ran because the run was stopped.

    ``done`` holds the (chain id, step name) pairs that already have a record, the interrupted step included.
    """
    reason = f"not run: the run was {INTERRUPTED_REASON} by {signal_name}"
    return tuple(
        _result(step, chain, StepStatus.SKIPPED, reason=reason)
        for chain in plan.chains
        for step in chain.steps
        if selected(step, only_kinds) and (chain.id, step.name) not in done
    )


def _result(
    step: Step,
    chain: Chain,
    status: StepStatus,
    *,
    returncode: int | None = None,
    duration_s: float = 0.0,
    reason: str = "",
) -> StepResult:
    return StepResult(
        chain_id=chain.id,
        step_name=step.name,
        kind=str(step.kind),
        status=status,
        command=step.command.display(),
        log_path=step.command.log_path,
        returncode=returncode,
        duration_s=duration_s,
        reason=reason,
    )
