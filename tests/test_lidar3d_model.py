"""The lidar3d family end to end on the lite set: training helps, int8 == QAT, ONNX == Paddle, bad data is named."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "models/lidar3d/configs/pointpillars_lite.yml"
QUANT = REPO / "models/lidar3d/configs/quant/pointpillars_lite_int8.yml"
TOOLS = REPO / "models/lidar3d/tools"
DEPLOY = REPO / "models/lidar3d/deploy"
FLOAT_ITERS = 120
QAT_ITERS = 40

# Paddle warns about build details (ccache, ...) on import and during ops; those are not this project's warnings.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_kitti_lite", REPO / "lite_data/make_kitti_lite.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *(str(a) for a in args)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        pytest.fail(f"{args[0]} exited {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def _paddle_modules() -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from models.lidar3d.runtime import pin_numerics

        pin_numerics()
        import models.lidar3d.engine as engine
        from models.lidar3d.config import load_lidar_config
        from models.lidar3d.int8_engine import Int8Engine
    return {"engine": engine, "load": load_lidar_config, "Int8Engine": Int8Engine}


# ---- data -----------------------------------------------------------------------------------------------------


def test_generation_is_deterministic_and_small(tmp_path: Path) -> None:
    gen = _generator()
    first, second = tmp_path / "a", tmp_path / "b"
    assert gen.build(first) is True
    assert gen.build(first) is False  # idempotent: a complete tree is left alone
    assert gen.build(second) is True
    manifest_a = json.loads((first / "manifest.json").read_text())
    manifest_b = json.loads((second / "manifest.json").read_text())
    assert manifest_a == manifest_b
    bins = sorted((first / "velodyne").glob("*.bin"))
    assert 0 < len(bins) <= 100
    assert all(p.stat().st_size % 16 == 0 for p in bins)
    total = sum(p.stat().st_size for p in first.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024
    train = (first / "ImageSets/train.txt").read_text().split()
    val = (first / "ImageSets/val.txt").read_text().split()
    assert train and val and not set(train) & set(val)


def test_labels_round_trip_to_lidar_boxes() -> None:
    """KITTI camera-frame labels plus the trivial calib give back the generator's lidar-frame boxes."""
    gen = _generator()
    from models.lidar3d.data import KittiLite

    data = KittiLite(gen.DEFAULT_OUT, "train", tuple(gen.CLASSES))
    frame = data[0]
    expected = gen.frame_boxes(0)
    assert len(frame.boxes) == len(expected)
    for box, (cls, x, y, z, length, width, height, yaw) in zip(frame.boxes, expected, strict=True):
        assert abs(box[0] - x) < 0.02 and abs(box[1] - y) < 0.02 and abs(box[2] - z) < 0.02
        assert abs(box[3] - width) < 0.01 and abs(box[4] - length) < 0.01 and abs(box[5] - height) < 0.01
        assert abs(np.sin(2 * (box[6] - yaw))) < 0.02


def _copy_set(tmp_path: Path) -> Path:
    gen = _generator()
    gen.build(gen.DEFAULT_OUT)
    root = tmp_path / "kitti"
    shutil.copytree(gen.DEFAULT_OUT, root)
    return root


