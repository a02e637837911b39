"""The pytest front end, driven through pytester on small TIPC configs whose commands are tiny Python scripts."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import reports
from harness.config import load_config
from harness.plan import PlanOptions, build_plan
from harness.pytest_plugin import shard_chains

pytest_plugins = ["pytester"]

DATA = Path(__file__).parent / "data" / "plugin"
ALPHA_CHAINS = ("norm_train_gpus_-1_autocast_False_nodes_1", "pact_train_gpus_-1_autocast_False_nodes_1")
STEPS = ("train", "eval", "export", "infer_cpu_bs_1", "infer_cpu_bs_2")
BROKEN = "test_tipc/configs/broken/train_infer_python.txt"
GPU_ONLY = "test_tipc/configs/gpu_only/train_infer_python.txt"
LITE = "lite_train_lite_infer"


class Project:
    """A throwaway run root: test_tipc/configs/<name>/ copies of tests/data/plugin/configs plus the scripts."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path

    def add(self, name: str, *, folder: str | None = None) -> str:
        target = self.path / "test_tipc" / "configs" / (folder or name)
        shutil.copytree(DATA / "configs" / name, target)
        return f"test_tipc/configs/{folder or name}/train_infer_python.txt"

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest("-p", "harness.pytest_plugin", *args)

    def run_xdist(self, *args: str) -> pytest.RunResult:
        return self.run("-p", "xdist.plugin", *args)

    def collected(self, *args: str) -> list[str]:
        result = self.run("--collect-only", "-q", *args)
        return [line for line in result.outlines if "::" in line]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    # Only the plugins a run names with -p load (the outer run's entry-point plugins stay out of the inner one).
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    # The hardware probe's override: this suite must behave the same on a GPU host.
    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    pytester.makeini("[pytest]\naddopts = --strict-markers --strict-config\n")
    shutil.copytree(DATA / "scripts", pytester.path / "scripts")
    yield Project(pytester)


def node(config: str, chain: str, step: str, mode: str = LITE) -> str:
    return f"{config}::{mode}::{chain}::{step}"


# --------------------------------------------------------------------------- collection


def test_node_ids_are_file_mode_chain_step_in_chain_order(project: Project) -> None:
    config = project.add("alpha")
    expected = [node(config, chain, step) for chain in ALPHA_CHAINS for step in STEPS]
    assert project.collected() == expected


def test_chains_run_longest_first_counting_only_what_this_host_can_run(project: Project) -> None:
    gpu_only = project.add("gpu_only", folder="aaa_gpu_only")  # collected first by path, but all skipped here
    alpha = project.add("alpha")
    ids = project.collected()
    first_gpu = min(i for i, n in enumerate(ids) if n.startswith(gpu_only))
    last_alpha = max(i for i, n in enumerate(ids) if n.startswith(alpha))
    assert last_alpha < first_gpu
    # steps keep their order inside a chain
    assert ids[:5] == [node(alpha, ALPHA_CHAINS[0], step) for step in STEPS]


def test_several_modes_are_collected_in_the_order_given(project: Project) -> None:
    config = project.add("alpha")
    ids = project.collected("--tipc-mode", LITE, "--tipc-mode", "whole_infer")
    assert ids[:10] == [node(config, chain, step) for chain in ALPHA_CHAINS for step in STEPS]
    assert ids[10:] == [node(config, "whole_infer", s, mode="whole_infer") for s in ("export", *STEPS[3:])]


def test_only_txt_files_under_test_tipc_configs_are_collected(project: Project) -> None:
    project.add("alpha")
    shutil.copytree(DATA / "configs" / "alpha", project.path / "elsewhere" / "configs" / "alpha")
    (project.path / "test_tipc" / "configs" / "alpha" / "notes.md").write_text("not a config\n")
    ids = project.collected()
    assert len(ids) == 10
    assert all(i.startswith("test_tipc/configs/alpha/train_infer_python.txt::") for i in ids)


def test_keyword_selects_every_step_of_a_model_by_its_model_name(project: Project) -> None:
    # The folder is not named after the model: -k matches through the file node's extra keywords.
    config = project.add("alpha", folder="folder_x")
    project.add("broken")
    result = project.run("--collect-only", "-q", "-k", "alpha")
    ids = [line for line in result.outlines if "::" in line]
    assert ids == [node(config, chain, step) for chain in ALPHA_CHAINS for step in STEPS]
    result.stdout.fnmatch_lines(["10/14 tests collected (4 deselected)*"])


