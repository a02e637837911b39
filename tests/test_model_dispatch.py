"""models/tools/*.py: one entry point trains, evaluates and exports both model families, with -o > file > defaults."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from models.common.config import load_config
from models.common.registry import find_family
from models.lidar3d.config import load_lidar_config

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "models" / "tools"
DET_CONFIG = ROOT / "models" / "detection" / "configs" / "picodet_lite.yml"
LIDAR_CONFIG = ROOT / "models" / "lidar3d" / "configs" / "pointpillars_lite.yml"
LIDAR_TOOLS = ROOT / "models" / "lidar3d" / "tools"


def run(script: Path, *args: str | Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """A tool in its own interpreter with the repo root as cwd, as TIPC runs it."""
    return subprocess.run(
        [sys.executable, str(script), *(str(a) for a in args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    tail = f"--- stdout\n{proc.stdout[-2000:]}\n--- stderr\n{proc.stderr[-2000:]}"
    assert proc.returncode == 0, f"exit {proc.returncode}\n{tail}"
    return proc


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """A user error: exit 2 and exactly one `error:` line on stderr, no traceback (Paddle's import warnings aside)."""
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout[-1000:]}\n{proc.stderr[-1000:]}"
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module", autouse=True)
def lite_data() -> None:
    """Both lite sets under lite_data/ (the generators leave a complete set alone, so this is cheap when present)."""
    for script in ("make_det_lite.py", "make_kitti_lite.py"):
        ok(run(ROOT / "lite_data" / script, timeout=300))


def child_config(tmp_path: Path, base: Path, body: str) -> Path:
    """A config that inherits `base` and changes a few values, so file-over-defaults is observable."""
    path = tmp_path / f"child_{base.name}"
    path.write_text(f"_BASE_: {base}\n{body}")
    return path


# ---- both families from one entry point --------------------------------------------------------------------------


def test_detector_trains_through_the_shared_entry_point(tmp_path: Path) -> None:
    # File: 5 epochs (defaults 60) and batch 16 (defaults 8). Command line: 1 epoch.
    config = child_config(tmp_path, DET_CONFIG, "Global:\n  epochs: 5\nTrainReader:\n  batch_size: 16\n")
    out = tmp_path / "det"
    proc = ok(run(TOOLS / "train.py", "-c", config, "-o", "Global.epochs=1", f"Global.output_dir={out}"))
    assert (out / "latest.pdparams").is_file()
    summary = re.search(r"^train: epochs=(\d+) steps=(\d+)", proc.stdout, re.M)
    assert summary is not None, proc.stdout
    assert summary.group(1) == "1"  # -o beats the file
    saved = yaml.safe_load((out / "config.yml").read_text())
    assert saved["architecture"] == "PicoDetLite"
    assert saved["Global"]["epochs"] == 1
    assert saved["TrainReader"]["batch_size"] == 16  # the file beats the defaults
    assert saved["EvalReader"]["batch_size"] == 16 and saved["Optimizer"]["weight_decay"] == 0.0001  # defaults


def test_lidar_trains_evaluates_and_exports_through_the_shared_entry_points(tmp_path: Path) -> None:
    # File: 50 iters (defaults 200) and batch 2 (defaults 4). Command line: 3 iters.
    config = child_config(tmp_path, LIDAR_CONFIG, "iters: 50\nbatch_size: 2\n")
    save = tmp_path / "lidar"
    proc = ok(run(TOOLS / "train.py", "-c", config, "-o", "iters=3", f"Global.save_dir={save}", "log_interval=1"))
    assert (save / "model.pdparams").is_file() and (save / "log.txt").is_file()
    assert "iter 3/3 " in proc.stdout  # -o beats the file
    meta = json.loads((save / "model.json").read_text())
    assert (meta["stage"], meta["iters"], meta["batch_size"], meta["seed"]) == ("float", 3, 2, 123)
    # eval/export find the weights in the same Global.save_dir when Global.model is not given.
    evaluated = ok(run(TOOLS / "eval.py", "-c", config, "-o", f"Global.save_dir={save}"))
    assert re.search(r"^eval: bev_ap=[\d.]+ ap3d=[\d.]+ frames=16$", evaluated.stdout, re.M), evaluated.stdout
    exported = tmp_path / "lidar_infer"
    weights = save / "model.pdparams"
    ok(run(TOOLS / "export.py", "-c", config, "-o", f"Global.model={weights}", f"Global.export_dir={exported}"))
    assert (exported / "inference.json").is_file() and (exported / "deploy.yml").is_file()