def test_corrupted_point_cloud_is_named(tmp_path: Path) -> None:
    from models.lidar3d.data import KittiLite, LiteDataError

    root = _copy_set(tmp_path)
    bad = root / "velodyne/000050.bin"
    bad.write_bytes(bad.read_bytes()[:-3])
    with pytest.raises(LiteDataError, match=r"000050\.bin: corrupted point cloud: \d+ bytes is not a multiple of 16"):
        KittiLite(root, "val", ("Car", "Pedestrian"))
    # The tools turn it into one line on stderr and exit 2, no traceback.
    proc = _run(TOOLS / "train.py", "--config", CONFIG, "--iters=1", f"--save_dir={tmp_path / 'out'}",
                "-o", f"train_dataset.dataset_root={root}", "-o", "train_dataset.split=val", check=False)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "velodyne/000050.bin: corrupted point cloud" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_malformed_label_line_is_named(tmp_path: Path) -> None:
    from models.lidar3d.data import KittiLite, LiteDataError

    root = _copy_set(tmp_path)
    label = root / "label_2/000049.txt"
    lines = label.read_text().splitlines()
    lines.insert(1, "Car 0.00 0 -1.57 1 2 3 4 1.5 1.6")
    label.write_text("\n".join(lines) + "\n")
    with pytest.raises(LiteDataError, match=r"000049\.txt:2: malformed label line: 10 fields"):
        KittiLite(root, "val", ("Car", "Pedestrian"))
    label.write_text("Car 0.00 0 -1.57 1 2 3 4 1.5 1.6 x 1 2 3 -1.57\n")
    with pytest.raises(LiteDataError, match=r"000049\.txt:1: malformed label line: non-numeric"):
        KittiLite(root, "val", ("Car", "Pedestrian"))


# ---- the staged chain -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """float -> calibration -> qat through the real CLIs, then both exports (about a minute on 2 cores)."""
    out = tmp_path_factory.mktemp("lidar3d_chain")
    train = TOOLS / "train.py"
    _run(train, "--config", CONFIG, "--stage", "float", f"--iters={FLOAT_ITERS}", "--batch_size=4",
         f"--save_dir={out / 'float'}")
    _run(train, "--config", CONFIG, "--stage", "calibration", "--quant_config", QUANT, "--iters=8",
         f"--save_dir={out / 'calibration'}", f"--model={out / 'float/model.pdparams'}")
    _run(train, "--config", CONFIG, "--stage", "qat", "--quant_config", QUANT, f"--iters={QAT_ITERS}",
         f"--save_dir={out / 'qat'}", f"--model={out / 'calibration/model.pdparams'}")
    for stage in ("float", "qat"):
        _run(TOOLS / "export.py", "--config", CONFIG, "--model", out / stage / "model.pdparams",
             "--save_dir", out / f"{stage}_infer")
    return {"root": out}


def _eval_line(weights: Path) -> dict[str, float]:
    proc = _run(TOOLS / "evaluate.py", "--config", CONFIG, f"--model={weights}")
    match = re.search(r"^eval: bev_ap=([\d.]+) ap3d=([\d.]+)", proc.stdout, re.M)
    assert match, proc.stdout
    return {"bev": float(match.group(1)), "3d": float(match.group(2))}


def test_training_beats_untrained(chain: dict[str, Path]) -> None:
    mods = _paddle_modules()
    engine = mods["engine"]
    settings = engine.Settings.from_config(mods["load"](CONFIG))
    import paddle

    paddle.seed(0)
    model = settings.build()
    model.eval()
    untrained = engine.evaluate(model, settings).bev_ap
    trained = _eval_line(chain["root"] / "float/model.pdparams")
    assert trained["bev"] >= 0.3, trained
    assert trained["bev"] >= untrained + 0.25, (trained, untrained)
    assert trained["3d"] > 0.2, trained


def test_quantized_stages_keep_accuracy(chain: dict[str, Path]) -> None:
    float_ap = _eval_line(chain["root"] / "float/model.pdparams")["bev"]
    calibrated = _eval_line(chain["root"] / "calibration/model.pdparams")["bev"]
    qat = _eval_line(chain["root"] / "qat/model.pdparams")["bev"]
    assert calibrated >= float_ap - 0.15, (float_ap, calibrated)
    assert qat >= float_ap - 0.1, (float_ap, qat)
    meta = json.loads((chain["root"] / "calibration/model.json").read_text())
    assert meta["stage"] == "calibration" and len(meta["scales"]) == 8


def test_qat_refuses_uncalibrated_weights(chain: dict[str, Path], tmp_path: Path) -> None:
    proc = _run(TOOLS / "train.py", "--config", CONFIG, "--stage=qat", f"--quant_config={QUANT}", "--iters=1",
                f"--save_dir={tmp_path}", f"--model={chain['root'] / 'float/model.pdparams'}", check=False)
    assert proc.returncode == 2
    assert "run --stage calibration first" in proc.stderr and "Traceback" not in proc.stderr


