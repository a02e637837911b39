"""Containment: every path the harness creates or removes lies in the run's output folder, for every config."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from harness.cli import ExitCode, main
from harness.command import Command
from harness.config import load_config
from harness.containment import OutsideOutput, check_plan_paths, own_output_roots, plan_paths, resolve_inside
from harness.errors import ConfigError
from harness.flavors import AUTO, FLAVORS
from harness.plan import MODES, PlanOptions, build_plan
from harness.runner import run_command
from harness.status import StepStatus

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
CORPUS = ROOT.parent / "shared" / "tipc-conformance"
ESCAPES = [
    ("model_name_dotdot.txt", 2),
    ("model_name_slash.txt", 2),
    ("model_name_absolute.txt", 2),
    ("model_name_too_long.txt", 2),
    ("trainer_escapes.txt", 13),
    ("trainer_too_long.txt", 13),
    ("precision_escapes.txt", 46),
    ("infer_batch_escapes.txt", 29),
]


def all_configs() -> list[Path]:
    """Every config the project ships and both conformance manifests list (empty where the corpus is absent)."""
    configs = sorted((ROOT / "test_tipc" / "configs").glob("*/*.txt"))
    for manifest in ("manifest.json", "manifest-more.json"):
        if (CORPUS / manifest).is_file():
            configs += [CORPUS / item["local_config"] for item in json.loads((CORPUS / manifest).read_text())]
    return list(dict.fromkeys(configs))


CONFIGS = all_configs()


def test_the_sweep_covers_both_corpora() -> None:
    assert len(CONFIGS) > 10
    assert any(str(path).startswith(str(ROOT / "test_tipc")) for path in CONFIGS)
    if CORPUS.is_dir():
        assert sum(1 for path in CONFIGS if CORPUS in path.parents) > 50
    planned = 0
    for path in CONFIGS:
        try:
            build_plan(load_config(path), "lite_train_lite_infer", PlanOptions(quirks=True, repo_root="/r"))
            planned += 1
        except ConfigError:
            continue
    assert planned > len(CONFIGS) // 2  # the sweep below checks real plans for most configs


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parent.name}/{p.name}" for p in CONFIGS])
def test_every_plan_of_every_config_stays_in_its_output_folder(path: Path, tmp_path: Path) -> None:
    """This config x all modes x every flavor that plans it, with and without quirks: every path is inside."""
    try:
        config = load_config(path)
    except ConfigError:
        pytest.skip("not a train_infer_python layout: plans nothing")
    checked = 0
    for quirks in (False, True):
        for flavor in (AUTO, *FLAVORS):
            for mode in MODES:
                try:
                    plan = build_plan(config, mode, PlanOptions(flavor=flavor, quirks=quirks, repo_root="/r"))
                except ConfigError:
                    continue  # a flavor that does not fit this config's layout
                folder = os.path.normpath(plan.output_dir)
                assert folder.startswith("test_tipc/output/") and ".." not in folder.split("/")
                for written, _line in plan_paths(plan):
                    assert not os.path.isabs(written), written
                    assert ".." not in written.split("/"), written
                    assert os.path.normpath(written).startswith(folder + "/"), (written, folder)
                    assert all(len(part.encode()) <= 255 for part in written.split("/")), written
                    checked += 1
                resolve_inside(tmp_path, plan.output_dir, plan.results_log)  # and on disk, under a real root
    if checked == 0:
        pytest.skip("no flavor plans this config (it is refused with a path:line: error)")


@pytest.mark.parametrize(("name", "line"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_escaping_values_are_config_errors_in_lint_plan_and_run(
    name: str, line: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    config = DATA / "bad" / name
    victim = tmp_path / "victim"
    for argv in (
        ["lint", str(config)],
        ["plan", str(config), "lite_train_lite_infer"],
        ["run", str(config), "lite_train_lite_infer", "--root", str(tmp_path / "root")],
    ):
        assert main(argv) == ExitCode.CONFIG_ERROR, argv
        captured = capsys.readouterr()
        text = captured.out + captured.err
        assert f"{config}:{line}: " in text, argv
        assert "Traceback" not in text
    assert not (tmp_path / "root").exists()  # run refused before creating anything
    assert not victim.exists()


def test_check_plan_paths_catches_a_plan_that_escapes() -> None:
    config = load_config(DATA / "good" / "tutorial_ok.txt")
    plan = build_plan(config, "lite_train_lite_infer")
    step = plan.chains[0].steps[0]
    bad_command = Command(argv=step.command.argv, cwd=".", timeout_s=1, log_path="test_tipc/output/../../x.log")
    bad_step = type(step)(name=step.name, kind=step.kind, command=bad_command, line=step.line)
    bad_chain = type(plan.chains[0])(id="c", model=plan.model_name, mode=plan.mode, steps=(bad_step,))
    bad_plan = type(plan)(**{**{f: getattr(plan, f) for f in plan.__dataclass_fields__}, "chains": (bad_chain,)})
    with pytest.raises(ConfigError, match="outside the output folder"):
        check_plan_paths(bad_plan, config)


def test_a_link_planted_in_the_output_folder_is_not_followed(tmp_path: Path) -> None:
    """A chain folder that is a symbolic link to elsewhere: the step is refused, nothing is written there."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    folder = tmp_path / "root" / "test_tipc" / "output" / "m" / "mode"
    folder.mkdir(parents=True)
    (folder / "chain").symlink_to(outside)
    log = "test_tipc/output/m/mode/chain/step.log"
    command = Command(argv=(sys.executable, "-c", "print('x')"), cwd=".", timeout_s=60, log_path=log)
    outcome = run_command(command, root=tmp_path / "root", inside="test_tipc/output/m/mode")
    assert outcome.status is StepStatus.ERROR
    assert outcome.reason.startswith("refused: ")
    assert list(outside.iterdir()) == []
    with pytest.raises(OutsideOutput):
        resolve_inside(tmp_path / "root", "test_tipc/output/m/mode", log)


