"""harness.collisions: a harness log equal to, or inside, a path a planned command uses is a planning error."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.collisions import check_collisions, command_paths
from harness.command import Command
from harness.config import load_config
from harness.errors import ConfigError
from harness.plan import MODES, PlanOptions, build_plan
from harness.steps import Chain, Plan, Step, StepKind

OUT = "test_tipc/output/m/lite_train_lite_infer"
STEP6 = Path(__file__).resolve().parents[1].parent / "shared" / "real-clients" / "step6"


def _step(name: str, argv: tuple[str, ...], log: str, *, kind: StepKind = StepKind.TRAIN, cwd: str = ".") -> Step:
    return Step(name=name, kind=kind, command=Command(argv=argv, cwd=cwd, log_path=log), line=7)


def _plan(*steps: Step) -> Plan:
    chain = Chain(id="c", model="m", mode="lite_train_lite_infer", steps=steps)
    return Plan(config_path="cfg.txt", model_name="m", mode="lite_train_lite_infer", flavor="tutorial", quirks=True,
                output_dir=OUT, results_log=f"{OUT}/results_python.log", chains=(chain,))


@pytest.mark.parametrize(
    ("argv", "log", "where"),
    [
        # Step6 under --quirks before the fix: the train log is the very path given as --output-dir (QUIRKS 5.5).
        (("python3.7", "train.py", f"--output-dir=./{OUT}/norm.log"), f"{OUT}/norm.log", "is"),
        (("python3", "t.py", "-o", f"Global.save_model_dir=./{OUT}/norm"), f"{OUT}/norm/train.log", "lies inside"),
        (("python3", "t.py", "--save_dir", f"{OUT}/norm"), f"{OUT}/norm/sub/x.log", "lies inside"),
        (("python3", "t.py", "-o", f"Global.output_dir=/repo/{OUT}/n"), f"{OUT}/n/x.log", "lies inside"),  # absolute
    ],
)
def test_a_log_at_or_inside_a_command_path_is_a_planning_error(argv: tuple[str, ...], log: str, where: str) -> None:
    plan = _plan(_step("train", argv, log))
    with pytest.raises(ConfigError) as info:
        check_collisions(plan, repo_root="/repo")
    assert info.value.render().startswith(f"cfg.txt:7: step train's log {log} {where} ")
    assert "the harness must not write there" in info.value.msg


@pytest.mark.parametrize(
    ("argv", "log"),
    [
        (("python3", "t.py", f"--output-dir={OUT}/norm"), f"{OUT}/norm.log"),  # beside the folder, not inside
        (("python3", "t.py", f"--output-dir={OUT}/norm"), f"{OUT}/norm_eval.log"),
        (("python3", "t.py", "--use-gpu=False", "--epochs=2"), f"{OUT}/x.log"),  # no paths at all
        (("python3", "t.py", "--out=/elsewhere/x"), f"{OUT}/x.log"),  # absolute, outside the run root
        (("python3", "t.py", "--root=./"), f"{OUT}/x.log"),  # the run root itself holds everything
    ],
)
def test_no_collision(argv: tuple[str, ...], log: str) -> None:
    plan = _plan(_step("train", argv, log))
    assert check_collisions(plan, repo_root="/repo") is plan


def test_the_results_log_counts_and_compare_steps_may_read_logs() -> None:
    reads_log = _step("compare", ("python3", "-m", "harness.golden", "--log", f"{OUT}/i.log"), f"{OUT}/c.log",
                      kind=StepKind.COMPARE)
    assert check_collisions(_plan(_step("infer", ("python3", "i.py"), f"{OUT}/i.log"), reads_log))
    writes_results = _step("train", ("python3", "t.py", f"--out={OUT}/results_python.log"), f"{OUT}/t.log")
    with pytest.raises(ConfigError, match="the results log test_tipc/.*/results_python.log is "):
        check_collisions(_plan(writes_results))


def test_paths_are_taken_relative_to_the_commands_cwd() -> None:
    step = _step("infer", ("python3", "infer.py", "--model_dir=../out/m"), "out/m/x.log", kind=StepKind.INFER,
                 cwd="deploy")
    assert list(command_paths(step)) == [("out/m", "--model_dir=../out/m")]


@pytest.mark.skipif(not STEP6.is_dir(), reason="../shared/real-clients/step6 is not beside this checkout")
@pytest.mark.parametrize("quirks", [False, True])
def test_step6_plans_have_no_collisions_in_any_mode(quirks: bool) -> None:
    for path in sorted((STEP6 / "test_tipc" / "configs").glob("*/*train*infer_python.txt")):
        config = load_config(path)
        for mode in MODES:
            plan = build_plan(config, mode, PlanOptions(quirks=quirks, repo_root="/repo"))  # raises on a collision
            for step in plan.steps:
                if step.kind is StepKind.TRAIN:
                    assert not any(step.command.log_path in word for word in step.command.argv)
