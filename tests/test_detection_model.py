"""PicoDetLite end to end: real training, eval, export, PTQ, PACT and ONNX in subprocesses, plus input errors."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.common.config import ConfigError, load_config
from models.common.registry import UnknownArchitecture, find_family

ROOT = Path(__file__).resolve().parents[1]
DET = ROOT / "models" / "detection"
CONFIG = DET / "configs" / "picodet_lite.yml"
PACT_CONFIG = DET / "configs" / "picodet_lite_pact.yml"
MAKE_DATA = ROOT / "lite_data" / "make_det_lite.py"

# Lite training for the tests: 20 epochs of 19 steps (about 20 s on 2 cores). The TIPC lite chain trains 30.
TRAIN_EPOCHS = 20
# A trained model must beat an untrained one (mAP ~0.00) by far; 20 epochs reach 0.45-0.55 here.
MIN_TRAINED_MAP = 0.25
MAX_UNTRAINED_MAP = 0.05
# int8 models may lose this much COCO mAP (absolute) against their float / QAT source. Measured: PTQ (hist)
# -0.001..-0.01, PACT export vs its QAT eval -0.005; 0.05 is 5 points of mAP, a clear failure beyond that.
INT8_MAP_TOLERANCE = 0.05
EVAL_LINE = re.compile(r"^eval: mAP=(?P<map>\d+\.\d+) mAP50=(?P<map50>\d+\.\d+)$", re.MULTILINE)
RESULT_LINE = re.compile(r"^result: image=(\S+) class_ids=\[([^\]]*)\] scores=\[([^\]]*)\] boxes=\[([^\]]*)\]$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    def ok(self) -> Run:
        assert self.returncode == 0, f"exit {self.returncode}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"
        return self

    def metric(self) -> tuple[float, float]:
        match = EVAL_LINE.search(self.stdout)
        assert match is not None, f"no eval line in:\n{self.stdout[-2000:]}"
        return float(match["map"]), float(match["map50"])


def run(script: Path, *args: str | Path, timeout: float = 240.0) -> Run:
    """Run one tool as TIPC does: a separate interpreter, the repo root as cwd."""
    proc = subprocess.run(
        [sys.executable, str(script), *(str(a) for a in args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def data_opts(data: Path) -> list[str]:
    return ["-o", f"TrainReader.dataset_dir={data}", f"EvalReader.dataset_dir={data}"]


# ---------------------------------------------------------------------------------------------------------------
# fixtures: one data set, one float training and export for the whole module


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("det") / "det_shapes"
    run(MAKE_DATA, "--out", out).ok()
    return out


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("float_train")
    run(DET / "tools" / "train.py", "-c", CONFIG, *data_opts(data), "-o", f"Global.epochs={TRAIN_EPOCHS}", f"Global.output_dir={out}").ok()
    assert (out / "latest.pdparams").is_file() and (out / "latest.meta.json").is_file()
    return out


@pytest.fixture(scope="module")
def exported(trained: Path, data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("float_infer")
    run(
        DET / "tools" / "export_model.py", "-c", CONFIG, *data_opts(data),
        "-o", f"Global.pretrained_model={trained}/latest", f"Global.save_inference_dir={out}",
    ).ok()
    assert (out / "inference.pdmodel").is_file() and (out / "infer_cfg.yml").is_file()
    return out


def infer_map(model_dir: Path, data: Path, *extra: str) -> tuple[float, float]:
    return run(
        DET / "deploy" / "infer.py", "--model_dir", model_dir, "--image_dir", data / "val",
        "--ann_file", data / "annotations" / "instances_val.json", "--quiet", "True", *extra,
    ).ok().metric()


# ---------------------------------------------------------------------------------------------------------------
# accuracy


def test_training_beats_an_untrained_model(trained: Path, data: Path) -> None:
    untrained, _ = run(DET / "tools" / "eval.py", "-c", CONFIG, *data_opts(data)).ok().metric()
    m_ap, m_ap50 = run(
        DET / "tools" / "eval.py", "-c", CONFIG, *data_opts(data), "-o", f"Global.pretrained_model={trained}/latest"
    ).ok().metric()
    assert untrained <= MAX_UNTRAINED_MAP
    assert m_ap >= MIN_TRAINED_MAP, f"mAP {m_ap:.4f} after {TRAIN_EPOCHS} epochs"
    assert m_ap50 >= m_ap


def test_exported_model_matches_training_eval(trained: Path, exported: Path, data: Path) -> None:
    dygraph, _ = run(
        DET / "tools" / "eval.py", "-c", CONFIG, *data_opts(data), "-o", f"Global.pretrained_model={trained}/latest"
    ).ok().metric()
    for mkldnn in ("True", "False"):
        inference, _ = infer_map(exported, data, "--use_mkldnn", mkldnn)
        assert abs(inference - dygraph) <= 0.002, f"mkldnn={mkldnn}: inference {inference} vs eval {dygraph}"


def test_ptq_int8_map_within_tolerance_of_float(exported: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ptq"
    log = run(
        DET / "deploy" / "quant_post_static.py", "-c", CONFIG, *data_opts(data),
        "--model_dir", exported, "-o", f"Global.save_inference_dir={out}",
    ).ok().stdout
    assert "quant_ops=" in log and "quantize_linear" in log
    # The quantized program really holds quant ops and says so in its deploy config.
    assert "quant: ptq" in (out / "infer_cfg.yml").read_text()
    float_map, _ = infer_map(exported, data)
    int8_map, _ = infer_map(out, data, "--use_mkldnn", "True", "--precision", "int8")
    assert abs(int8_map - float_map) <= INT8_MAP_TOLERANCE, f"PTQ {int8_map} vs float {float_map}"


def test_pact_qat_export_within_tolerance(trained: Path, data: Path, tmp_path: Path) -> None:
    """PACT fine-tuning from the float weights, then the exported int8 program against the QAT model's own eval."""
    qat_dir, infer_dir = tmp_path / "qat", tmp_path / "qat_infer"
    run(
        DET / "tools" / "train.py", "-c", PACT_CONFIG, *data_opts(data),
        "-o", "Global.epochs=3", f"Global.output_dir={qat_dir}", f"Global.pretrained_model={trained}/latest",
    ).ok()
    assert json.loads((qat_dir / "latest.meta.json").read_text())["quant"] == "pact"
    # The float config on a PACT checkpoint: eval follows the checkpoint's metadata and builds the QAT model.
    qat_map, _ = run(
        DET / "tools" / "eval.py", "-c", CONFIG, *data_opts(data), "-o", f"Global.pretrained_model={qat_dir}/latest"
    ).ok().metric()
    run(
        DET / "tools" / "export_model.py", "-c", PACT_CONFIG, *data_opts(data),
        "-o", f"Global.pretrained_model={qat_dir}/latest", f"Global.save_inference_dir={infer_dir}",
    ).ok()
    assert "quant: pact" in (infer_dir / "infer_cfg.yml").read_text()
    int8_map, _ = infer_map(infer_dir, data)
    assert qat_map >= MIN_TRAINED_MAP
    assert abs(int8_map - qat_map) <= INT8_MAP_TOLERANCE, f"PACT export {int8_map} vs QAT eval {qat_map}"


