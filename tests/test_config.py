"""Config parsing: entries keep file and line, layouts are detected, malformed files give one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import Layout, load_config, physical_lines, split_entries
from harness.errors import ConfigError
from harness.plan import MODES, PlanOptions, build_plan

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
BAD = [row.split("\t") for row in (DATA / "bad" / "EXPECTED.tsv").read_text().splitlines()]


def _first_error(path: Path) -> ConfigError:
    try:
        config = load_config(path)
        for mode in MODES:
            build_plan(config, mode, PlanOptions(repo_root="/repo"))
    except ConfigError as exc:
        return exc
    raise AssertionError(f"{path} gave no error")


def test_corpus_has_at_least_thirty_malformed_configs() -> None:
    assert len(BAD) >= 30
    assert {name for name, _, _ in BAD} <= {p.name for p in (DATA / "bad").iterdir()}


@pytest.mark.parametrize(("name", "line", "words"), BAD, ids=[row[0] for row in BAD])
def test_malformed_config_error_names_file_and_line(name: str, line: str, words: str) -> None:
    error = _first_error(DATA / "bad" / name)
    assert error.line == int(line)
    assert words in error.msg
    rendered = error.render()
    assert rendered.startswith(f"{DATA / 'bad' / name}:{line}: ")
    assert "\n" not in rendered


@pytest.mark.parametrize(("name", "line", "words"), BAD, ids=[row[0] for row in BAD])
def test_lint_cli_prints_one_line_and_exits_2(name: str, line: str, words: str) -> None:
    path = f"tests/data/bad/{name}"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "lint", path], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    error_lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.startswith(f"{path}:")]
    assert len(error_lines) == 1
    assert error_lines[0].startswith(f"{path}:{line}: ")
    assert words in error_lines[0]


def test_missing_file_and_directory_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.txt")
    with pytest.raises(ConfigError, match="directory"):
        load_config(tmp_path)


def test_crlf_and_trailing_spaces_parse_like_plain_lines(tmp_path: Path) -> None:
    text = (DATA / "good" / "tutorial_ok.txt").read_text()
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes("\r\n".join(line + "  " for line in text.splitlines()).encode())
    plain = build_plan(load_config(DATA / "good" / "tutorial_ok.txt"), "lite_train_lite_infer")
    odd = build_plan(load_config(crlf), "lite_train_lite_infer")
    assert [s.command.argv for s in odd.steps] == [s.command.argv for s in plain.steps]


def test_blank_lines_are_dropped_but_physical_lines_are_kept() -> None:
    entries = split_entries("x.txt", "===train_params===\n\nmodel_name:m\n\n\npython:python3\n")
    assert [(e.index, e.line) for e in entries] == [(1, 1), (2, 3), (3, 6)]
    assert entries[2].value == "python3"


def test_value_keeps_colons_but_bash_value_truncates_them() -> None:
    entries = split_entries("x.txt", "===train_params===\npretrained_model_url:https://host/a:b.tar\n-o Global.x: a:b \n")
    url = entries[1]
    assert url.key == "pretrained_model_url"
    assert url.value == "https://host/a:b.tar"
    assert url.bash_value == "https"  # Q4.6
    assert entries[2].key == "-o Global.x"
    assert entries[2].value == "a:b"


def test_layouts_are_detected() -> None:
    assert load_config(DATA / "good" / "tutorial_ok.txt").layout is Layout.TUTORIAL
    assert load_config(DATA / "good" / "full_ok.txt").layout is Layout.FULL


def test_sections_after_the_layout_are_readable() -> None:
    config = load_config(DATA / "good" / "full_ok.txt")
    assert [(e.key, e.value) for e in config.section("harness_params")] == [("flavor", "harness")]
    assert config.section("nope") == ()


@pytest.mark.parametrize(
    "separator", ["\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r"], ids=repr
)
def test_only_newline_ends_a_line(separator: str) -> None:
    text = f"a\nb{separator}c\nd\r\ne\n"
    assert physical_lines(text) == ["a", f"b{separator}c", "d", "e"]
    with pytest.raises(ConfigError) as info:
        split_entries("x.txt", text)
    assert info.value.line == 2
    assert f"U+{ord(separator):04X}" in info.value.msg


def test_physical_lines_match_grep_n(tmp_path: Path) -> None:
    """The line an error names is the line `grep -n` shows, whatever other separators sit above it."""
    text = "===train_params===\nmodel_name:m\r\npython:python3\nrest:a\x1cb\n"
    path = tmp_path / "c.txt"
    path.write_bytes(text.encode())
    proc = subprocess.run(["grep", "-n", "rest:", str(path)], capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("4:")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == 4


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_non_regular_files_are_refused_without_reading(tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        path = tmp_path / "pipe.txt"
        os.mkfifo(path)  # nobody ever writes: reading it would block forever
        words = "FIFO"
    else:
        path = Path("/dev/zero")  # reading it would never end
        words = "character device"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == 0
    assert words in info.value.msg
    for sub in (["lint", str(path)], ["plan", str(path), "lite_train_lite_infer"],
                ["run", str(path), "lite_train_lite_infer", "--root", str(tmp_path)]):
        proc = subprocess.run(
            [sys.executable, "-m", "harness", *sub], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2, sub
        assert f"{path}:0: is a" in proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