def test_markers_select_by_trainer_and_step_kind_under_strict_markers(project: Project) -> None:
    config = project.add("alpha")
    project.add("gpu_only")
    assert project.collected("-m", "pact and infer") == [
        node(config, ALPHA_CHAINS[1], "infer_cpu_bs_1"),
        node(config, ALPHA_CHAINS[1], "infer_cpu_bs_2"),
    ]
    assert len(project.collected("-m", "gpu")) == 4
    assert len(project.collected("-m", "train and not gpu")) == 2
    assert len(project.collected("-m", "tipc")) == 14


def test_markers_are_declared(project: Project) -> None:
    result = project.run("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.tipc:*", "@pytest.mark.pact:*", "@pytest.mark.gpu:*"])


def test_a_config_that_does_not_parse_is_one_error_line(project: Project) -> None:
    project.add("bad")
    result = project.run()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_tipc/configs/bad/train_infer_python.txt*",
            "test_tipc/configs/bad/train_infer_python.txt:15: 'eval_params' header is on logical line 15;*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "harness/" not in result.stdout.str()  # no frames from our code


def test_bad_shard_option_is_a_usage_error(project: Project) -> None:
    project.add("alpha")
    result = project.run("--tipc-shard", "3/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--tipc-shard: shard index must be between 1 and N, got '3/2'*"])


@pytest.mark.parametrize("value", ["0", "-3", "nan", "soon"])
def test_bad_tipc_timeout_is_a_usage_error_like_tipc_run(project: Project, value: str) -> None:
    project.add("alpha")
    result = project.run(f"--tipc-timeout={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--tipc-timeout: expected a positive number of seconds, got '{value}'*"])


def test_tipc_timeout_help_states_the_default(project: Project) -> None:
    result = project.run("--help")
    assert "default: 14400" in " ".join(result.stdout.str().split())


# --------------------------------------------------------------------------- running


def test_outcomes_skip_reasons_and_failure_report(project: Project) -> None:
    project.add("alpha")
    project.add("broken")
    project.add("gpu_only")
    result = project.run("-rs")
    result.assert_outcomes(passed=10, failed=1, skipped=7)
    result.stdout.fnmatch_lines_random(
        [
            f"SKIPPED [[]1[]] {BROKEN}:17: needs train, which failed",
            f"SKIPPED [[]1[]] {BROKEN}:22: needs train, which failed",
            f"SKIPPED [[]1[]] {BROKEN}:27: needs export, which was skipped",
            f"SKIPPED [[]1[]] {GPU_ONLY}:14: no CUDA device",
            f"SKIPPED [[]1[]] {GPU_ONLY}:17: needs train, which was skipped",
        ]
    )
    # repr_failure: command, exit code, log path and the log's last 30 lines; no Python traceback.
    log = f"test_tipc/output/broken/{LITE}/norm_train_gpus_-1_autocast_False_nodes_1.log"
    result.stdout.fnmatch_lines(
        [
            "*broken norm_train_gpus_-1_autocast_False_nodes_1 train*",
            "command:   env CUDA_VISIBLE_DEVICES='' python3 scripts/fail.py --output-dir=*",
            "exit code: 3",
            f"log:       {log}",
            "---- last 30 lines of the log ----",
            "fail.py line 14",
        ]
    )
    out = result.stdout.str()
    assert "fail.py line 40" in out and "fail.py line 13\n" not in out
    assert "deliberately broken step" in out
    assert "pytest_plugin.py" not in out and "raise failure" not in out


def test_the_run_writes_the_results_log_and_per_command_logs(project: Project) -> None:
    project.add("broken")
    project.run()
    out = project.path / "test_tipc" / "output" / "broken" / LITE
    lines = (out / "results_python.log").read_text().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("Run failed with command - broken - env CUDA_VISIBLE_DEVICES='' python3 scripts/fail.py")
    assert lines[0].endswith("! reason: exit code 3")
    assert all(line.startswith("Run skipped with command - broken - ") for line in lines[1:])
    assert "fail.py line 40" in (out / "norm_train_gpus_-1_autocast_False_nodes_1.log").read_text()
    records = reports.records_from_run_dir(project.path / "test_tipc" / "output", root=project.path)
    assert [(r.step, r.status) for r in records] == [
        ("train", "failed"),
        ("eval", "skipped"),
        ("export", "skipped"),
        ("infer_cpu_bs_1", "skipped"),
    ]