# ---------------------------------------------------------------------------------------------------------------
# ONNX


def _parse(stdout: str) -> dict[str, tuple[list[int], list[float]]]:
    return {
        m[0]: ([int(v) for v in m[1].split(",") if v], [float(v) for v in m[2].split(",") if v])
        for m in RESULT_LINE.findall(stdout)
    }


def test_onnx_and_paddle_inference_agree(exported: Path, data: Path, tmp_path: Path) -> None:
    onnx = run(
        DET / "deploy" / "paddle2onnx_infer.py", "--model_dir", exported, "--image_dir", data / "demo",
        "--save_file", tmp_path / "model.onnx",
    ).ok()
    assert (tmp_path / "model.onnx").stat().st_size > 1000
    assert re.search(r"^compare: .* ok=True$", onnx.stdout, re.MULTILINE), onnx.stdout[-2000:]
    paddle = run(DET / "deploy" / "infer.py", "--model_dir", exported, "--image_dir", data / "demo").ok()
    got, want = _parse(onnx.stdout), _parse(paddle.stdout)
    assert sorted(got) == sorted(want) and len(want) == 4
    for image, (classes, scores) in want.items():
        assert got[image][0] == classes, image
        assert max(abs(a - b) for a, b in zip(got[image][1], scores, strict=True)) <= 1e-4, image


