"""The nightly matrix: validation messages, expansion to CI cells, the `tipc matrix` command and the workflow."""

from __future__ import annotations

import copy
import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main
from harness.matrix import MatrixError, expand, load_matrix, parse_matrix, render, unlisted_configs

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
NIGHTLY = REPO / "test_tipc" / "nightly.yaml"
WORKFLOW = REPO / ".github" / "workflows" / "nightly.yml"
YAMLLINT_CONFIG = REPO / ".github" / "yamllint.yml"
DATA = Path(__file__).parent / "data" / "plugin"

BASE: dict[str, Any] = {
    "version": 1,
    "defaults": {"shards": 1, "timeout_min": 20},
    "devices": {"cpu": {"runs_on": "ubuntu-latest"}, "gpu": {"runs_on": ["self-hosted", "gpu"], "workers": 1}},
    "models": {
        "alpha": {
            "configs": ["test_tipc/configs/alpha/train_infer_python.txt"],
            "modes": ["lite_train_lite_infer", "whole_infer"],
            "shards": 2,
            "timeout_min": {"lite_train_lite_infer": 15, "default": 25},
        },
        "beta": {"configs": ["test_tipc/configs/beta/train_infer_python.txt"], "modes": ["whole_infer"], "devices": ["cpu"]},
    },
    "pr": {"models": ["alpha"], "modes": ["lite_train_lite_infer"], "devices": ["cpu"], "shards": 1},
}


