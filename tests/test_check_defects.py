"""Each portable check catches a real defect in a real model and passes the healthy one (shipped checkpoints).

Nothing here trains: the tests start from the committed lite checkpoints (models/pretrained.json), so they are
cheap and identical on every CPU. The defects are the ones these checks exist for: zeroed weights (nothing was
learned), shuffled weights (the exported model is not the checkpoint), a wrong preprocessing layout, broken
int8 scales, and an "int8" row that the float program produced.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import checks, golden

REPO = Path(__file__).resolve().parents[1]
MANIFEST = json.loads((REPO / "models" / "pretrained.json").read_text())
MNV3 = REPO / "models" / "mobilenet_v3"
MNV3_CKPT = MNV3 / "pretrained" / "mobilenet_v3_small_lite.pdparams"
LIDAR_CKPT = REPO / "models" / "lidar3d" / "pretrained" / "pointpillars_lite.pdparams"
LIDAR_CFG = "models/lidar3d/configs/pointpillars_lite.yml"
LIDAR_QUANT = "models/lidar3d/configs/quant/pointpillars_lite_int8.yml"
DET_CKPT = REPO / "models" / "detection" / "pretrained" / "picodet_lite.pdparams"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("paddle") is None, reason="paddle is not importable")


def _run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, *(str(a) for a in args)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"{args[0]} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _agree(log: str, ref: str, *, share: float = 1.0, atol: float = 1e-4, **box: float) -> checks.CheckResult:
    tol = golden.BoxTolerance(generic=box.get("generic", 0.02), centre=box.get("centre"), size=box.get("size"),
                              angle=box.get("angle"))
    return checks.agree(golden.parse_results(log), golden.parse_results(ref), share=share, atol=atol, box=tol)


def test_shipped_checkpoints_match_their_recorded_sha256() -> None:
    for name, entry in MANIFEST.items():
        for path, digest in entry["files"].items():
            assert hashlib.sha256((REPO / path).read_bytes()).hexdigest() == digest, (name, path)
            assert (REPO / path).stat().st_size < 4 * 1024 * 1024, path


# ---- MobileNetV3: golden, framework vs inference, learned -------------------------------------------------------


@pytest.fixture(scope="module")
def cls_data() -> Path:
    _run(REPO / "lite_data" / "make_cls_lite.py")
    return REPO / "lite_data" / "cls_digits"


@pytest.fixture(scope="module")
def mnv3_infer(tmp_path_factory: pytest.TempPathFactory, cls_data: Path) -> str:
    """Paddle Inference output of the exported shipped checkpoint (what whole_infer compares with its golden)."""
    out = tmp_path_factory.mktemp("mnv3_export")
    _run(MNV3 / "tools" / "export_model.py", "--model=mobilenet_v3_small", f"--pretrained={MNV3_CKPT}",
         f"--save-inference-dir={out}")
    return _run(MNV3 / "deploy" / "inference_python" / "infer.py", f"--model-dir={out}",
                f"--img-path={cls_data / 'demo'}", "--use-gpu=False").stdout


def _forward(weights: Path, images: Path) -> str:
    return _run(MNV3 / "tools" / "forward.py", "--model=mobilenet_v3_small", f"--pretrained={weights}",
                "--save-inference-dir=unused", f"--img-path={images}").stdout


def _mutated_checkpoint(tmp: Path, how: str) -> Path:
    """A copy of the shipped checkpoint (and its sidecar) with every tensor zeroed or its values shuffled."""
    script = (
        "import sys, numpy as np, paddle\n"
        "state = paddle.load(sys.argv[1]); rng = np.random.RandomState(0)\n"
        "for k, v in state.items():\n"
        "    a = np.asarray(v.numpy() if hasattr(v, 'numpy') else v)\n"
        "    a = np.zeros_like(a) if sys.argv[3] == 'zero' else rng.permutation(a.reshape(-1)).reshape(a.shape)\n"
        "    state[k] = paddle.to_tensor(a)\n"
        "paddle.save(state, sys.argv[2])\n"
    )
    out = tmp / f"{how}.pdparams"
    _run("-c", script, MNV3_CKPT, out, how)
    shutil.copyfile(MNV3_CKPT.with_suffix(".json"), out.with_suffix(".json"))
    return out


def test_whole_infer_of_the_shipped_checkpoint_matches_its_golden(mnv3_infer: str, tmp_path: Path) -> None:
    log = tmp_path / "infer.log"
    log.write_text(mnv3_infer)
    gold = REPO / "test_tipc" / "results" / "mobilenet_v3_small" / "pretrained_fp32.txt"
    assert golden.main(["--log", str(log), "--golden", str(gold), "--precision", "fp32"]) == 0


def test_forward_check_passes_the_healthy_export_and_catches_shuffled_weights(
    mnv3_infer: str, cls_data: Path, tmp_path: Path
) -> None:
    healthy = _agree(mnv3_infer, _forward(MNV3_CKPT, cls_data / "demo"))
    assert healthy, healthy.reason
    shuffled = _agree(mnv3_infer, _forward(_mutated_checkpoint(tmp_path, "shuffle"), cls_data / "demo"))
    assert not shuffled, shuffled.details


def test_forward_check_catches_a_wrong_preprocessing_layout(mnv3_infer: str, cls_data: Path) -> None:
    """The framework side fed H and W swapped (an HWC/CHW mix-up) no longer agrees with Paddle Inference."""
    wrapper = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/tools']\n"
        "import presets\n"
        "good = presets.preprocess\n"
        "presets.preprocess = lambda rgb, size: good(rgb, size).transpose(0, 2, 1).copy()\n"
        "import forward\n"
        "raise SystemExit(forward.main(sys.argv[2:]))\n"
    )
    wrong = _run("-c", wrapper, MNV3, "--model=mobilenet_v3_small", f"--pretrained={MNV3_CKPT}",
                 f"--img-path={cls_data / 'demo'}").stdout
    result = _agree(mnv3_infer, wrong)
    assert not result, result.reason


def test_learned_floor_passes_the_shipped_model_and_catches_zeroed_weights(cls_data: Path, tmp_path: Path) -> None:
    def top1(weights: Path) -> str:
        return _run(MNV3 / "train.py", "--test-only", f"--data-path={cls_data}", f"--pretrained={weights}").stdout

    train_log = "loss: 2.4\nloss: 2.3\nloss: 0.4\nloss: 0.3\n"  # the loss part is covered in tests/test_checks.py
    healthy = checks.learned(train_log, top1(MNV3_CKPT), metric_name="top1", floor=0.35, loss_drop=0.5)
    assert healthy, healthy.reason
    zeroed = checks.learned(train_log, top1(_mutated_checkpoint(tmp_path, "zero")), metric_name="top1", floor=0.35,
                            loss_drop=0.5)
    assert not zeroed and "below the floor" in zeroed.reason


# ---- lidar int8: the integer engine vs the fp32 program of the same quantized weights ---------------------------


@pytest.fixture(scope="module")
def lidar_int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Calibrate the shipped float checkpoint (no training) and export it with its int8_model.npz."""
    _run(REPO / "lite_data" / "make_kitti_lite.py")
    tmp = tmp_path_factory.mktemp("lidar")
    _run("models/lidar3d/tools/train.py", "--config", LIDAR_CFG, "--stage", "calibration", "--quant_config",
         LIDAR_QUANT, f"--model={LIDAR_CKPT}", f"--save_dir={tmp / 'calib'}", "--iters=20", "--batch_size=4")
    _run("models/lidar3d/tools/export.py", "--config", LIDAR_CFG, f"--model={tmp / 'calib' / 'model.pdparams'}",
         f"--save_dir={tmp / 'export'}")
    return tmp / "export"