def test_int8_engine_matches_qat(chain: dict[str, Path]) -> None:
    """Integer inference against the QAT model in dygraph, on every val frame: the same boxes within tolerance."""
    mods = _paddle_modules()
    engine = mods["engine"]
    settings = engine.Settings.from_config(mods["load"](CONFIG))
    from models.lidar3d.pillars import decode, pillarize

    model = engine.load_for_inference(settings, chain["root"] / "qat/model.pdparams", None)
    frames = settings.dataset("val_dataset").frames
    pillars = np.stack([pillarize(f.points, settings.grid) for f in frames])
    qat_heads = engine.predict_heads(model, pillars)
    int8 = mods["Int8Engine"](chain["root"] / "qat_infer/int8_model.npz")
    int_heads = int8.run(pillars)
    assert int8.int_ops > 10_000_000
    nonempty = 0
    for q_head, i_head in zip(qat_heads, int_heads, strict=True):
        q_boxes = decode(q_head, settings.grid, score_threshold=0.3, max_objects=20)
        i_boxes = decode(i_head, settings.grid, score_threshold=0.3, max_objects=20)
        assert [c for c, _, _ in q_boxes] == [c for c, _, _ in i_boxes]
        for (_, qs, qb), (_, is_, ib) in zip(q_boxes, i_boxes, strict=True):
            assert abs(qs - is_) <= 0.02
            assert np.max(np.abs(qb - ib)) <= 0.05
        nonempty += bool(q_boxes)
    assert nonempty >= len(frames) // 2  # the comparison is about real detections, not empty frames
    # And the deploy script's own check against Paddle Inference on the exported QAT graph.
    proc = _run(DEPLOY / "predict.py", "--stage", "int_infer", "--model_dir", chain["root"] / "qat_infer",
                "--compare", "True")
    assert "within_tolerance=True" in proc.stdout
    assert len(re.findall(r"^result: frame=\d+ ", proc.stdout, re.M)) == 4


@pytest.mark.parametrize("stage", ["float", "qat"])
def test_onnx_agrees_with_paddle_inference(chain: dict[str, Path], stage: str) -> None:
    pytest.importorskip("paddle2onnx")
    pytest.importorskip("onnxruntime")
    proc = _run(DEPLOY / "paddle2onnx_infer.py", "--model_dir", chain["root"] / f"{stage}_infer")
    match = re.search(r"^onnx_vs_paddle: frames=4 max_abs_head_diff=([\d.]+) .* within_tolerance=True$",
                      proc.stdout, re.M)
    assert match, proc.stdout[-1500:]
    if stage == "float":
        assert float(match.group(1)) < 1e-3  # no rounding steps in a float graph: the two runtimes agree closely


def test_infer_result_lines_parse(chain: dict[str, Path]) -> None:
    proc = _run(DEPLOY / "infer.py", "--use_gpu=False", "--use_mkldnn=False", "--cpu_threads=1", "--batch_size=2",
                "--precision=fp32", f"--model_dir={chain['root'] / 'float_infer'}", "--benchmark=True")
    lines = re.findall(r"^result: frame=(\d+) classes=\[([\d,]*)\] scores=\[([\d.,]*)\] boxes=\[([-\d.,]*)\]$",
                       proc.stdout, re.M)
    assert [name for name, *_ in lines] == ["000064", "000065", "000066", "000067"]
    for _, classes, scores, boxes in lines:
        count = len(classes.split(",")) if classes else 0
        assert len(scores.split(",")) == count if scores else count == 0
        assert (len(boxes.split(",")) if boxes else 0) == 7 * count
    assert re.search(r"^benchmark: frames=4 ", proc.stdout, re.M)
    # harness.golden reads the same lines, boxes included.
    from harness.golden import parse_results

    parsed = parse_results(proc.stdout)
    assert [r.image for r in parsed] == ["000064", "000065", "000066", "000067"]
    assert all(r.boxes is not None and all(len(b) == 7 for b in r.boxes) for r in parsed)