def with_change(path: str, value: object) -> dict[str, Any]:
    """BASE with one key (dotted path) replaced, or deleted when value is ...; list indices are numbers."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    target: Any = data
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is ...:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return data


def test_cells_are_model_mode_device_shard_in_file_order() -> None:
    cells = expand(parse_matrix(BASE, path="m.yaml"))
    assert [c.name for c in cells] == [
        "alpha-lite_train_lite_infer-cpu-1of2",
        "alpha-lite_train_lite_infer-cpu-2of2",
        "alpha-lite_train_lite_infer-gpu-1of2",
        "alpha-lite_train_lite_infer-gpu-2of2",
        "alpha-whole_infer-cpu-1of2",
        "alpha-whole_infer-cpu-2of2",
        "alpha-whole_infer-gpu-1of2",
        "alpha-whole_infer-gpu-2of2",
        "beta-whole_infer-cpu-1of1",
    ]
    first = cells[0]
    assert first.pytest_args == (
        "test_tipc/configs/alpha/train_infer_python.txt",
        "--tipc-mode",
        "lite_train_lite_infer",
        "--tipc-shard",
        "1/2",
        "--junitxml",
        "cells/alpha-lite_train_lite_infer-cpu-1of2/junit.xml",
    )
    assert first.output == "cells/alpha-lite_train_lite_infer-cpu-1of2"  # each cell its own folder
    assert [c.timeout_min for c in cells[:5]] == [15, 15, 15, 15, 25]
    assert cells[-1].timeout_min == 20  # the default
    assert "--tipc-shard" not in cells[-1].pytest_args  # one shard: no option
    assert cells[2].runs_on == ("self-hosted", "gpu")


def test_pr_matrix_is_the_lite_subset() -> None:
    cells = expand(parse_matrix(BASE, path="m.yaml"), pr=True)
    assert [c.name for c in cells] == ["alpha-lite_train_lite_infer-cpu-1of1"]


def test_github_format_is_a_strategy_matrix_include_list() -> None:
    cells = expand(parse_matrix(BASE, path="m.yaml"))
    text = render(cells, "github")
    assert "\n" not in text  # one line, for $GITHUB_OUTPUT
    data = json.loads(text)
    assert list(data) == ["include"]
    row = data["include"][2]
    assert row["runs_on"] == ["self-hosted", "gpu"]
    assert data["include"][0]["runs_on"] == "ubuntu-latest"
    assert row["shard"] == "1/2"
    assert shlex.split(row["args"]) == list(cells[2].pytest_args)


def test_workers_and_select_become_pytest_options() -> None:
    data = with_change("devices.cpu", {"runs_on": "ubuntu-latest", "workers": 2, "select": "not gpu"})
    cell = expand(parse_matrix(data, path="m.yaml"), pr=True)[0]
    assert cell.argv() == (
        "python", "-m", "pytest", "test_tipc/configs/alpha/train_infer_python.txt",
        "--tipc-mode", "lite_train_lite_infer", "-n", "2", "-m", "not gpu",
        "--junitxml", "cells/alpha-lite_train_lite_infer-cpu-1of1/junit.xml",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("version", 2, "m.yaml: version: unsupported version 2 (this harness reads version 1)"),
        ("devices", ..., "m.yaml: missing required key 'devices'"),
        ("devices.cpu.runs_on", [], "m.yaml: devices.cpu.runs_on: expected a non-empty list of strings, got list"),
        ("devices.cpu.workers", 0, "m.yaml: devices.cpu.workers: expected a positive integer, got int 0"),
        ("devices.cpu.colour", "red", "m.yaml: devices.cpu.colour: unknown key (expected one of: runs_on, runner_var, workers, select, paddle, chains)"),
        ("models.alpha.modes", ["lite_train_lite_infer", "lite"], "m.yaml: models.alpha.modes[1]: unknown mode 'lite'"),
        ("models.alpha.devices", ["tpu"], "m.yaml: models.alpha.devices[0]: unknown device kind 'tpu' (defined: cpu, gpu)"),
        ("models.alpha.shards", True, "m.yaml: models.alpha.shards: expected a positive integer, got bool"),
        ("models.alpha.shards", 99, "m.yaml: models.alpha.shards: must be at most 32, got 99"),
        ("models.alpha.configs", ["configs/alpha.txt"], "m.yaml: models.alpha.configs[0]: 'configs/alpha.txt' is not a"),
        ("models.alpha.configs", ["/abs/test_tipc/configs/a.txt"], "m.yaml: models.alpha.configs[0]: '/abs/test_tipc"),
        ("models.alpha.timeout_min", {"whole_infer": 5}, "m.yaml: models.alpha.timeout_min: no timeout for mode"),
        ("models.alpha.timeout_min", {"default": 5, "whole": 1}, "m.yaml: models.alpha.timeout_min.whole: unknown key"),
        ("models.beta.modes", ["whole_infer", "whole_infer"], "m.yaml: models.beta.modes[1]: duplicate entry 'whole_infer'"),
        ("models.beta", "x", "m.yaml: models.beta: expected a mapping, got str 'x'"),
        ("pr.models", ["gamma"], "m.yaml: pr.models[0]: unknown model 'gamma' (defined: alpha, beta)"),
        ("pr", ..., "m.yaml: missing required key 'pr'"),
    ],
)
def test_validation_names_the_file_and_key(key: str, value: object, message: str) -> None:
    with pytest.raises(MatrixError) as info:
        parse_matrix(with_change(key, value), path="m.yaml")
    assert info.value.render().startswith(message)


def test_not_a_mapping_at_the_top() -> None:
    with pytest.raises(MatrixError, match=r"^m.yaml: expected a mapping, got list$"):
        parse_matrix([1, 2], path="m.yaml")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("version: 1\ndevices: [cpu\n")
    with pytest.raises(MatrixError) as info:
        load_matrix(bad)
    assert info.value.render().startswith(f"{bad}: line 3: invalid YAML:")


def test_with_a_root_config_paths_must_exist(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match=r"models.alpha.configs\[0\]: .* does not exist under"):
        parse_matrix(BASE, path="m.yaml", root=tmp_path)
    for model in ("alpha", "beta"):
        target = tmp_path / "test_tipc" / "configs" / model / "train_infer_python.txt"
        target.parent.mkdir(parents=True)
        target.write_text("x\n")
    assert len(parse_matrix(BASE, path="m.yaml", root=tmp_path).models) == 2


def test_the_cli_prints_the_matrix_and_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "m.yaml"
    good.write_text(yaml.safe_dump(BASE))
    assert main(["matrix", "--file", str(good), "--no-path-check", "--pr"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in out["include"]] == ["alpha-lite_train_lite_infer-cpu-1of1"]
    assert main(["matrix", "--file", str(good), "--no-path-check", "--format", "commands", "--pr"]) == 0
    assert capsys.readouterr().out.startswith("python -m pytest test_tipc/configs/alpha/train_infer_python.txt ")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_change("pr.models", ["gamma"])))
    assert main(["matrix", "--file", str(bad), "--no-path-check"]) == 2
    assert capsys.readouterr().err.strip() == f"{bad}: pr.models[0]: unknown model 'gamma' (defined: alpha, beta)"


# --------------------------------------------------------------------------- the repository's own files


def test_the_nightly_matrix_is_valid() -> None:
    matrix = load_matrix(NIGHTLY)
    cells = expand(matrix)
    pr_cells = expand(matrix, pr=True)
    assert cells and pr_cells and len(pr_cells) < len(cells)
    assert len({c.name for c in cells}) == len(cells)
    assert {c.mode for c in pr_cells} == {"lite_train_lite_infer"}
    assert all("--junitxml" in c.pytest_args for c in cells)
    assert any("--tipc-shard" in c.pytest_args for c in cells)


def test_the_nightly_configs_exist() -> None:
    matrix = load_matrix(NIGHTLY)
    listed = [config for model in matrix.models for config in model.configs]
    if not any((REPO / c).is_file() for c in listed):
        pytest.skip("none of the nightly configs is in test_tipc/configs yet")
    load_matrix(NIGHTLY, root=REPO)  # raises, naming the key, for each missing one


def test_a_cell_command_runs_with_the_plugin(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # The commands the matrix prints are real pytest command lines: run the two shards of a tiny model.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    pytester.makeini("[pytest]\n")
    shutil.copytree(DATA / "scripts", pytester.path / "scripts")
    shutil.copytree(DATA / "configs" / "alpha", pytester.path / "test_tipc" / "configs" / "alpha")
    data = with_change("devices.cpu", {"runs_on": "ubuntu-latest", "workers": 2})
    cells = [c for c in expand(parse_matrix(data, path="m.yaml")) if c.model == "alpha" and c.device == "cpu"]
    lite = [c for c in cells if c.mode == "lite_train_lite_infer"]
    passed = 0
    for cell in lite:
        result = pytester.runpytest("-p", "harness.pytest_plugin", "-p", "xdist.plugin", *cell.pytest_args)
        passed += result.parseoutcomes()["passed"]
        assert (pytester.path / cell.junit).is_file()
    assert passed == 10


def test_the_workflow_structure() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch", "pull_request"}
    jobs = workflow["jobs"]
    assert list(jobs) == ["plan", "chains", "report", "publish"]
    plan_runs = "\n".join(step.get("run", "") for step in jobs["plan"]["steps"])
    assert "python -m harness matrix --format github $PR_FLAG" in plan_runs
    assert "'--pr'" in jobs["plan"]["steps"][-1]["env"]["PR_FLAG"]
    assert jobs["plan"]["outputs"]["matrix"] == "${{ steps.expand.outputs.matrix }}"
    chains = jobs["chains"]
    assert chains["needs"] == "plan"
    assert chains["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert chains["strategy"]["fail-fast"] is False
    assert chains["runs-on"] == "${{ matrix.runs_on }}"
    assert chains["timeout-minutes"] == "${{ matrix.timeout_min }}"
    runs = [step.get("run", "") for step in chains["steps"]]
    assert "bash tools/install.sh" in runs
    assert any("-m pytest $PYTEST_ARGS" in run for run in runs)
    upload = next(step for step in chains["steps"] if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    # one folder and one artifact per cell: the cell's JUnit and its logs, never a shared path
    assert upload["with"]["path"] == "${{ matrix.output }}/"
    assert upload["with"]["name"] == "tipc-${{ matrix.name }}"
    assert any('mv test_tipc/output "$CELL_DIR/test_tipc/"' in run for run in runs)
    # GPU cells install the CUDA build
    gpu = next(step for step in chains["steps"] if step.get("name") == "install the CUDA build of Paddle")
    assert gpu["if"] == "matrix.paddle != 'paddlepaddle'"
    assert gpu["env"]["PADDLE_PACKAGE"] == "${{ matrix.paddle }}"
    assert jobs["plan"]["steps"][-1]["env"]["TIPC_GPU_RUNNER"] == "${{ vars.TIPC_GPU_RUNNER }}"
    report = jobs["report"]
    assert report["needs"] == ["plan", "chains"]
    assert report["if"] == "always()"
    download = next(step for step in report["steps"] if step.get("uses", "").startswith("actions/download-artifact"))
    assert "merge-multiple" not in download["with"]  # each cell's artifact in a folder of its own
    report_runs = "\n".join(step.get("run", "") for step in report["steps"])
    assert 'python -m harness report merge "${files[@]}" -o reports/merged.xml --logs-beside-xml' in report_runs
    assert 'python -m harness report html "${files[@]}" --logs-beside-xml --log-root site' in report_runs
    assert jobs["publish"]["if"] == "github.event_name != 'pull_request'"


def _yamllint() -> list[str]:
    exe = shutil.which("yamllint", path=str(Path(sys.executable).parent))
    if exe is not None:
        return [exe]
    if importlib.util.find_spec("yamllint") is None:
        pytest.skip("yamllint is not installed (pip install yamllint)")
    return [sys.executable, "-m", "yamllint"]


@pytest.mark.parametrize("path", [WORKFLOW, NIGHTLY, YAMLLINT_CONFIG], ids=lambda p: p.name)
def test_yaml_files_pass_yamllint(path: Path) -> None:
    done = subprocess.run(
        [*_yamllint(), "--strict", "-f", "parsable", "-c", str(YAMLLINT_CONFIG), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_gpu_cells_only_when_a_runner_variable_names_a_runner() -> None:
    data = with_change("devices.gpu", {"runner_var": "GPU_RUNNER", "paddle": "paddlepaddle-gpu", "chains": "gpu"})
    data["devices"]["cpu"]["chains"] = "cpu"
    matrix = parse_matrix(data, path="m.yaml")
    without = expand(matrix, environ={})
    assert {c.device for c in without} == {"cpu"}
    # no GPU cells: CPU cells keep every chain (GPU steps are reported skipped, with the reason)
    assert all("--tipc-device" not in c.pytest_args for c in without)
    cells = expand(matrix, environ={"GPU_RUNNER": "self-hosted, linux,gpu"})
    gpu = [c for c in cells if c.device == "gpu"]
    assert [c.runs_on for c in gpu][0] == ("self-hosted", "linux", "gpu")
    assert {c.paddle for c in gpu} == {"paddlepaddle-gpu"}
    assert all(c.pytest_args[c.pytest_args.index("--tipc-device") + 1] == "gpu" for c in gpu)
    cpu = [c for c in cells if c.device == "cpu"]
    assert all(c.pytest_args[c.pytest_args.index("--tipc-device") + 1] == "cpu" for c in cpu)
    assert {c.paddle for c in cpu} == {"paddlepaddle"}
    assert len({c.output for c in cells}) == len(cells)  # every cell writes its own folder
    json_list = expand(matrix, environ={"GPU_RUNNER": '["self-hosted", "gpu"]'})
    assert json_list[2].runs_on == ("self-hosted", "gpu")


def test_runs_on_or_runner_var_not_both() -> None:
    data = with_change("devices.gpu", {"runs_on": "x", "runner_var": "Y"})
    with pytest.raises(MatrixError, match="give exactly one of runs_on"):
        parse_matrix(data, path="m.yaml")


def test_every_shipped_config_is_in_the_matrix_or_excluded_with_a_reason() -> None:
    matrix = load_matrix(NIGHTLY, root=REPO)
    assert unlisted_configs(matrix, REPO) == ()
    assert all(reason.strip() for _, reason in matrix.excluded)
    data = copy.deepcopy(BASE)
    data["excluded"] = {"test_tipc/configs/alpha/train_infer_python.txt": "no"}
    with pytest.raises(MatrixError, match="is both in a model's configs and excluded"):
        parse_matrix(data, path="m.yaml")


def test_tipc_device_keeps_whole_chains_of_one_kind(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini("[pytest]\n")
    for name in ("alpha", "gpu_only"):
        shutil.copytree(DATA / "configs" / name, pytester.path / "test_tipc" / "configs" / name)
    ids = {}
    for device in ("cpu", "gpu"):
        result = pytester.runpytest("-p", "harness.pytest_plugin", "--collect-only", "-q", "--tipc-device", device)
        ids[device] = {line for line in result.outlines if "::" in line}
    assert ids["cpu"] and ids["gpu"]
    assert not ids["cpu"] & ids["gpu"]  # no step in both kinds of cell
    assert all("gpus_-1" in i or "gpus" not in i for i in ids["cpu"])
    assert all("gpus_0" in i for i in ids["gpu"])


def test_actionlint_passes_on_the_workflows() -> None:
    exe = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if exe is None:
        pytest.skip("actionlint is not installed (the dev extra installs it: pip install -e '.[dev]')")
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    done = subprocess.run([exe, "-no-color", *map(str, workflows)], capture_output=True, text=True, check=False,
                          cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
