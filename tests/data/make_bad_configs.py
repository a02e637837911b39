"""Regenerate tests/data/bad/: each file breaks one rule; EXPECTED.tsv says on which line and with what words."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
TUTORIAL = (HERE / "good" / "tutorial_ok.txt").read_text().splitlines()
FULL = (HERE / "good" / "full_ok.txt").read_text().splitlines()


def with_line(lines: list[str], number: int, text: str) -> list[str]:
    out = list(lines)
    out[number - 1] = text
    return out


def without_line(lines: list[str], number: int) -> list[str]:
    return lines[: number - 1] + lines[number:]


def inserted(lines: list[str], number: int, text: str) -> list[str]:
    return lines[: number - 1] + [text] + lines[number - 1 :]


# name -> (content, expected line, words the message must contain)
CASES: dict[str, tuple[str | bytes, int, str]] = {
    "empty.txt": ("", 1, "empty config"),
    "only_blank_lines.txt": ("\n\n   \n", 1, "empty config"),
    "binary.txt": (b"===train_params===\nmodel_name:x\x00\x01\x02\n", 2, "binary"),
    "latin1.txt": ("\n".join(with_line(TUTORIAL, 2, "model_name:caf\xe9")).encode("latin-1"), 2, "UTF-8"),
    "no_train_header.txt": ("\n".join(with_line(TUTORIAL, 1, "model_name:toy")), 1, "train_params"),
    "tutorial_missing_line.txt": ("\n".join(without_line(TUTORIAL, 7)), 15, "eval_params"),
    "full_missing_line.txt": ("\n".join(without_line(FULL, 9)), 11, "train_model_name"),
    "eval_header_typo.txt": ("\n".join(with_line(TUTORIAL, 16, "===========eval_param===========")), 32, "eval_params"),
    "model_name_typo.txt": ("\n".join(with_line(TUTORIAL, 2, "model_nme:toy")), 2, "model_name"),
    "model_name_empty.txt": ("\n".join(with_line(TUTORIAL, 2, "model_name:")), 2, "needs a value"),
    "python_empty.txt": ("\n".join(with_line(TUTORIAL, 3, "python:")), 3, "needs a value"),
    "gpu_list_empty.txt": ("\n".join(with_line(TUTORIAL, 4, "gpu_list:")), 4, "needs a value"),
    "gpu_list_garbage.txt": ("\n".join(with_line(TUTORIAL, 4, "gpu_list:-1|zero")), 4, "gpu_list entry"),
    "gpu_list_no_colon.txt": ("\n".join(with_line(TUTORIAL, 4, "gpu_list -1|0")), 4, "gpu_list"),
    "trainer_key_typo.txt": ("\n".join(with_line(TUTORIAL, 13, "trainr:norm_train")), 13, "trainer"),
    "trainer_list_empty.txt": ("\n".join(with_line(TUTORIAL, 13, "trainer:")), 13, "needs a value"),
    "mode_typo_epochs.txt": (
        "\n".join(with_line(TUTORIAL, 6, "--epochs:lite_train_lite_infr=2|whole_train_whole_infer=90")),
        6,
        "unknown mode",
    ),
    "mode_typo_batch.txt": (
        "\n".join(with_line(TUTORIAL, 8, "--batch-size:lite_train_lite_infer=4|whole_train_whol_infer=9")),
        8,
        "unknown mode",
    ),
    "use_gpu_fasle.txt": ("\n".join(with_line(TUTORIAL, 28, "--use-gpu:True|Fasle")), 28, "not True or False"),
    "use_gpu_TRUE.txt": ("\n".join(with_line(TUTORIAL, 28, "--use-gpu:TRUE|False")), 28, "not True or False"),
    "mkldnn_ture.txt": ("\n".join(with_line(FULL, 42, "--use-mkldnn:Ture|False")), 42, "not True or False"),
    "tensorrt_flase.txt": ("\n".join(with_line(FULL, 45, "--use-tensorrt:Flase")), 45, "not True or False"),
    "unbalanced_quote_train.txt": (
        "\n".join(with_line(TUTORIAL, 14, 'norm_train:tools/train.py --name "abc')),
        14,
        "cannot split",
    ),
    "unbalanced_quote_eval.txt": (
        "\n".join(with_line(TUTORIAL, 17, "eval:tools/train.py --test-only --tag 'x")),
        17,
        "cannot split",
    ),
    "tutorial_truncated.txt": ("\n".join(TUTORIAL[:20]), 20, "needs"),
    "full_truncated.txt": ("\n".join(FULL[:40]), 40, "reads 50"),
    "full_shifted_inference.txt": ("\n".join(inserted(FULL, 29, "--extra:1")), 30, "norm_export"),
    "extra_line_after_header.txt": ("\n".join(inserted(TUTORIAL, 2, "owner:me")), 17, "eval_params"),
    "norm_export_replaced.txt": ("\n".join(with_line(TUTORIAL, 22, "export:tools/export_model.py")), 22, "norm_export"),
    "infer_model_key_wrong.txt": ("\n".join(with_line(FULL, 37, "inference_model:null")), 37, "infer_model"),
    "unknown_flavor.txt": ("\n".join([*FULL[:-1], "flavor:pytorch"]), 53, "unknown flavor"),
    "flavor_layout_mismatch.txt": ("\n".join([*FULL[:-1], "flavor:tutorial"]), 53, "layout"),
    "stage_params_without_stages.txt": (
        "\n".join([*with_line(FULL, 15, "trainer:staged_train"), "===stage_params===", "float:tools/train.py"]),
        55,
        "stages",
    ),
    "stage_undefined.txt": (
        "\n".join([*with_line(FULL, 15, "trainer:staged_train"), "===stage_params===", "stages:float|qat",
                   "float:tools/train.py"]),
        55,
        "'qat'",
    ),
    "control_character.txt": ("\n".join(with_line(TUTORIAL, 9, "--pretrained:\x07null")), 9, "control character"),
    "inference_key_typo.txt": ("\n".join(with_line(TUTORIAL, 27, "infer:deploy/infer.py")), 27, "inference"),
    # Quote errors in a value the planner glues into a `key=value` fragment are still reported at their line.
    "unbalanced_quote_pretrained.txt": ("\n".join(with_line(TUTORIAL, 9, '--pretrained:"null')), 9, "cannot split"),
    # Line numbers are physical lines: only \n ends a line; other line breaks are control characters of their line.
    "vertical_tab.txt": ("\n".join(with_line(TUTORIAL, 9, "--pretrained:null\vx")), 9, "control character U+000B"),
    "form_feed.txt": ("\n".join(with_line(TUTORIAL, 11, "--data-path:./lite\fdata")), 11, "U+000C"),
    "lone_cr.txt": ("\n".join(with_line(TUTORIAL, 9, "--pretrained:null\rx")), 9, "U+000D"),
    "next_line_c1.txt": ("\n".join(with_line(TUTORIAL, 9, "--pretrained:null\x85x")), 9, "U+0085"),
    "line_separator.txt": ("\n".join(with_line(TUTORIAL, 9, "--pretrained:null\u2028x")), 9, "U+2028"),
    "paragraph_separator.txt": ("\n".join(with_line(TUTORIAL, 9, "--pretrained:null\u2029x")), 9, "U+2029"),
    "file_separator.txt": ("\n".join(with_line(TUTORIAL, 9, "--pretrained:null\x1cx")), 9, "U+001C"),
    "record_separator.txt": ("\n".join(with_line(TUTORIAL, 9, "--pretrained:null\x1ex")), 9, "U+001E"),
    # A separator early in the file must not shift the line of a later error (line 29 stays line 29).
    "crlf_then_error.txt": ("\r\n".join(with_line(TUTORIAL, 29, "--batch-size:1|two")), 29, "whole number"),
    # Containment: values that end up in file names must not lead them out of test_tipc/output/<model>/<mode>.
    "model_name_dotdot.txt": ("\n".join(with_line(TUTORIAL, 2, "model_name:..")), 2, "plain name"),
    "model_name_slash.txt": ("\n".join(with_line(TUTORIAL, 2, "model_name:../../victim")), 2, "plain name"),
    "model_name_absolute.txt": ("\n".join(with_line(TUTORIAL, 2, "model_name:/tmp/victim")), 2, "plain name"),
    "model_name_too_long.txt": ("\n".join(with_line(TUTORIAL, 2, "model_name:" + "m" * 300)), 2, "longer than 255"),
    "trainer_escapes.txt": (
        "\n".join(with_line(TUTORIAL, 13, "trainer:norm_train|../../../../../victim")),
        13,
        "outside the output folder",
    ),
    "trainer_too_long.txt": ("\n".join(with_line(TUTORIAL, 13, "trainer:" + "t" * 250)), 13, "longer than 255"),
    "precision_escapes.txt": (
        "\n".join(with_line(FULL, 46, "--precision:fp32|x/../../../../../../victim")),
        46,
        "outside the output folder",
    ),
    "infer_batch_escapes.txt": ("\n".join(with_line(TUTORIAL, 29, "--batch-size:1/../../../../x")), 29, "whole number"),
    # Values the scripts use as numbers.
    "train_batch_word.txt": (
        "\n".join(with_line(TUTORIAL, 8, "--batch-size:lite_train_lite_infer=two|whole_train_whole_infer=128")),
        8,
        "training batch size for lite_train_lite_infer",
    ),
    "epochs_word.txt": (
        "\n".join(with_line(TUTORIAL, 6, "--epochs:lite_train_lite_infer=2|whole_train_whole_infer=ninety")),
        6,
        "epoch count for whole_train_whole_infer",
    ),
    "infer_batch_pipe_word.txt": ("\n".join(with_line(TUTORIAL, 29, "--batch-size:1|two")), 29, "inference batch"),
    "infer_batch_zero.txt": ("\n".join(with_line(FULL, 44, "--batch-size:0")), 44, ">= 1"),
    "threads_word.txt": ("\n".join(with_line(FULL, 43, "--cpu-threads:1|six")), 43, "CPU thread count"),
    "gpu_id_word.txt": ("\n".join(with_line(FULL, 4, "gpu_list:-1|0,one")), 4, "gpu_list entry '0,one'"),
}


def main() -> None:
    out = HERE / "bad"
    out.mkdir(exist_ok=True)
    rows = []
    for name, (content, line, words) in sorted(CASES.items()):
        data = content if isinstance(content, bytes) else (content + "\n" if content else "").encode()
        (out / name).write_bytes(data)
        rows.append(f"{name}\t{line}\t{words}")
    (out / "EXPECTED.tsv").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
