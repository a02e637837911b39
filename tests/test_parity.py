"""``tipc parity``: the reference script replayed with recorders, compared with the --quirks and default plans."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from harness.cli import main
from harness.parity import (
    FIXES,
    CaseResult,
    Cmd,
    DiffKind,
    FixContext,
    ParityReport,
    default_configs,
    diff_commands,
    explain,
    normalise_word,
    render_html,
)

STEP6 = Path(__file__).resolve().parents[1].parent / "shared" / "real-clients" / "step6"
needs_step6 = pytest.mark.skipif(not STEP6.is_dir(), reason="../shared/real-clients/step6 is not beside this checkout")
SCRIPT = "test_tipc/test_train_inference_python.sh"
LITE = "lite_train_lite_infer"
CPU_CONFIG = "test_tipc/configs/mobilenet_v3_small_cpu/train_infer_python.txt"
STEP6_CONFIGS = {
    f"test_tipc/configs/mobilenet_v3_small/{name}.txt"
    for name in (
        "train_infer_python",
        "train_pact_infer_python",
        "train_amp_infer_python",
        "train_fleet_infer_python",
        "train_ptq_infer_python",
        "win_train_infer_python",
    )
} | {
    f"test_tipc/configs/mobilenet_v3_small_cpu/{name}.txt"
    for name in ("train_infer_python", "train_pact_infer_python", "train_amp_infer_python")
}


def tree_digest(root: Path) -> str:
    """Names, modes, contents and link targets of everything under ``root``."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted([*dirs, *files]):
            path = Path(folder) / name
            info = path.lstat()
            digest.update(f"{path.relative_to(root).as_posix()}\0{info.st_mode:o}\0".encode())
            if stat.S_ISLNK(info.st_mode):
                digest.update(os.readlink(path).encode())
            elif stat.S_ISREG(info.st_mode):
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@pytest.fixture
def step6(tmp_path: Path) -> Path:
    repo = tmp_path / "step6"
    shutil.copytree(STEP6, repo, symlinks=True)
    return repo


