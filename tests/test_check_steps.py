"""harness.check_steps: the portable check steps a config asks for, and nothing for configs that do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_config
from harness.errors import ConfigError
from harness.plan import PlanOptions, build_plan
from harness.steps import StepKind

DATA = Path(__file__).parent / "data"
FULL = DATA / "good" / "full_ok.txt"
REPO = Path(__file__).resolve().parents[1]

CHECKS = (
    "===========================harness_params===========================\n"
    "check_learned:metric=top1 floor=0.35 loss_drop=0.5\n"
    "check_forward:tools/forward.py share=1.0 atol=1e-4\n"
    "check_int8:share=0.9 atol=0.1 angle_atol=0.05\n"
)


def _plan(path: Path, mode: str = "lite_train_lite_infer", **options: object):  # type: ignore[no-untyped-def]
    return build_plan(load_config(path), mode, PlanOptions(**options))  # type: ignore[arg-type]


def _with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "checks.txt"
    path.write_text(FULL.read_text() + text)
    return path


def test_no_check_lines_no_change(tmp_path: Path) -> None:
    plain = _plan(FULL)
    assert not any(s.kind is StepKind.CHECK for s in plain.steps)
    assert any("precision_int8" in s.name for s in plain.steps)  # int8 rows of a float program stay planned


def test_check_steps_follow_what_they_compare(tmp_path: Path) -> None:
    chain = _plan(_with(tmp_path, CHECKS)).chains[0]
    names = [s.name for s in chain.steps]
    learned = chain.step("check_learned")
    train, evaluation = chain.step("train"), chain.step("eval")
    assert learned.needs == ("eval",)
    assert learned.command.argv == (
        "python3", "-m", "harness.checks", "learned", "--train-log", train.command.log_path,
        "--eval-log", evaluation.command.log_path, "--metric=top1", "--floor=0.35", "--loss-drop=0.5",
    )
    forward = chain.step("forward")
    export = chain.step("export")
    assert forward.needs == ("export",)
    assert forward.command.argv[:2] == ("python3", "tools/forward.py")
    assert forward.command.argv[2:-1] == export.command.argv[2:]  # the export script's own flags
    check = chain.step("check_forward")
    assert check.needs[0] == "forward"
    assert check.command.argv[check.command.argv.index("--ref") + 1] == forward.command.log_path
    assert names.index("check_forward") > names.index(check.needs[1])
    # a float program: no int8 rows, hence no int8 checks
    assert not any("precision_int8" in n for n in names if n.startswith("infer_cpu"))
    assert all(s.kind is StepKind.CHECK for s in chain.steps if s.name.startswith(("check_", "forward")))


def test_staged_chains_keep_int8_rows_and_get_an_int8_check(tmp_path: Path) -> None:
    lines = (FULL.read_text() + CHECKS).splitlines()
    lines[14] = "trainer:staged_train"
    lines += ["===stage_params===", "stages:float|qat", "float:tools/train.py --stage float",
              "qat:tools/train.py --stage qat"]
    path = tmp_path / "staged.txt"
    path.write_text("\n".join(lines) + "\n")
    chain = _plan(path).chains[0]
    checks = [s for s in chain.steps if s.name.startswith("check_int8_")]
    assert checks
    for step in checks:
        argv = step.command.argv
        log, ref = argv[argv.index("--log") + 1], argv[argv.index("--ref") + 1]
        assert "_precision_int8_" in log and ref == log.replace("_precision_int8_", "_precision_fp32_")
        assert "--expect-int8" in argv and "--angle-atol=0.05" in argv


def test_quirks_and_whole_infer_get_no_checks(tmp_path: Path) -> None:
    path = _with(tmp_path, CHECKS)
    assert not any(s.kind is StepKind.CHECK for s in _plan(path, quirks=True).steps)
    assert not any(s.kind is StepKind.CHECK for s in _plan(path, "whole_infer").steps)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("check_learned:floor=0.3", "needs metric=NAME and floor=X"),
        ("check_learned:metric=top1 floor=high", "floor must be a number"),
        ("check_forward:share=1.0", "first word must be the forward script"),
        ("check_int8:tolerance=3", "expected share=..."),
    ],
)
def test_malformed_check_lines_name_their_line(tmp_path: Path, line: str, message: str) -> None:
    path = _with(tmp_path, "===========================harness_params===========================\n" + line + "\n")
    with pytest.raises(ConfigError, match=message) as info:
        _plan(path)
    assert str(info.value).startswith(f"{path}:{len(path.read_text().splitlines())}:")


def test_shipped_configs_check_every_training_chain_and_compare_only_in_whole_infer() -> None:
    for config in sorted((REPO / "test_tipc" / "configs").glob("*/*.txt")):
        lite = _plan(config)
        assert not any(s.kind is StepKind.COMPARE for s in lite.steps), config
        for chain in lite.chains:
            names = {s.name for s in chain.steps}
            assert {"check_learned", "check_forward"} <= names, (config, chain.id)
        whole = _plan(config, "whole_infer")
        compares = [s for s in whole.steps if s.kind is StepKind.COMPARE]
        assert compares, config
        for step in compares:
            gold = step.command.argv[step.command.argv.index("--golden") + 1]
            assert (REPO / gold).is_file(), gold