def _lidar_infer(model_dir: Path, precision: str) -> str:
    return _run("models/lidar3d/deploy/infer.py", f"--model_dir={model_dir}", "--use_gpu=False",
                "--use_mkldnn=True", f"--precision={precision}", "--data_dir=lite_data/kitti_lite/demo").stdout


# Measured spread between the int8 engine and the fp32 program (test_tipc/docs/golden_results.md).
LIDAR_INT8 = {"share": 1.0, "atol": 1e-4, "centre": 0.002, "size": 0.002, "angle": 0.002}


def test_int8_check_passes_the_calibrated_model_and_catches_broken_scales(lidar_int8: Path, tmp_path: Path) -> None:
    fp32 = _lidar_infer(lidar_int8, "fp32")
    int8 = _lidar_infer(lidar_int8, "int8")
    assert golden.engine_precision(int8) == "int8"
    healthy = _agree(int8, fp32, **LIDAR_INT8)
    assert healthy, healthy.details
    broken = tmp_path / "broken"
    shutil.copytree(lidar_int8, broken)
    with np.load(lidar_int8 / "int8_model.npz") as arrays:
        data = {k: (v * np.float32(1.5) if k.endswith("act_scale") else v) for k, v in arrays.items()}
    np.savez(broken / "int8_model.npz", **data)  # type: ignore[arg-type]
    result = _agree(_lidar_infer(broken, "int8"), fp32, **LIDAR_INT8)
    assert not result, result.reason