def run_parity_cli(repo: Path, tmp_path: Path, *args: str) -> tuple[int, dict[str, object], Path]:
    """Run ``tipc parity`` on ``repo``; the scratch copy goes under a folder of its own so a test can see it go."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    out = tmp_path / "parity.json"
    rc = main(["parity", "--root", str(repo), "--scratch-dir", str(scratch), "--json", str(out), *args])
    return rc, json.loads(out.read_text()), scratch


# --- end to end on the real Step6 snapshot --------------------------------------------------------------------------


@needs_step6
def test_step6_is_equal_under_quirks_and_every_default_difference_is_explained(
    step6: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree_digest(step6)
    rc, report, scratch = run_parity_cli(step6, tmp_path, "--jobs", "2")
    out = capsys.readouterr().out

    assert rc == 0, out
    cases = report["cases"]
    assert isinstance(cases, list)
    assert {(c["config"], c["mode"]) for c in cases} == {
        (config, mode) for config in STEP6_CONFIGS for mode in ("lite_train_lite_infer", "whole_infer")
    }
    for case in cases:
        assert case["equal_under_quirks"], case
        assert case["unexplained"] == 0, case
        assert case["script"]["status"] == "passed"
        assert all(d["fix"] for d in case["default_differences"])
    by_case = {(c["config"], c["mode"]): c for c in cases}
    cpu_lite = by_case[(CPU_CONFIG, "lite_train_lite_infer")]
    # train, eval, export, inference: what the README of the snapshot measured with the real script
    assert [c["argv"][1] for c in cpu_lite["reference_commands"]] == [
        "train.py",
        "train.py",
        "tools/export_model.py",
        "deploy/inference_python/infer.py",
    ]
    assert cpu_lite["reference_commands"][0]["argv"][0] == "python3.7"
    # the `.log` folder in train, eval, export (weights and save dir) and inference; the image path on inference
    assert cpu_lite["fixes"] == {"5.5": 5, "5.9": 1}
    assert by_case[("test_tipc/configs/mobilenet_v3_small/train_ptq_infer_python.txt", "whole_infer")][
        "reference_commands"
    ] == []
    assert report["ok"] is True
    assert out.strip().splitlines()[-1].startswith("parity: OK: 18 case(s)")
    assert "5.5" in out and "5.9" in out

    assert tree_digest(step6) == before  # the repository was only read
    assert list(scratch.iterdir()) == []  # the scratch copy is gone


@needs_step6
def test_an_extra_flag_in_the_reference_train_command_fails_naming_config_mode_command_and_words(
    step6: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = step6 / SCRIPT
    text = script.read_text()
    single = 'cmd="${python} ${run_train} ${set_save_model} ${set_epoch} ${set_pretrain} ${set_batchsize}"'
    assert text.count(single) == 1
    script.write_text(text.replace(single, single[:-1] + ' --parity-probe=1"'))
    before = tree_digest(step6)

    html = tmp_path / "parity.html"
    rc, report, scratch = run_parity_cli(
        step6, tmp_path, CPU_CONFIG, "--modes", "lite_train_lite_infer", "--html", str(html)
    )
    out = capsys.readouterr().out

    assert rc == 1
    (case,) = report["cases"]
    assert (case["config"], case["mode"], case["equal_under_quirks"]) == (CPU_CONFIG, "lite_train_lite_infer", False)
    (diff,) = case["quirks_differences"]
    assert diff["kind"] == "words"
    assert diff["removed"] == ["--parity-probe=1"] and diff["added"] == []
    assert diff["left"]["argv"][:2] == ["python3.7", "train.py"]
    line = next(li for li in out.splitlines() if "reference vs --quirks plan" in li)
    assert CPU_CONFIG in line and "lite_train_lite_infer" in line and "--parity-probe=1" in line
    assert "reference: python3.7 train.py --output-dir=" in out
    assert out.strip().splitlines()[-1].startswith("parity: FAILED: 1 of 1 case(s)")
    page = html.read_text()
    assert "parity: FAILED: 1 of 1 case(s)" in page and "--parity-probe=1" in page and CPU_CONFIG in page
    assert tree_digest(step6) == before
    assert list(scratch.iterdir()) == []


@needs_step6
def test_recorders_stand_in_for_interpreters_and_tools_and_run_nothing(step6: Path, tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    script = step6 / SCRIPT
    probe = (
        f"python3 -c 'open(\"{marker}\", \"w\")'\n"
        "sleep 600\nwget http://example.invalid/x.tar\npip install paddleslim\nnvidia-smi -L\n"
        "python3 -m pip install reprod-log\n"
        f"python3.9 -c 'open(\"{marker}\", \"w\")'\n"
    )
    script.write_text(script.read_text().replace("# log\n", probe + "# log\n", 1))
    before = tree_digest(step6)

    rc, report, scratch = run_parity_cli(step6, tmp_path, CPU_CONFIG, "--modes", "whole_infer", "--timeout", "60")

    assert rc == 1  # the probe calls are not in our plan
    (case,) = report["cases"]
    assert case["script"]["status"] == "passed"  # `sleep 600` returned at once: it was a recorder
    assert [c["argv"][0] for c in case["other_calls"]] == ["sleep", "wget", "pip", "nvidia-smi", "python3"]
    assert case["other_calls"][2]["argv"] == ["pip", "install", "paddleslim"]
    assert [c["argv"][0] for c in case["reference_commands"]] == ["python3", "python3.9", "python3.7", "python3.7"]
    assert not marker.exists()  # the interpreter never ran the code it was given
    assert tree_digest(step6) == before
    assert list(scratch.iterdir()) == []


@needs_step6
def test_the_kl_quant_stand_in_creates_its_output_folder_inside_the_copy_only(step6: Path, tmp_path: Path) -> None:
    # PaddleClas' script `cd`s into the folder its kl_quant wrote; the recorder makes that folder so the `cd` works
    probe = (
        "python3 deploy/slim/quant_post_static.py -o Global.save_inference_dir=./inference\n"
        "(cd inference/quant_post_static_model && python3 predict.py)\n"
        "python3 deploy/slim/quant_post_static.py -o Global.save_inference_dir=../../../escaped\n"
    )
    script = step6 / SCRIPT
    script.write_text(script.read_text().replace("# log\n", probe + "# log\n", 1))
    before = tree_digest(step6)

    _, report, scratch = run_parity_cli(step6, tmp_path, CPU_CONFIG, "--modes", "whole_infer")

    (case,) = report["cases"]
    assert [(c["argv"][1], c["cwd"]) for c in case["reference_commands"][:3]] == [
        ("deploy/slim/quant_post_static.py", "."),
        ("predict.py", "inference/quant_post_static_model"),
        ("deploy/slim/quant_post_static.py", "."),
    ]
    assert not list(tmp_path.rglob("escaped"))
    assert tree_digest(step6) == before
    assert list(scratch.iterdir()) == []


@needs_step6
def test_a_hanging_script_is_stopped_and_reported(
    step6: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = step6 / SCRIPT
    script.write_text(script.read_text().replace("# log\n", "tail -f /dev/null\n# log\n", 1))

    rc, report, scratch = run_parity_cli(step6, tmp_path, CPU_CONFIG, "--modes", "whole_infer", "--timeout", "2")
    out = capsys.readouterr().out

    assert rc == 1
    (case,) = report["cases"]
    assert case["script"]["status"] == "timeout"
    assert "timed out after 2 s" in case["script"]["reason"]
    assert "the reference script timeout: timed out after 2 s" in out
    assert list(scratch.iterdir()) == []


@needs_step6
def test_links_leading_out_of_the_repository_are_not_followed(step6: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (step6 / "shared_data").symlink_to(outside)
    script = step6 / SCRIPT
    script.write_text(script.read_text().replace("# log\n", "touch shared_data/written\n# log\n", 1))

    rc, report, scratch = run_parity_cli(step6, tmp_path, CPU_CONFIG, "--modes", "whole_infer")

    assert rc == 0  # `touch` failed in the copy (no such folder) and the script went on, as bash scripts do
    assert list(outside.iterdir()) == []
    assert list(scratch.iterdir()) == []


@needs_step6
def test_a_failing_script_is_reported(step6: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = step6 / SCRIPT
    script.write_text(script.read_text() + "\nexit 3\n")

    rc, report, _ = run_parity_cli(step6, tmp_path, CPU_CONFIG, "--modes", "whole_infer")

    assert rc == 1
    (case,) = report["cases"]
    assert (case["script"]["status"], case["script"]["reason"]) == ("failed", "exit code 3")
    assert case["equal_under_quirks"] is False and case["quirks_differences"] == []  # same commands, failed script
    assert "the reference script failed: exit code 3" in capsys.readouterr().out


@needs_step6
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--modes", "lite_train_lite_infer,nightly"), "unknown mode 'nightly'"),
        (("--jobs", "0"), "--jobs and --timeout must be positive"),
        (("/etc/hostname",), "/etc/hostname: the config must lie inside the repository"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    step6: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    assert main(["parity", "--root", str(step6), "--scratch-dir", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert list(tmp_path.iterdir()) == [step6]  # nothing was started


@needs_step6
def test_cd_back_and_home_stay_inside_the_case_folder(
    step6: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("OLDPWD", str(elsewhere))  # where `cd -` would go, as from the caller's shell
    monkeypatch.setenv("HOME", str(elsewhere))
    probe = "cd ./no/such/folder\ncd -\ntouch left_here ~/home_file\ncd \"$OLDPWD\"\n"
    script = step6 / SCRIPT
    script.write_text(script.read_text().replace("# log\n", probe + "# log\n", 1))
    before = tree_digest(step6)

    rc, report, scratch = run_parity_cli(step6, tmp_path, CPU_CONFIG, "--modes", "whole_infer")

    assert rc == 0
    assert list(elsewhere.iterdir()) == []
    assert tree_digest(step6) == before
    assert list(scratch.iterdir()) == []


@needs_step6
def test_default_configs_are_the_train_infer_python_ones(step6: Path) -> None:
    assert set(default_configs(step6)) == STEP6_CONFIGS


def test_missing_script_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parity", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{SCRIPT}: no such script under") and "\n" not in err


# --- word-level differences and their explanations -------------------------------------------------------------------


def _cmd(words: str, kind: str = "train", step: str = "c::s", cwd: str = ".") -> Cmd:
    return Cmd(argv=tuple(words.split()), cwd=cwd, step=step, kind=kind)


def test_normalise_word_makes_paths_relative_to_the_run_root() -> None:
    assert normalise_word("--output-dir=./test_tipc/output/x") == "--output-dir=test_tipc/output/x"
    assert normalise_word("Global.output_dir={REPO_ROOT}/test_tipc/output/x") == "Global.output_dir=test_tipc/output/x"
    assert normalise_word("/tmp/s/tree/deploy/a", ["/tmp/s/tree"]) == "deploy/a"
    assert normalise_word("../inference//quant_post_static_model") == "../inference//quant_post_static_model"


def test_differences_are_whole_options_not_shifted_words() -> None:
    left = [_cmd("python3 tools/train.py -o Global.epochs=2 -o AMP.use_amp=False -o DataLoader.bs=8")]
    right = [_cmd("python3 tools/train.py -o Global.epochs=5 -o DataLoader.bs=8")]
    diffs = diff_commands(left, right, by_step=True)
    assert [(d.removed, d.added) for d in diffs] == [
        (("-o", "Global.epochs=2"), ("-o", "Global.epochs=5")),
        (("-o", "AMP.use_amp=False"), ()),
    ]


def test_one_flag_with_many_values_is_compared_value_by_value() -> None:
    left = [_cmd("python3 tools/train.py -c x.yml -o Global.use_gpu=True True Global.epoch_num=2 B.bs=16")]
    right = [_cmd("python3 tools/train.py -c x.yml -o Global.use_gpu=True Global.epoch_num=3 B.bs=16")]
    diffs = diff_commands(left, right, by_step=True)
    assert [(d.removed, d.added) for d in diffs] == [
        (("-o", "Global.use_gpu=True", "True"), ("-o", "Global.use_gpu=True")),
        (("Global.epoch_num=2",), ("Global.epoch_num=3",)),
    ]


def test_commands_only_on_one_side_and_cwd_changes() -> None:
    left = [_cmd("python a.py", step="c::a"), _cmd("python b.py", step="c::b", cwd="deploy")]
    right = [_cmd("python b.py", step="c::b"), _cmd("python c.py", step="c::c")]
    diffs = diff_commands(left, right, by_step=True)
    assert [(d.kind, d.command.argv[1]) for d in diffs] == [
        (DiffKind.MISSING, "a.py"),
        (DiffKind.CWD, "b.py"),
        (DiffKind.EXTRA, "c.py"),
    ]


@pytest.mark.parametrize(
    ("left", "right", "kind", "mode", "fix"),
    [
        ("python3 t.py -o AMP.use_amp=False -o X=1", "python3 t.py -o X=1", "train", "lite_train_lite_infer", "3.3"),
        ("python3 t.py -o Global.device=cpu gpu", "python3 t.py -o Global.device=gpu", "train", LITE, "3.4"),
        ("python3 t.py -o Global.epochs=2", "python3 t.py -o Global.epochs=5", "train", "lite_train_lite_infer", "4.3"),
        (
            "python3 t.py -o B.batch_size=lite_train_lite_infer=2 whole_train_whole_infer=64",
            "python3 t.py -o B.batch_size=2",
            "train",
            "lite_train_lite_infer",
            "4.4",
        ),
        ("python3 t.py --url=https", "python3 t.py --url=https://x.org/m.tar", "export", "whole_infer", "4.6"),
        (
            "python3 -m paddle.distributed.launch --gpus=0,1 t.py --e=1",
            "python3 t.py --e=1",
            "train",
            "lite_train_lite_infer",
            "5.3",
        ),
        ("python3 t.py --out=o/a.log --e=1", "python3 t.py --out=o/a --e=1", "train", "lite_train_lite_infer", "5.5"),
        (
            "python3 e.py -c x.yaml -o Global.save_inference_dir=o/c",
            "python3 e.py -c x.yaml -o Global.pretrained_model=test_tipc/output/m/c/RecModel/latest"
            " -o Global.save_inference_dir=o/c",
            "export",
            "lite_train_lite_infer",
            "5.7",
        ),
        ("python3 i.py --m=d", "python3 i.py --m=d --img=images/demo.jpg", "infer", "lite_train_lite_infer", "5.9"),
        (
            "python3 i.py --save_dir=o/m/lite/python_infer_cpu_results",
            "python3 i.py --save_dir=o/m/lite/norm_train_gpus_0/python_infer_cpu_results",
            "infer",
            LITE,
            "9.16",
        ),
        (
            "python3 infer.py --config=o/m/lite/c//deploy.yaml",
            "python3 infer.py --config=o/m/lite/c/deploy.yaml",
            "infer",
            LITE,
            "9.8",
        ),
        (
            "python3 export.py --model_path=o/c/iter_20/model.pdparams",
            "python3 export.py --model_path=o/c/best_model/model.pdparams",
            "export",
            LITE,
            "9.1",
        ),
        # not a documented fix: a flag the default plan drops for no documented reason
        ("python3 t.py --lr=0.1 --e=1", "python3 t.py --e=1", "train", "lite_train_lite_infer", ""),
        ("python3 i.py --m=d", "python3 i.py --m=d --img=images/demo.jpg", "infer", "whole_infer", ""),
        ("python3 t.py -o Global.epochs=3", "python3 t.py -o Global.epochs=5", "train", "lite_train_lite_infer", ""),
    ],
)
def test_each_documented_fix_is_recognised_and_nothing_else(
    left: str, right: str, kind: str, mode: str, fix: str
) -> None:
    lcmd, rcmd = _cmd(left, kind), _cmd(right, kind)
    ctx = FixContext(mode=mode, flavor="paddleclas", left=(lcmd,))
    explained = explain(diff_commands([lcmd], [rcmd], by_step=True), ctx)
    assert explained  # one difference per option unit: `-m paddle.distributed.launch` and `--gpus=0,1` are two
    assert {e.fix for e in explained} == {fix}


def test_duplicate_inference_and_whole_infer_branch_are_recognised() -> None:
    infer = _cmd("python3 p.py -o use_gpu=False", "infer", "c::infer_cpu_fp16")
    dup = _cmd("python3 p.py -o use_gpu=False", "infer", "c::infer_cpu_fp32")
    kl = _cmd("python3 q.py", "kl_quant", "kl_quant::kl_quant")
    export = _cmd("python3 e.py", "export", "whole_infer::export")
    left = (infer, dup, kl)
    ctx = FixContext(mode="whole_infer", flavor="paddleclas", left=left)
    explained = explain(diff_commands(left, [infer, export], by_step=True), ctx)
    assert [(e.difference.kind, e.fix) for e in explained] == [
        (DiffKind.MISSING, "6.1"),
        (DiffKind.MISSING, "7.1"),
        (DiffKind.EXTRA, "7.1"),
    ]


def test_html_page_escapes_commands() -> None:
    left = _cmd("python3 t.py --x=<b>&", step="")
    right = _cmd("python3 t.py", step="c::train")
    case = CaseResult(
        config="test_tipc/configs/m/<c>.txt",
        mode="whole_infer",
        reference=(left,),
        quirks_differences=diff_commands([left], [right]),
    )
    page = render_html(ParityReport(root="/r", script="s.sh", cases=(case,)))
    assert "--x=&lt;b&gt;&amp;" in page and "--x=<b>" not in page
    assert "test_tipc/configs/m/&lt;c&gt;.txt" in page
    assert "parity: FAILED: 1 of 1 case(s)" in page


def test_repository_specific_fixes() -> None:
    raw = _cmd("python3 main.py --max_iters=30 -o epochs=lite_train_lite_infer=2 whole_train_whole_infer=80")
    resolved = _cmd("python3 main.py --max_iters=30 -o epochs=2")
    video = FixContext(mode=LITE, flavor="paddlevideo", left=(raw,))
    assert [e.fix for e in explain(diff_commands([raw], [resolved], by_step=True), video)] == ["9.2"]
    null_export = _cmd("python3 null -o weights=o/c/model_final", "export", "c::export")
    train = _cmd("python3 tools/train.py", "train", "c::train")
    detection = FixContext(mode=LITE, flavor="paddledetection", left=(train, null_export))
    assert [e.fix for e in explain(diff_commands([train, null_export], [train], by_step=True), detection)] == ["9.4"]


def test_fix_table_ids_are_unique_and_documented() -> None:
    ids = [fix.id for fix in FIXES]
    assert len(ids) == len(set(ids))
    docs = Path(__file__).resolve().parents[1] / "test_tipc" / "docs"
    fixes = (docs / "config_format.md").read_text()
    tables = fixes[fixes.index("## `--quirks` and the fixes made without it") :] + (docs / "quirks.md").read_text()
    first_cells = [line[2:].split("|")[0] for line in tables.splitlines() if line.startswith("| ")]
    documented = {part.strip() for cell in first_cells for part in cell.split(",")}
    # 6.2: the planner's default GPU skip rule (marked Q6.2 in its code); config_format.md names that rule only
    # under "Not changed", although it drops reference combinations for quantized chains
    assert set(ids) <= documented | {"6.2"}
