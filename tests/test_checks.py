"""harness.checks: each check kind passes a healthy run and catches the defect it exists for."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import checks, golden
from harness.golden import BoxTolerance, parse_results

# A real MobileNetV3 lite train log's shape (values from a seed-1 run) and its eval line.
TRAIN_LOG = "\n".join(
    f"epoch: {e}/5 iter: {i}/15 loss: {v:.4f} lr: 0.001 ips: 40.0 samples/s"
    for (e, i), v in zip(
        [(e, i) for e in range(1, 6) for i in (5, 10, 15)],
        [2.41, 2.37, 2.35, 1.9, 1.6, 1.3, 1.0, 0.8, 0.7, 0.5, 0.45, 0.41, 0.33, 0.25, 0.11],
        strict=True,
    )
) + "\nepoch: 5/5 done: loss_avg: 0.2313\n"
EVAL_LOG = "eval: top1=0.7833 top5=0.9833 samples=60\n"


def test_learned_passes_a_run_that_learned() -> None:
    result = checks.learned(TRAIN_LOG, EVAL_LOG, metric_name="top1", floor=0.35, loss_drop=0.5)
    assert result, result.reason
    assert "top1 0.7833" in result.reason


def test_learned_reads_both_loss_formats() -> None:
    assert checks.losses("loss: 0.5 x loss=0.25 heat_loss=9 loss_avg: 7") == [0.5, 0.25]


@pytest.mark.parametrize(
    ("train", "evaluation", "reason"),
    [
        # lr 0 / frozen weights: the loss only fluctuates
        ("\n".join(f"loss: {2.30 + 0.01 * (i % 3):.4f}" for i in range(15)), EVAL_LOG, "did not learn"),
        # zeroed weights at eval: chance accuracy on 10 classes
        (TRAIN_LOG, "eval: top1=0.1000 top5=0.5000 samples=60\n", "below the floor"),
        (TRAIN_LOG, "eval: nothing\n", "no top1= value"),
        ("loss: nan\nloss: 0.1\n", EVAL_LOG, "non-finite"),
        ("no losses here\n", EVAL_LOG, "need at least 2"),
    ],
    ids=["flat-loss", "chance-metric", "no-metric", "nan-loss", "no-loss"],
)
def test_learned_catches(train: str, evaluation: str, reason: str) -> None:
    result = checks.learned(train, evaluation, metric_name="top1", floor=0.35, loss_drop=0.5)
    assert not result
    assert reason in result.reason


CLS = parse_results(
    "result: image=a.png class_ids=[5, 3, 9] scores=[0.430797, 0.208405, 0.204457]\n"
    "result: image=b.png class_ids=[1, 7, 2] scores=[0.900000, 0.050000, 0.010000]\n"
    "result: image=c.png class_ids=[0, 6, 8] scores=[0.610000, 0.200000, 0.100000]\n"
    "result: image=d.png class_ids=[4, 2, 3] scores=[0.700000, 0.100000, 0.050000]\n"
)


def test_agree_passes_identical_engines_and_fails_a_shuffled_model() -> None:
    tol = BoxTolerance(generic=0.02)
    assert checks.agree(CLS, CLS, share=1.0, atol=1e-4, box=tol)
    shuffled = parse_results(
        "result: image=a.png class_ids=[2, 3, 9] scores=[0.33, 0.21, 0.20]\n"
        "result: image=b.png class_ids=[6, 7, 2] scores=[0.41, 0.35, 0.01]\n"
        "result: image=c.png class_ids=[0, 6, 8] scores=[0.61, 0.20, 0.10]\n"
        "result: image=d.png class_ids=[9, 2, 3] scores=[0.30, 0.10, 0.05]\n"
    )
    result = checks.agree(shuffled, CLS, share=0.75, atol=0.05, box=tol)
    assert not result
    assert "1 of 4 images agree" in result.reason


def test_agree_share_allows_documented_top1_flips_only() -> None:
    flipped = parse_results(
        "result: image=a.png class_ids=[3, 5, 9] scores=[0.33, 0.30, 0.20]\n"
        "result: image=b.png class_ids=[1, 7, 2] scores=[0.90, 0.05, 0.01]\n"
        "result: image=c.png class_ids=[0, 6, 8] scores=[0.61, 0.20, 0.10]\n"
        "result: image=d.png class_ids=[4, 2, 3] scores=[0.70, 0.10, 0.05]\n"
    )
    tol = BoxTolerance(generic=0.02)
    assert checks.agree(flipped, CLS, share=0.75, atol=0.2, box=tol)  # 3 of 4
    assert not checks.agree(flipped, CLS, share=1.0, atol=0.2, box=tol)


def test_agree_fails_when_images_differ() -> None:
    result = checks.agree(CLS[:3], CLS, share=0.5, atol=1.0, box=BoxTolerance(generic=1.0))
    assert not result and "missing" in result.reason


LIDAR = "result: frame=000064 classes=[0, 1] scores=[0.7761, 0.5] boxes=[34.303,10.656,-0.892,1.748,4.716,1.485,-0.021, 20,1,-0.9,1.3,3.2,1.6,1.56]\n"


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        (LIDAR, True),
        # centre shifted by 0.3 m (a broken scale on the regression head)
        (LIDAR.replace("34.303,10.656", "34.603,10.656"), False),
        # width off by 0.9 m
        (LIDAR.replace("1.748,4.716", "1.748,5.616"), False),
        # yaw off by 0.9 rad
        (LIDAR.replace("1.485,-0.021", "1.485,0.879"), False),
        # yaw off by 2 pi is the same box
        (LIDAR.replace("1.485,-0.021", "1.485,6.262185"), True),
    ],
    ids=["same", "centre", "size", "angle", "angle-wrap"],
)
def test_int8_boxes_are_checked_per_quantity(line: str, ok: bool) -> None:
    tol = BoxTolerance(generic=1.0, centre=0.05, size=0.05, angle=0.05)
    result = checks.agree(parse_results(line), parse_results(LIDAR), share=1.0, atol=0.02, box=tol)
    assert bool(result) is ok, result.details


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_cli_expect_int8_rejects_a_float_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = "".join(r.line() + "\n" for r in CLS)
    ref = _write(tmp_path / "fp32.log", "engine: precision=fp32 requested=fp32 quant_ops=0 backend=x\n" + body)
    fake = _write(tmp_path / "int8.log", "engine: precision=fp32 requested=int8 quant_ops=0 backend=x\n" + body)
    real = _write(tmp_path / "int8ok.log", "engine: precision=int8 requested=int8 quant_ops=42 backend=x\n" + body)
    assert checks.main(["agree", "--log", str(fake), "--ref", str(ref), "--expect-int8"]) == 1
    assert "not an int8 check" in capsys.readouterr().out
    assert checks.main(["agree", "--log", str(real), "--ref", str(ref), "--expect-int8"]) == 0


def test_cli_one_line_reason_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = _write(tmp_path / "train.log", TRAIN_LOG)
    ev = _write(tmp_path / "eval.log", "eval: top1=0.1\n")
    assert checks.main(["learned", "--train-log", str(train), "--eval-log", str(ev), "--metric", "top1",
                        "--floor", "0.35"]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("check learned: FAILED: eval top1 0.1000 is below the floor 0.35")
    assert checks.main(["learned", "--train-log", str(tmp_path / "nope"), "--eval-log", str(ev), "--metric",
                        "top1", "--floor", "0.35"]) == 2


def test_golden_int8_row_from_the_float_program_is_not_an_int8_check(tmp_path: Path) -> None:
    body = "".join(r.line() + "\n" for r in CLS)
    gold = _write(tmp_path / "pretrained_int8.txt", body)
    fake = _write(tmp_path / "int8.log", "engine: precision=fp32 requested=int8 quant_ops=0 backend=x\n" + body)
    real = _write(tmp_path / "int8ok.log", "engine: precision=int8 requested=int8 quant_ops=9 backend=x\n" + body)
    assert golden.main(["--log", str(fake), "--golden", str(gold), "--precision", "int8"]) == 1
    assert golden.main(["--log", str(real), "--golden", str(gold), "--precision", "int8"]) == 0
    assert golden.main(["--log", str(fake), "--golden", str(gold), "--precision", "fp32"]) == 0
