"""tipc affected: a small git repository built per test; each change selects exactly the cases whose inputs it is."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.affected import AffectedError, ImportGraph, changed_files
from harness.cli import main

CONFIG = """\
===========================train_params===========================
model_name:{model}
python:python3
gpu_list:-1
--device:cpu
--epochs:lite_train_lite_infer=1|whole_train_whole_infer=1
--output-dir:./output/
--batch-size:lite_train_lite_infer=2|whole_train_whole_infer=2
--pretrained:null
train_model_name:latest.pdparams
--data-path:./data
##
trainer:norm_train
norm_train:tools/{script}.py -c configs/{model}.yaml
##
===========================eval_params===========================
eval:null
##
===========================infer_params===========================
--save-inference-dir:./output/infer/
--pretrained:
norm_export:null
##
train_model:null
infer_export:null
##
inference:null
--use-gpu:False
--batch-size:1
--model-dir:./output/infer/
--img-path:./data
--benchmark:False
"""

FILES = {
    "test_tipc/configs/alpha/train_infer_python.txt": CONFIG.format(model="alpha", script="train_alpha"),
    "test_tipc/configs/beta/train_infer_python.txt": CONFIG.format(model="beta", script="train_beta"),
    "configs/alpha.yaml": "epochs: 1\n",
    "configs/beta.yaml": "_BASE_: [\n  '_base_/runtime.yml',\n  \"_base_/optimizer.yml\"]\nepochs: 1\n",
    "configs/_base_/runtime.yml": "_BASE_:\n  - ../../shared.yml\nuse_gpu: false\n",
    "configs/_base_/optimizer.yml": "lr: 0.1\n",
    "configs/_base_/unused.yml": "x: 1\n",
    "shared.yml": "seed: 1\n",
    # train_alpha imports lib.model (and through it lib.layers, relatively); train_beta imports only helpers.
    "tools/train_alpha.py": "import os\nfrom lib.model import build\nimport helpers\n",
    "tools/train_beta.py": "import sys\nfrom lib import util\n",
    "tools/helpers.py": "X = 1\n",
    "lib/__init__.py": "",
    "lib/model.py": "from .layers import conv\n\ndef build():\n    return conv\n",
    "lib/layers.py": "conv = 1\n",
    "lib/util.py": "Y = 2\n",
    "lib/unused.py": "Z = 3\n",
    "requirements.txt": "paddlepaddle\n",
    # Not a train/infer config: the harness runs no case of it, so it is not listed.
    "test_tipc/configs/alpha/serving_infer_python.txt": "===serving_params===\nmodel_name:alpha\n",
    "README.md": "hello\n",
    "tests/test_x.py": "def test_x():\n    pass\n",
}

ALPHA = "test_tipc/configs/alpha/train_infer_python.txt"
BETA = "test_tipc/configs/beta/train_infer_python.txt"
MODE = "lite_train_lite_infer"


def _git(root: Path, *args: str) -> None:
    subprocess.run(("git", "-C", str(root), *args), check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
    return root


def _affected(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, object]:
    code = main(["affected", "--since", "HEAD", "--root", str(root), "--mode", MODE, "--json", *extra])
    assert code == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def _cases(data: dict[str, object]) -> list[tuple[str, str, tuple[str, ...]]]:
    cases = data["cases"]
    assert isinstance(cases, list)
    return [(c["config"], c["mode"], tuple(c["because"])) for c in cases]


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ("lib/layers.py", [(ALPHA, MODE, ("lib/layers.py",))]),  # reached through a relative import
        ("lib/model.py", [(ALPHA, MODE, ("lib/model.py",))]),
        ("tools/helpers.py", [(ALPHA, MODE, ("tools/helpers.py",))]),  # sibling of the entry script
        ("lib/util.py", [(BETA, MODE, ("lib/util.py",))]),  # `from lib import util` names a submodule
        ("configs/beta.yaml", [(BETA, MODE, ("configs/beta.yaml",))]),  # named by the planned command
        ("configs/_base_/optimizer.yml", [(BETA, MODE, ("configs/_base_/optimizer.yml",))]),  # _BASE_ flow list
        ("shared.yml", [(BETA, MODE, ("shared.yml",))]),  # _BASE_ of a _BASE_, as a block list, up one folder
        (ALPHA, [(ALPHA, MODE, (ALPHA,))]),
        ("tools/train_beta.py", [(BETA, MODE, ("tools/train_beta.py",))]),
    ],
)
def test_a_change_selects_the_cases_that_read_it(
    repo: Path, capsys: pytest.CaptureFixture[str], changed: str, expected: list[tuple[str, str, tuple[str, ...]]]
) -> None:
    with (repo / changed).open("a", encoding="utf-8") as handle:
        handle.write("# changed\n")
    data = _affected(repo, capsys)
    assert _cases(data) == expected
    assert data["everything"] == []
    assert data["changed"] == [changed]


@pytest.mark.parametrize(
    ("changed", "why"),
    [
        ("requirements.txt", "installs or packages"),
        ("lib/__init__.py", "package __init__"),
        ("lib/unused.py", "imported by no planned command"),
    ],
)
def test_an_unattributable_change_selects_everything_and_says_why(
    repo: Path, capsys: pytest.CaptureFixture[str], changed: str, why: str
) -> None:
    with (repo / changed).open("a", encoding="utf-8") as handle:
        handle.write("# changed\n")
    data = _affected(repo, capsys)
    assert [c[:2] for c in _cases(data)] == [(ALPHA, MODE), (BETA, MODE)]
    everything = data["everything"]
    assert isinstance(everything, list) and len(everything) == 1
    assert everything[0].startswith(f"{changed}: ") and why in everything[0]


def test_an_unused_yaml_touches_no_case(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "configs" / "_base_" / "unused.yml").write_text("x: 2\n", encoding="utf-8")
    data = _affected(repo, capsys)
    assert data["cases"] == [] and data["unrelated"] == ["configs/_base_/unused.yml"]


def test_docs_and_tests_touch_no_case(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "README.md").write_text("changed\n", encoding="utf-8")
    (repo / "tests" / "test_x.py").write_text("changed = 1\n", encoding="utf-8")
    data = _affected(repo, capsys)
    assert data["cases"] == []
    assert data["unrelated"] == ["README.md", "tests/test_x.py"]


def test_untracked_and_deleted_files_count(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "configs" / "alpha.yaml").unlink()
    (repo / "notes.txt").write_text("new\n", encoding="utf-8")
    data = _affected(repo, capsys)
    assert data["changed"] == ["configs/alpha.yaml", "notes.txt"]
    assert _cases(data) == [(ALPHA, MODE, ("configs/alpha.yaml",))]


def test_committed_changes_since_an_older_revision(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "lib" / "layers.py").write_text("conv = 2\n", encoding="utf-8")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "second")
    assert changed_files(repo, "HEAD") == ()
    assert changed_files(repo, "HEAD~1") == ("lib/layers.py",)


def test_text_output_names_the_reason(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "requirements.txt").write_text("paddlepaddle==9\n", encoding="utf-8")
    assert main(["affected", "--since", "HEAD", "--root", str(repo), "--mode", MODE]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "everything: requirements.txt: installs or packages what every case runs",
        f"{ALPHA} {MODE}",
        f"{BETA} {MODE}",
    ]
    assert "1 changed file(s) since HEAD; 2 of 2 case(s) selected" in err


def test_unknown_revision_is_one_line_exit_2(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["affected", "--since", "no-such-rev", "--root", str(repo)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tipc affected: git diff") and "\n" not in err
    with pytest.raises(AffectedError):
        changed_files(repo, "no-such-rev")


def test_import_graph_follows_packages_and_relative_imports(repo: Path) -> None:
    graph = ImportGraph(repo)
    closure = graph.closure(["tools/train_alpha.py"], bases=("tools", ""))
    assert sorted(closure) == [
        "lib/__init__.py",
        "lib/layers.py",
        "lib/model.py",
        "tools/helpers.py",
        "tools/train_alpha.py",
    ]


def test_a_run_root_below_the_git_top(tmp_path: Path) -> None:
    top = tmp_path / "mono"
    (top / "proj" / "lib").mkdir(parents=True)
    (top / "proj" / "lib" / "a.py").write_text("A = 1\n", encoding="utf-8")
    (top / "other.txt").write_text("x\n", encoding="utf-8")
    _git(top, "init", "-q")
    _git(top, "add", "-A")
    _git(top, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
    (top / "proj" / "lib" / "a.py").write_text("A = 2\n", encoding="utf-8")
    (top / "other.txt").write_text("y\n", encoding="utf-8")
    assert changed_files(top / "proj", "HEAD") == ("lib/a.py",)  # named from the run root; outside it left out