def test_a_link_in_place_of_a_log_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "unrelated.log"
    victim.write_text("precious\n")
    folder = tmp_path / "root" / "test_tipc" / "output" / "m" / "mode"
    folder.mkdir(parents=True)
    (folder / "step.log").symlink_to(victim)
    command = Command(argv=(sys.executable, "-c", "print('x')"), cwd=".", timeout_s=60,
                      log_path="test_tipc/output/m/mode/step.log")
    assert run_command(command, root=tmp_path / "root", inside="test_tipc/output/m/mode")
    assert victim.read_text() == "precious\n"
    assert not (folder / "step.log").is_symlink()


def test_results_log_link_is_not_appended_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    root = tmp_path / "root"
    (root / "configs").mkdir(parents=True)
    (root / "scripts").mkdir()
    for script in (DATA / "run" / "scripts").iterdir():
        (root / "scripts" / script.name).write_bytes(script.read_bytes())
    (root / "configs" / "ok.txt").write_bytes((DATA / "run" / "configs" / "ok.txt").read_bytes())
    model = load_config(root / "configs" / "ok.txt").model_name
    out = root / "test_tipc" / "output" / model / "lite_train_lite_infer"
    out.mkdir(parents=True)
    victim = tmp_path / "unrelated.log"
    victim.write_text("precious\n")
    (out / "results_python.log").symlink_to(victim)
    monkeypatch.chdir(root)
    code = main(["run", "configs/ok.txt", "lite_train_lite_infer"])
    assert code != ExitCode.OK
    assert victim.read_text() == "precious\n"
    err = capsys.readouterr().err
    assert f"cannot write {out / 'results_python.log'}" in err


def test_configs_sharing_a_model_name_get_their_own_roots() -> None:
    roots = own_output_roots({"a/x.txt": "m", "b/x.txt": "m", "c/y.txt": "n"}, default="test_tipc/output")
    assert roots == {
        "a/x.txt": "test_tipc/output/_configs/a/x",
        "b/x.txt": "test_tipc/output/_configs/b/x",
        "c/y.txt": "test_tipc/output",
    }