def test_onnx_refuses_quantized_models_with_a_clear_error(exported: Path, data: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake_quant"
    shutil.copytree(exported, fake)
    cfg = fake / "infer_cfg.yml"
    cfg.write_text(cfg.read_text().replace("quant: none", "quant: ptq"))
    result = run(DET / "deploy" / "paddle2onnx_infer.py", "--model_dir", fake, "--image_dir", data / "demo")
    assert result.returncode == 2
    assert str(fake) in result.stderr and "quantized" in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# bad input: one line naming the file, exit code 2


def _one_error_line(result: Run) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[0]


def test_corrupt_annotation_file_names_the_file(data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "instances_val.json"
    text = (data / "annotations" / "instances_val.json").read_text()
    broken.write_text(text[: len(text) // 2])  # truncated JSON
    line = _one_error_line(
        run(DET / "tools" / "eval.py", "-c", CONFIG, *data_opts(data), "-o", f"EvalReader.anno_path={broken}")
    )
    assert str(broken) in line and "invalid JSON" in line


def test_annotation_with_a_bad_box_names_the_entry(data: Path, tmp_path: Path) -> None:
    coco = json.loads((data / "annotations" / "instances_val.json").read_text())
    coco["annotations"][3]["bbox"] = [1, 2, -5, 4]
    bad = tmp_path / "bad_box.json"
    bad.write_text(json.dumps(coco))
    line = _one_error_line(run(DET / "tools" / "eval.py", "-c", CONFIG, *data_opts(data), "-o", f"EvalReader.anno_path={bad}"))
    assert str(bad) in line and "annotations[3]" in line


def test_corrupt_image_names_the_image(data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "det_copy"
    shutil.copytree(data, copy)
    victim = sorted((copy / "val").glob("*.png"))[5]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    line = _one_error_line(run(DET / "tools" / "eval.py", "-c", CONFIG, *data_opts(copy)))
    assert str(victim) in line and "cannot decode image" in line


def test_bad_override_key_is_one_clear_line() -> None:
    line = _one_error_line(run(DET / "tools" / "train.py", "-c", CONFIG, "-o", "Global.epoch=3"))
    assert "Global.epoch" in line and str(CONFIG) in line and "unknown key" in line


def test_bad_override_type_is_one_clear_line() -> None:
    line = _one_error_line(run(DET / "tools" / "train.py", "-c", CONFIG, "-o", "Global.epochs=many"))
    assert "Global.epochs" in line and "integer" in line


# ---------------------------------------------------------------------------------------------------------------
# data generation and config handling (no Paddle)


def test_data_generation_is_deterministic_and_idempotent(data: Path, tmp_path: Path) -> None:
    again = tmp_path / "det_shapes"
    assert "built" in run(MAKE_DATA, "--out", again).ok().stdout
    assert "already complete" in run(MAKE_DATA, "--out", again).ok().stdout
    files = sorted(p.relative_to(data) for p in data.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (data / rel).read_bytes() == (again / rel).read_bytes(), rel
    coco = json.loads((data / "annotations" / "instances_train.json").read_text())
    images = len(list((data / "train").glob("*.png"))) + len(list((data / "val").glob("*.png")))
    assert len(coco["images"]) == 150 and images + len(list((data / "demo").glob("*.png"))) <= 200
    assert {c["name"] for c in coco["categories"]} == {"circle", "square", "triangle"}
    assert run(MAKE_DATA, "--out", again, "--check").returncode == 0
    (again / "val" / "shapes_val_0000.png").unlink()
    assert run(MAKE_DATA, "--out", again, "--check").returncode == 1


def test_override_priority_command_line_over_file_over_defaults(tmp_path: Path) -> None:
    family = find_family("PicoDetLite")
    base = tmp_path / "base.yml"
    base.write_text("architecture: PicoDetLite\nGlobal:\n  epochs: 7\n  seed: 5\n")
    child = tmp_path / "child.yml"
    child.write_text("_BASE_: base.yml\nGlobal:\n  seed: 9\n")
    cfg = load_config(child, ["Global.epochs=3", "Optimizer.lr=1e-3"], defaults=family.defaults("PicoDetLite"))
    assert cfg["Global.epochs"] == 3  # command line beats the base file
    assert cfg["Global.seed"] == 9  # child file beats base file
    assert cfg["Optimizer.lr"] == pytest.approx(1e-3)  # YAML reads 1e-3 as text; it must still be a number
    assert cfg["TrainReader.batch_size"] == 8  # default, set nowhere else
    with pytest.raises(ConfigError, match=r"unknown key 'Global\.nope'"):
        load_config(child, ["Global.nope=1"], defaults=family.defaults("PicoDetLite"))
    bad_file = tmp_path / "typo.yml"
    bad_file.write_text("architecture: PicoDetLite\nGlobl:\n  epochs: 1\n")
    with pytest.raises(ConfigError, match="unknown key 'Globl'") as info:
        load_config(bad_file, [], defaults=family.defaults("PicoDetLite"))
    assert str(bad_file) in str(info.value)


def test_unknown_architecture_lists_the_registered_ones() -> None:
    with pytest.raises(UnknownArchitecture, match="PicoDetLite"):
        find_family("NoSuchNet")
