"""Tests for harness.execute: chain order, skipped dependents, hardware skips and --only, on real subprocesses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.command import Command
from harness.execute import interrupted_result, not_run_results, run_chain, run_plan, run_step
from harness.hardware import Hardware
from harness.status import StepResult, StepStatus, run_interrupted, summary_table
from harness.steps import Chain, Plan, Requirement, Step, StepKind

CPU_ONLY = Hardware(gpu_count=0, tensorrt=False)
ONE_GPU = Hardware(gpu_count=1, tensorrt=False)
OK = "print('ok')"
FAIL = "raise SystemExit(3)"


def step(
    name: str,
    kind: StepKind,
    code: str = OK,
    *,
    chain: str = "c1",
    needs: tuple[str, ...] = (),
    requires: tuple[Requirement, ...] = (),
) -> Step:
    cmd = Command(argv=(sys.executable, "-c", code), log_path=f"out/{chain}/{name}.log", timeout_s=60)
    return Step(name=name, kind=kind, command=cmd, needs=needs, requires=requires)


def chain(chain_id: str, *steps: Step) -> Chain:
    return Chain(id=chain_id, model="toy", mode="lite_train_lite_infer", steps=steps)


def standard_chain(chain_id: str = "c1", *, train: str = OK, export: str = OK, infer: str = OK) -> Chain:
    return chain(
        chain_id,
        step("train", StepKind.TRAIN, train, chain=chain_id),
        step("export", StepKind.EXPORT, export, chain=chain_id, needs=("train",)),
        step("infer", StepKind.INFER, infer, chain=chain_id, needs=("export",)),
    )


def statuses(results: tuple[StepResult, ...]) -> list[tuple[str, str, StepStatus]]:
    return [(r.chain_id, r.step_name, r.status) for r in results]


def test_chain_runs_in_order_and_passes(tmp_path: Path) -> None:
    results = run_chain(standard_chain(), root=tmp_path, hardware=CPU_ONLY)
    assert statuses(results) == [("c1", n, StepStatus.PASSED) for n in ("train", "export", "infer")]
    assert all((tmp_path / "out/c1" / f"{n}.log").is_file() for n in ("train", "export", "infer"))
    assert results[0].command.endswith("-c 'print('\"'\"'ok'\"'\"')'")
    assert results[0].kind == "train"
    assert results[0].log_path == "out/c1/train.log"


def test_dependents_of_a_failure_are_skipped_with_reason(tmp_path: Path) -> None:
    results = run_chain(standard_chain(export=FAIL), root=tmp_path, hardware=CPU_ONLY)
    assert statuses(results) == [
        ("c1", "train", StepStatus.PASSED),
        ("c1", "export", StepStatus.FAILED),
        ("c1", "infer", StepStatus.SKIPPED),
    ]
    assert results[1].returncode == 3
    assert results[1].reason == "exit code 3"
    assert results[2].reason == "needs export, which failed"
    assert not (tmp_path / "out/c1/infer.log").exists()


def test_skip_propagates_down_the_chain(tmp_path: Path) -> None:
    results = run_chain(standard_chain(train=FAIL), root=tmp_path, hardware=CPU_ONLY)
    assert [r.reason for r in results] == [
        "exit code 3",
        "needs train, which failed",
        "needs export, which was skipped",
    ]


def test_timeout_counts_as_failed_prerequisite(tmp_path: Path) -> None:
    results = run_chain(
        standard_chain(train="import time; time.sleep(30)"), root=tmp_path, hardware=CPU_ONLY, timeout_s=0.3
    )
    assert results[0].status is StepStatus.TIMEOUT
    assert results[0].failed
    assert results[1].reason == "needs train, which failed"


def test_other_chains_go_on_after_a_failure(tmp_path: Path) -> None:
    plan = Plan(
        config_path="toy.txt",
        model_name="toy",
        mode="lite_train_lite_infer",
        flavor="harness",
        quirks=False,
        output_dir="out",
        results_log="out/results_python.log",
        chains=(standard_chain("c1", train=FAIL), standard_chain("c2")),
    )
    seen: list[StepResult] = []
    results = run_plan(plan, root=tmp_path, hardware=CPU_ONLY, on_result=seen.append)
    assert statuses(results) == [
        ("c1", "train", StepStatus.FAILED),
        ("c1", "export", StepStatus.SKIPPED),
        ("c1", "infer", StepStatus.SKIPPED),
        ("c2", "train", StepStatus.PASSED),
        ("c2", "export", StepStatus.PASSED),
        ("c2", "infer", StepStatus.PASSED),
    ]
    assert tuple(seen) == results


@pytest.mark.parametrize(
    ("requires", "hardware", "reason"),
    [
        ((Requirement.GPU,), CPU_ONLY, "no CUDA device"),
        ((Requirement.MULTI_GPU,), ONE_GPU, "needs 2 CUDA devices, found 1"),
        ((Requirement.MULTI_NODE,), Hardware(gpu_count=8, tensorrt=True), "multi-node training needs several machines"),
        ((Requirement.GPU, Requirement.TENSORRT), ONE_GPU, "TensorRT is not available"),
    ],
)
def test_steps_without_hardware_are_skipped_with_reason(
    tmp_path: Path, requires: tuple[Requirement, ...], hardware: Hardware, reason: str
) -> None:
    gpu_chain = chain(
        "gpu",
        step("train", StepKind.TRAIN, chain="gpu", requires=requires),
        step("export", StepKind.EXPORT, chain="gpu", needs=("train",)),
    )
    results = run_chain(gpu_chain, root=tmp_path, hardware=hardware)
    assert statuses(results) == [("gpu", "train", StepStatus.SKIPPED), ("gpu", "export", StepStatus.SKIPPED)]
    assert results[0].reason == reason
    assert results[1].reason == "needs train, which was skipped"
    assert not (tmp_path / "out").exists()


def test_gpu_step_runs_when_the_host_has_a_gpu(tmp_path: Path) -> None:
    gpu_chain = chain("gpu", step("train", StepKind.TRAIN, chain="gpu", requires=(Requirement.GPU,)))
    assert statuses(run_chain(gpu_chain, root=tmp_path, hardware=ONE_GPU)) == [("gpu", "train", StepStatus.PASSED)]


def test_only_runs_selected_kinds_and_unselected_prerequisites_do_not_block(tmp_path: Path) -> None:
    # `--only infer` re-runs inference on what an earlier run exported; train and export are not run at all.
    results = run_chain(
        standard_chain(train=FAIL, export=FAIL), root=tmp_path, hardware=CPU_ONLY, only_kinds=("infer",)
    )
    assert statuses(results) == [("c1", "infer", StepStatus.PASSED)]
    assert not (tmp_path / "out/c1/train.log").exists()
    assert "note: needs export, which was not run in this invocation" in (tmp_path / "out/c1/infer.log").read_text()


def test_only_with_two_kinds_still_skips_after_a_selected_failure(tmp_path: Path) -> None:
    results = run_chain(standard_chain(export=FAIL), root=tmp_path, hardware=CPU_ONLY, only_kinds=("export", "infer"))
    assert statuses(results) == [("c1", "export", StepStatus.FAILED), ("c1", "infer", StepStatus.SKIPPED)]
    assert results[1].reason == "needs export, which failed"


def test_run_step_uses_prior_results(tmp_path: Path) -> None:
    c = standard_chain()
    failed = StepResult(
        chain_id="c1", step_name="export", kind="export", status=StepStatus.FAILED, command="x", log_path="l"
    )
    skipped = run_step(c.step("infer"), c, root=tmp_path, hardware=CPU_ONLY, prior={"export": failed})
    assert skipped.status is StepStatus.SKIPPED
    assert skipped.reason == "needs export, which failed"
    ran = run_step(c.step("train"), c, root=tmp_path, hardware=CPU_ONLY, prior={})
    assert ran.status is StepStatus.PASSED
    assert ran.duration_s > 0


def test_run_step_python_override_reaches_the_runner(tmp_path: Path) -> None:
    cmd = Command(argv=("python9.99", "-c", "print('hi')"), log_path="s.log")
    c = chain("c1", Step(name="infer", kind=StepKind.INFER, command=cmd))
    result = run_step(c.steps[0], c, root=tmp_path, hardware=CPU_ONLY, prior={}, python=sys.executable)
    assert result.status is StepStatus.PASSED
    assert "--python" in (tmp_path / "s.log").read_text()


def test_start_callback_sees_steps_in_order(tmp_path: Path) -> None:
    started: list[str] = []
    run_chain(
        standard_chain(export=FAIL),
        root=tmp_path,
        hardware=CPU_ONLY,
        on_start=lambda c, s: started.append(f"{c.id}::{s.name}"),
    )
    # infer is skipped, so it never starts; the result callback reports it instead.
    assert started == ["c1::train", "c1::export"]


def _plan(*chains: Chain, output_dir: str = "out") -> Plan:
    return Plan(config_path="c.txt", model_name="toy", mode="lite_train_lite_infer", flavor="harness", quirks=False,
                output_dir=output_dir, results_log=f"{output_dir}/results_python.log", chains=chains)


def test_interrupted_step_is_failed_and_the_rest_skipped_with_that_reason() -> None:
    plan = _plan(standard_chain("c1"), standard_chain("c2"))
    first = plan.chains[0]
    stopped = interrupted_result(first.step("export"), first, signal_name="SIGTERM", duration_s=1.5)
    assert stopped.status is StepStatus.FAILED
    assert stopped.failed and stopped.interrupted
    assert stopped.reason == "interrupted by SIGTERM"
    assert stopped.log_path == "out/c1/export.log"
    rest = not_run_results(plan, done={("c1", "train"), ("c1", "export")}, signal_name="SIGTERM")
    assert [(r.chain_id, r.step_name) for r in rest] == [("c1", "infer"), ("c2", "train"), ("c2", "export"),
                                                        ("c2", "infer")]
    assert {r.status for r in rest} == {StepStatus.SKIPPED}
    assert {r.reason for r in rest} == {"not run: the run was interrupted by SIGTERM"}
    assert run_interrupted((stopped, *rest)) == "interrupted by SIGTERM"
    assert "run interrupted by SIGTERM" in summary_table((stopped, *rest))


def test_not_run_results_respect_only() -> None:
    plan = _plan(standard_chain("c1"))
    rest = not_run_results(plan, done=set(), only_kinds=("infer",), signal_name="SIGINT")
    assert [r.step_name for r in rest] == ["infer"]


def test_run_plan_refuses_a_log_outside_the_output_folder(tmp_path: Path) -> None:
    bad = chain("c1", step("train", StepKind.TRAIN, chain="c1"))
    results = run_plan(_plan(bad, output_dir="elsewhere"), root=tmp_path, hardware=CPU_ONLY)
    assert results[0].status is StepStatus.ERROR
    assert results[0].reason.startswith("refused: ")
    assert not (tmp_path / "out").exists()