def test_an_int8_row_of_the_float_program_is_not_an_int8_check(tmp_path: Path) -> None:
    _run(REPO / "lite_data" / "make_kitti_lite.py")
    _run("models/lidar3d/tools/export.py", "--config", LIDAR_CFG, f"--model={LIDAR_CKPT}", f"--save_dir={tmp_path}")
    log = tmp_path / "int8.log"
    log.write_text(_lidar_infer(tmp_path, "int8"))
    assert golden.engine_precision(log.read_text()) == "fp32"
    gold = REPO / "test_tipc" / "results" / "pointpillars_lite" / "pretrained_fp32.txt"
    assert golden.main(["--log", str(log), "--golden", str(gold), "--precision", "fp32"]) == 0
    assert golden.main(["--log", str(log), "--golden", str(gold), "--precision", "int8"]) == 1


# ---- detector PACT export: quant ops at op level ----------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")  # importing paddle warns about ccache
def test_detector_pact_export_holds_quant_ops_and_the_float_export_none(tmp_path: Path) -> None:
    """The op-level check: a PACT export's program holds quantize/dequantize ops, a float export none."""
    from models.common.inference import quant_op_count

    _run(REPO / "lite_data" / "make_det_lite.py")
    # One PACT epoch from the shipped float weights (fine-tuning), enough to get a PACT checkpoint.
    _run("models/detection/tools/train.py", "-c", "models/detection/configs/picodet_lite_pact.yml",
         "-o", "Global.epochs=1", "-o", f"Global.pretrained_model={DET_CKPT}", "-o",
         f"Global.output_dir={tmp_path / 'pact_train'}", "-o", "Global.device=cpu")
    weights = {"float": DET_CKPT, "pact": tmp_path / "pact_train" / "latest.pdparams"}
    for name, config in (("float", "picodet_lite.yml"), ("pact", "picodet_lite_pact.yml")):
        out = _run("models/detection/tools/export_model.py", "-c", f"models/detection/configs/{config}",
                   "-o", f"Global.pretrained_model={weights[name]}", "-o",
                   f"Global.save_inference_dir={tmp_path / name}").stdout
        if name == "pact":
            assert "quantize/dequantize ops" in out
    # The float export of the shipped checkpoint is what whole_infer compares with its golden.
    log = tmp_path / "infer.log"
    log.write_text(_run("models/detection/deploy/infer.py", f"--model_dir={tmp_path / 'float'}",
                        "--image_dir=lite_data/det_shapes/demo", "--use_gpu=False", "--use_mkldnn=True").stdout)
    gold = REPO / "test_tipc" / "results" / "picodet_lite" / "pretrained_fp32.txt"
    assert golden.main(["--log", str(log), "--golden", str(gold), "--precision", "fp32"]) == 0
    float_ops = quant_op_count(next((tmp_path / "float").glob("inference.pdmodel")))
    pact_ops = quant_op_count(next((tmp_path / "pact").glob("inference.pdmodel")))
    assert float_ops == 0
    assert pact_ops >= 10, pact_ops  # a quantize + dequantize pair per conv input at least