def test_junit_properties_carry_the_step(project: Project) -> None:
    project.add("broken")
    project.run("--junitxml=junit.xml")
    root = ET.parse(project.path / "junit.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["train"].iter("property")}
    assert props["model"] == "broken"
    assert props["mode"] == LITE
    assert props["config"] == BROKEN
    assert props["chain"] == "norm_train_gpus_-1_autocast_False_nodes_1"
    assert props["trainer"] == "norm_train"
    assert props["step"] == "train"
    assert props["kind"] == "train"
    assert props["returncode"] == "3"
    assert props["status"] == "failed"
    assert props["log_path"] == f"test_tipc/output/broken/{LITE}/norm_train_gpus_-1_autocast_False_nodes_1.log"
    assert (props["command"] or "").startswith("env CUDA_VISIBLE_DEVICES='' python3 scripts/fail.py ")
    assert float(props["duration_s"] or "x") > 0
    skipped = {p.get("name"): p.get("value") for p in cases["eval"].iter("property")}
    assert skipped["status"] == "skipped"
    assert skipped["reason"] == "needs train, which failed"
    assert skipped["returncode"] == ""


def test_later_steps_alone_run_on_outputs_left_by_an_earlier_run(project: Project) -> None:
    # `-m infer` leaves out train/export: they were not run this time, so they do not block (execute.run_step).
    # (-k infer would match every step: -k also matches the file name train_infer_python.txt.)
    project.add("alpha")
    result = project.run("-m", "infer")
    result.assert_outcomes(passed=4)


def test_preparation_runs_once_per_run_even_with_two_workers(project: Project) -> None:
    # mobilenet_v3_small is in harness.prepare's registry; its script is resolved under the run root.
    prep = project.path / "lite_data" / "make_cls_lite.py"
    prep.parent.mkdir()
    prep.write_text("import pathlib\nwith open('prepared.txt', 'a') as f:\n    f.write('prepared\\n')\n")
    config = project.path / "test_tipc" / "configs" / "mobilenet_v3_small" / "train_infer_python.txt"
    config.parent.mkdir(parents=True)
    text = (DATA / "configs" / "alpha" / "train_infer_python.txt").read_text()
    config.write_text(text.replace("model_name:alpha", "model_name:mobilenet_v3_small"))
    result = project.run_xdist("-n", "2")
    result.assert_outcomes(passed=10)
    assert (project.path / "prepared.txt").read_text() == "prepared\n"
    assert (project.path / "test_tipc" / "output" / "mobilenet_v3_small" / LITE / "prepare.log").is_file()
    # A second run prepares again (the data may have been removed in between); still once.
    project.run()
    assert (project.path / "prepared.txt").read_text() == "prepared\n" * 2


def test_a_failed_preparation_fails_the_first_steps_and_skips_the_rest(project: Project) -> None:
    prep = project.path / "lite_data" / "make_cls_lite.py"
    prep.parent.mkdir()
    prep.write_text("import sys\nprint('no data for you')\nsys.exit(7)\n")
    config = project.path / "test_tipc" / "configs" / "mobilenet_v3_small" / "train_infer_python.txt"
    config.parent.mkdir(parents=True)
    text = (DATA / "configs" / "broken" / "train_infer_python.txt").read_text()
    config.write_text(text.replace("model_name:broken", "model_name:mobilenet_v3_small"))
    result = project.run()
    result.assert_outcomes(failed=1, skipped=3)
    result.stdout.fnmatch_lines(["reason:    data preparation for mobilenet_v3_small did not pass: exit code 7", "no data for you"])


# --------------------------------------------------------------------------- parallel chains and shards


def _outcomes(result: pytest.RunResult) -> dict[str, int]:
    return result.parseoutcomes()


def test_two_workers_give_the_same_outcomes_as_a_serial_run(project: Project) -> None:
    project.add("alpha")
    project.add("broken")
    project.add("gpu_only")
    serial = project.run()
    parallel = project.run_xdist("-n", "2", "--dist", "loadscope", "-v")
    parallel.assert_outcomes(**{k: v for k, v in _outcomes(serial).items() if k in ("passed", "failed", "skipped")})
    # loadscope: a chain (node id up to its last ::) never spans two workers.
    worker_of: dict[str, set[str]] = {}
    for line in parallel.outlines:
        if line.startswith("[gw") and "::" in line:
            worker, rest = line.split("]", 1)
            nodeid = rest.split()[-1]
            worker_of.setdefault(nodeid.rsplit("::", 1)[0], set()).add(worker)
    assert len(worker_of) == 4
    assert all(len(workers) == 1 for workers in worker_of.values())


def test_plain_dist_load_still_keeps_chains_whole(project: Project) -> None:
    project.add("broken")
    project.add("alpha")
    result = project.run_xdist("-n", "2", "--dist", "load")
    result.assert_outcomes(passed=10, failed=1, skipped=3)


def test_configs_sharing_a_model_name_write_their_own_logs(project: Project) -> None:
    """Two configs with one model_name under -n 2: every results line points to a log with its own step's output.

    Deterministic whether or not the two chains overlap in time: each config writes its own folder, and each log
    is read back for the marker only its own config passes.
    """
    text = (DATA / "configs" / "broken" / "train_infer_python.txt").read_text()
    for folder in ("twin_a", "twin_b"):
        target = project.path / "test_tipc" / "configs" / folder / "train_infer_python.txt"
        target.parent.mkdir(parents=True)
        mine = text.replace("model_name:broken", "model_name:twin").replace("scripts/fail.py", "scripts/ok.py --train")
        target.write_text(mine.replace("scripts/ok.py --", f"scripts/ok.py --who={folder} --"))
    result = project.run_xdist("-n", "2", "--dist", "loadscope")
    result.assert_outcomes(passed=8)
    for folder in ("twin_a", "twin_b"):
        out = project.path / "test_tipc" / "output" / "_configs" / folder / "train_infer_python" / "twin" / LITE
        lines = (out / "results_python.log").read_text().splitlines()
        assert len(lines) == 4
        for line in lines:
            log = line.split(" > ", 1)[1].split(" 2>&1!", 1)[0]
            output = (project.path / log).read_text().split("# " + "-" * 70 + "\n", 1)[1]
            assert f"ok.py --who={folder}" in output, (line, output)
            other = "twin_b" if folder == "twin_a" else "twin_a"
            assert other not in output
    assert not (project.path / "test_tipc" / "output" / "twin").exists()


def test_a_config_with_its_own_model_name_keeps_the_usual_folder(project: Project) -> None:
    project.add("broken")
    project.run()
    assert (project.path / "test_tipc" / "output" / "broken" / LITE / "results_python.log").is_file()
    assert not (project.path / "test_tipc" / "output" / "_configs").exists()


def test_chains_write_to_disjoint_paths() -> None:
    # What makes parallel chains safe: no two chains of a plan share a log file or an output folder.
    config = load_config(DATA / "configs" / "alpha" / "train_infer_python.txt")
    plan = build_plan(config, LITE, PlanOptions())
    owners: dict[str, str] = {}
    for chain in plan.chains:
        for step in chain.steps:
            assert step.command.log_path not in owners, step.command.log_path
            owners[step.command.log_path] = chain.id
            assert chain.id.split("_gpus_")[0] in step.command.log_path


def test_shards_are_disjoint_and_cover_the_whole_run(project: Project) -> None:
    project.add("alpha")
    project.add("broken")
    project.add("gpu_only")
    everything = project.collected()
    first = project.collected("--tipc-shard", "1/2")
    second = project.collected("--tipc-shard", "2/2")
    assert first and second
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(everything)
    chains_first = {i.rsplit("::", 1)[0] for i in first}
    chains_second = {i.rsplit("::", 1)[0] for i in second}
    assert not chains_first & chains_second  # whole chains only
    assert project.collected("--tipc-shard", "1/2") == first  # stable


def test_shard_junit_files_merge_to_the_unsharded_run(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    project.add("alpha")
    project.add("broken")
    project.add("gpu_only")
    project.run("--junitxml=full.xml")
    project.run("--tipc-shard", "1/2", "--junitxml=shard1.xml")
    project.run("--tipc-shard", "2/2", "--junitxml=shard2.xml")
    merged = project.path / "merged.xml"
    code = main(["report", "merge", str(project.path / "shard1.xml"), str(project.path / "shard2.xml"), "-o", str(merged)])
    assert code == 0
    assert "18 tests from 2 files: 10 passed, 1 failed, 0 errors, 7 skipped" in capsys.readouterr().out
    full = {r.key: r.status for r in reports.load_junit([project.path / "full.xml"])}
    both = {r.key: r.status for r in reports.load_junit([merged])}
    assert both == full
    assert len(full) == 18


def test_shard_chains_is_balanced_and_order_independent() -> None:
    chains = [("a", 10.0), ("b", 9.0), ("c", 5.0), ("d", 4.0), ("e", 1.0)]
    shards = shard_chains(chains, 2)
    assert shards == shard_chains(list(reversed(chains)), 2)
    assert sorted(k for s in shards for k in s) == ["a", "b", "c", "d", "e"]
    loads = [sum(w for k, w in chains if k in shard) for shard in shards]
    assert abs(loads[0] - loads[1]) <= 1.0
    assert shard_chains(chains[:1], 3) == (("a",), (), ())