def test_lidar_overrides_reach_the_same_settings_as_the_paddle3d_flags(tmp_path: Path) -> None:
    """The old tool's `--iters 3 --batch_size 2 --seed 7` and the same values as `-o` keys give the same weights."""
    flags, opts = tmp_path / "flags", tmp_path / "opts"
    ok(run(LIDAR_TOOLS / "train.py", "--config", LIDAR_CONFIG, "--iters", "3", "--batch_size", "2", "--seed", "7",
           "--save_dir", flags))
    ok(run(TOOLS / "train.py", "-c", LIDAR_CONFIG, "-o", "iters=3", "batch_size=2", "seed=7",
           f"Global.save_dir={opts}"))
    assert (flags / "model.pdparams").read_bytes() == (opts / "model.pdparams").read_bytes()


# ---- user errors: one line, exit 2 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "override", "key"),
    [
        (DET_CONFIG, "Global.epoch=1", "Global.epoch"),
        (LIDAR_CONFIG, "Global.sav_dir=x", "Global.sav_dir"),
        (LIDAR_CONFIG, "model.grid.sizee=16", "model.grid.sizee"),
    ],
    ids=["detection", "lidar3d-run-section", "lidar3d-model-section"],
)
def test_unknown_override_key_names_the_key_and_the_file(config: Path, override: str, key: str) -> None:
    line = one_error_line(run(TOOLS / "train.py", "-c", config, "-o", override))
    assert f"unknown key '{key}'" in line and str(config) in line


def test_wrong_override_type_and_unknown_file_key_are_one_line(tmp_path: Path) -> None:
    line = one_error_line(run(TOOLS / "train.py", "-c", LIDAR_CONFIG, "-o", "iters=many"))
    assert "'iters' expects an integer" in line and str(LIDAR_CONFIG) in line
    typo = child_config(tmp_path, LIDAR_CONFIG, "iter: 5\n")
    line = one_error_line(run(TOOLS / "train.py", "-c", typo))
    assert "unknown key 'iter'" in line and str(typo) in line


def test_unknown_or_missing_architecture_is_one_line(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.yml"
    unknown.write_text("architecture: NoSuchNet\niters: 1\n")
    line = one_error_line(run(TOOLS / "train.py", "-c", unknown))
    assert "unknown architecture 'NoSuchNet'" in line and str(unknown) in line
    assert "PicoDetLite" in line and "PointPillarsLite" in line  # the registered ones, from both families
    missing = tmp_path / "missing.yml"
    missing.write_text("iters: 1\n")
    line = one_error_line(run(TOOLS / "eval.py", "-c", missing))
    assert "architecture" in line and str(missing) in line


def test_lidar_eval_without_weights_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(run(TOOLS / "eval.py", "-c", LIDAR_CONFIG, "-o", f"Global.save_dir={tmp_path / 'none'}"))
    assert "Global.model is empty" in line and str(LIDAR_CONFIG) in line


def test_lidar_family_defaults_cover_the_config_file() -> None:
    """Every key of the shipped config is in the family's defaults, and the old loader still accepts the file."""
    family = find_family("PointPillarsLite")
    assert family.name == "lidar3d" and set(family.tasks) >= {"train", "eval", "export"}
    cfg = load_config(LIDAR_CONFIG, ["Global.stage=qat"], defaults=family.defaults("PointPillarsLite"))
    assert cfg["Global.stage"] == "qat" and cfg["Global.save_dir"] == "output" and cfg["iters"] == 200
    assert load_lidar_config(LIDAR_CONFIG)["architecture"] == "PointPillarsLite"
