"""harness.reference_text: the reference scripts' status-line text, spacing and redirection included."""

from __future__ import annotations

from harness.reference_text import bash_join, reference_text
from harness.steps import StepKind

OUT = "test_tipc/output/m/lite_train_lite_infer"


def test_bash_join_keeps_the_single_space_of_an_empty_parameter() -> None:
    assert bash_join(["train.py", "--output-dir=x", "--epochs=5", "", "--batch-size=4"]) == (
        "train.py --output-dir=x --epochs=5   --batch-size=4"
    )


def test_step6_train_and_eval_text() -> None:
    texts = {("train.py", "--epochs=5", "--batch-size=4"): "train.py --epochs=5   --batch-size=4"}
    argv = ("python3.7", "train.py", "--epochs=5", "--batch-size=4")
    train = reference_text(argv, texts, kind=StepKind.TRAIN, log=f"{OUT}/n_train.log", log_dir=(OUT, f"./{OUT}"),
                           model_name="m", flavor="tutorial")
    assert train == "m - python3.7 train.py --epochs=5   --batch-size=4!  "
    evaluate = reference_text(argv, texts, kind=StepKind.EVAL, log=f"{OUT}/n_eval.log", log_dir=(OUT, f"./{OUT}"),
                              model_name="m", flavor="tutorial")
    assert evaluate == f"m - python3.7 train.py --epochs=5   --batch-size=4 > ./{OUT}/n_eval.log 2>&1 !  "


def test_launcher_words_and_paddleclas_log_suffix() -> None:
    texts = {("tools/train.py", "-o", "a=1"): "tools/train.py -o a=1"}
    argv = ("python3", "-m", "paddle.distributed.launch", "--gpus=0,1", "tools/train.py", "-o", "a=1")
    text = reference_text(argv, texts, kind=StepKind.TRAIN, log=f"{OUT}/n.log", log_dir=(OUT, f"/r/{OUT}"),
                          model_name="M", flavor="paddleclas")
    assert text == f"M - python3 -m paddle.distributed.launch --gpus=0,1 tools/train.py -o a=1 - /r/{OUT}/n.log  "


def test_paddle3d_prints_no_model_name() -> None:
    text = reference_text(("python", "x.py"), {}, kind=StepKind.INFER, log=f"{OUT}/i.log", log_dir=(OUT, OUT),
                          model_name="m", flavor="paddle3d")
    assert text == f"python x.py > {OUT}/i.log 2>&1 !  "
