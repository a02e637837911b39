"""Tests for harness.golden: result-line parsing, the tolerance rules, the report and the CLI exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import golden
from harness.golden import ImageResult, compare, format_golden, golden_atol, main, parse_results

LOG = """\
W1122 02:46:27 some paddle noise
infer: model=out/inference.json device=cpu use_mkldnn=False cpu_threads=1 batch_size=1 precision=fp32
result: image=demo/a.png class_ids=[3, 8, 1] scores=[0.912340, 0.050000, 0.010000]
result: image=demo/b c.png class_ids=[0, 9, 8] scores=[0.500000, 0.499950, 0.000010]
----------------------- Perf info -----------------------
"""


def _result(image: str, ids: tuple[int, ...], scores: tuple[float, ...]) -> ImageResult:
    return ImageResult(image=image, class_ids=ids, scores=scores)


def test_parse_results_reads_every_line_and_skips_noise() -> None:
    results = parse_results(LOG)
    assert results == (
        _result("demo/a.png", (3, 8, 1), (0.91234, 0.05, 0.01)),
        _result("demo/b c.png", (0, 9, 8), (0.5, 0.49995, 0.00001)),
    )


def test_parse_results_ignores_comment_lines() -> None:
    assert parse_results("# result: image=x class_ids=[1] scores=[1.0]\n") == ()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("result: image=a class_ids=[1, 2] scores=[0.5]", "2 class ids but 1 scores"),
        ("result: image=a class_ids=[x] scores=[0.5]", "cannot read class ids"),
        ("result: image=a class_ids=[1] scores=[nan]", "non-finite score"),
        ("result: image=a class_ids=[1] scores=[0.5,,zz]", "cannot read scores"),
        ("result: image=a class_ids=[] scores=[]", "0 class ids"),
    ],
)
def test_parse_results_rejects_malformed_lines(line: str, message: str) -> None:
    with pytest.raises(golden.GoldenError, match=message) as info:
        parse_results(line + "\n", source="run.log")
    assert str(info.value).startswith("run.log:1: ")


def test_parse_results_rejects_duplicate_images() -> None:
    text = "result: image=a class_ids=[1] scores=[0.5]\nresult: image=a class_ids=[1] scores=[0.5]\n"
    with pytest.raises(golden.GoldenError, match="run.log:2: image a already reported on line 1"):
        parse_results(text, source="run.log")


GOLDEN = (
    _result("a.png", (3, 8, 1), (0.9, 0.05, 0.01)),
    _result("b.png", (0, 9, 8), (0.6, 0.3, 0.05)),
)


def test_identical_results_match() -> None:
    assert compare(GOLDEN, GOLDEN, atol=1e-4)


def test_order_of_images_does_not_matter() -> None:
    assert compare(tuple(reversed(GOLDEN)), GOLDEN, atol=1e-4)


@pytest.mark.parametrize(
    ("actual", "atol", "ok"),
    [
        # a score moved by less / more than atol
        (_result("a.png", (3, 8, 1), (0.90005, 0.05, 0.01)), 1e-4, True),
        (_result("a.png", (3, 8, 1), (0.9002, 0.05, 0.01)), 1e-4, False),
        # lower ranks swapped between classes within atol of each other: a tie, accepted
        (_result("a.png", (3, 1, 8), (0.9, 0.0101, 0.0100)), 0.05, True),
        # the top-1 class changed for real
        (_result("a.png", (8, 3, 1), (0.9, 0.05, 0.01)), 1e-4, False),
        # a class dropped out of the top-k although it was far above the cut-off
        (_result("a.png", (3, 1, 7), (0.9, 0.01, 0.009)), 1e-4, False),
        # a class dropped out at the cut-off and another came in just below: within tolerance
        (_result("a.png", (3, 8, 7), (0.9, 0.05, 0.0099)), 1e-3, True),
    ],
)
def test_compare_tolerance_rules(actual: ImageResult, atol: float, ok: bool) -> None:
    result = compare((actual, GOLDEN[1]), GOLDEN, atol=atol)
    assert bool(result) is ok


def test_top1_near_tie_is_accepted_only_within_atol() -> None:
    want = (_result("t.png", (4, 5, 6), (0.40, 0.39, 0.2)),)
    swapped = (_result("t.png", (5, 4, 6), (0.40, 0.39, 0.2)),)
    assert not compare(swapped, want, atol=1e-4)
    loose = compare(swapped, want, atol=0.02)
    assert loose, loose.mismatches


def test_missing_and_extra_images_are_mismatches() -> None:
    result = compare((GOLDEN[0], _result("z.png", (1,), (1.0,))), GOLDEN, atol=1e-4)
    problems = {m.image: m.problems for m in result.mismatches}
    assert problems == {"b.png": ("missing from the log",), "z.png": ("not in the golden file",)}


def test_render_shows_a_per_image_diff() -> None:
    actual = (_result("a.png", (8, 3, 1), (0.9, 0.05, 0.01)), GOLDEN[1])
    text = golden.render(compare(actual, GOLDEN, atol=1e-4), log="run.log", golden="g.txt")
    assert text.splitlines()[0] == "golden: MISMATCH, 1 of 2 images differ (atol 0.0001)"
    assert "- a.png: top-1 class 8 != golden 3" in text
    assert "    log:    image=a.png class_ids=[8, 3, 1] scores=[0.900000, 0.050000, 0.010000]" in text
    assert "    golden: image=a.png class_ids=[3, 8, 1] scores=[0.900000, 0.050000, 0.010000]" in text


def test_format_golden_round_trips_and_records_atol() -> None:
    text = format_golden(reversed(GOLDEN), header=("made by a test",), atol=0.005)
    assert text.startswith("# made by a test\n# atol: 0.005\nresult: image=a.png")
    assert parse_results(text) == GOLDEN
    assert golden_atol(text) == 0.005
    assert golden_atol(format_golden(GOLDEN)) is None


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_update_then_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _write(tmp_path / "infer.log", LOG)
    gold = tmp_path / "results" / "norm_train_fp32.txt"
    assert main(["--log", str(log), "--golden", str(gold), "--update"]) == 0
    assert gold.is_file()
    assert main(["--log", str(log), "--golden", str(gold)]) == 0
    assert "golden: OK, 2 images match" in capsys.readouterr().out


def test_cli_fails_with_exit_1_when_golden_is_perturbed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _write(tmp_path / "infer.log", LOG)
    gold = tmp_path / "g.txt"
    assert main(["--log", str(log), "--golden", str(gold), "--update"]) == 0
    _write(gold, gold.read_text().replace("0.912340", "0.913340"))
    capsys.readouterr()
    assert main(["--log", str(log), "--golden", str(gold), "--precision", "fp32"]) == 1
    out = capsys.readouterr().out
    assert "golden: MISMATCH, 1 of 2 images differ (atol 0.0001)" in out
    assert "- demo/a.png: class 3: score 0.912340 vs golden 0.913340" in out
    # int8's default tolerance absorbs a change of 1e-3 (for a log that says it really ran in int8)
    _write(log, "engine: precision=int8 requested=int8 quant_ops=4 backend=test\n" + LOG)
    assert main(["--log", str(log), "--golden", str(gold), "--precision", "int8"]) == 0


def test_cli_atol_precedence(tmp_path: Path) -> None:
    log = _write(tmp_path / "infer.log", LOG)
    gold = _write(tmp_path / "g.txt", "# atol: 0.01\n" + LOG.replace("0.912340", "0.915000"))
    assert main(["--log", str(log), "--golden", str(gold)]) == 0  # the file's atol beats the fp32 default
    assert main(["--log", str(log), "--golden", str(gold), "--atol", "1e-4"]) == 1  # the flag beats the file


def test_cli_update_keeps_recorded_atol(tmp_path: Path) -> None:
    log = _write(tmp_path / "infer.log", LOG)
    gold = _write(tmp_path / "g.txt", "# atol: 0.005\nresult: image=old class_ids=[1] scores=[1.0]\n")
    assert main(["--log", str(log), "--golden", str(gold), "--update"]) == 0
    text = gold.read_text()
    assert golden_atol(text) == 0.005
    assert "image=old" not in text


@pytest.mark.parametrize(
    ("log_text", "golden_text", "message"),
    [
        ("no results here\n", None, "no 'result: image=...' lines in"),
        (LOG, None, "not found; create it with --update"),
        (LOG, "# only a header\n", "no result lines in golden file"),
    ],
)
def test_cli_unusable_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], log_text: str, golden_text: str | None, message: str
) -> None:
    log = _write(tmp_path / "infer.log", log_text)
    gold = tmp_path / "g.txt"
    if golden_text is not None:
        _write(gold, golden_text)
    assert main(["--log", str(log), "--golden", str(gold)]) == 2
    assert message in capsys.readouterr().out


def test_committed_goldens_are_only_for_the_shipped_checkpoints() -> None:
    """No golden of a model trained inside a chain: each family has only pretrained_<precision> goldens."""
    root = Path(__file__).resolve().parents[1] / "test_tipc" / "results"
    files = sorted(root.glob("*/*.txt"))
    assert {f.parent.name for f in files} == {"mobilenet_v3_small", "picodet_lite", "pointpillars_lite"}
    assert all(f.name.startswith("pretrained_") for f in files), files
    for path in files:
        results = parse_results(path.read_text(), source=str(path))
        assert len(results) >= 4, path


# ---- detection results (boxes) -------------------------------------------------------------------------------

DET_GOLDEN = parse_results(
    "result: image=d.png class_ids=[1, 1, 2] scores=[0.9, 0.6, 0.1] boxes=[1,2,10,12, 20,20,30,31, 5,5,6,6]\n"
    "result: image=e.png class_ids=[] scores=[] boxes=[]\n"
)


def test_detection_lines_parse_boxes_and_allow_no_detections() -> None:
    d, e = DET_GOLDEN
    assert d.class_ids == (1, 1, 2)
    assert d.boxes == ((1.0, 2.0, 10.0, 12.0), (20.0, 20.0, 30.0, 31.0), (5.0, 5.0, 6.0, 6.0))
    assert e.boxes == () and e.class_ids == ()


def test_lidar_words_frame_and_classes_are_read() -> None:
    (result,) = parse_results("result: frame=000064 classes=[0] scores=[0.5] boxes=[1,2,3,4,5,6,0.5]\n")
    assert result.image == "000064" and result.class_ids == (0,) and result.boxes == ((1, 2, 3, 4, 5, 6, 0.5),)


def test_box_values_must_split_into_one_box_per_class() -> None:
    with pytest.raises(golden.GoldenError, match="do not split into 2 boxes"):
        parse_results("result: image=a class_ids=[1, 2] scores=[0.5, 0.4] boxes=[1,2,3]\n", source="run.log")


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        # same detections, listed in another order, values within tolerance
        ("class_ids=[1, 2, 1] scores=[0.6, 0.1, 0.90001] boxes=[20,20,30,31, 5,5,6,6, 1,2,10,12.01]", True),
        # a box moved by 3 px
        ("class_ids=[1, 1, 2] scores=[0.9, 0.6, 0.1] boxes=[4,2,10,12, 20,20,30,31, 5,5,6,6]", False),
        # the strong detection changed class
        ("class_ids=[2, 1, 2] scores=[0.9, 0.6, 0.1] boxes=[1,2,10,12, 20,20,30,31, 5,5,6,6]", False),
        # the weakest detection swapped for another one just as weak (the top-k cut-off)
        ("class_ids=[1, 1, 0] scores=[0.9, 0.6, 0.1] boxes=[1,2,10,12, 20,20,30,31, 40,40,50,50]", True),
        # a strong detection is missing
        ("class_ids=[1, 2] scores=[0.9, 0.1] boxes=[1,2,10,12, 5,5,6,6]", False),
        # only the strongest detection kept: the others are above the log's lowest score plus atol no more
        ("class_ids=[1] scores=[0.9] boxes=[1,2,10,12]", False),
        # the weakest dropped from a shorter list: not a top-k cut, so a mismatch
        ("class_ids=[1, 1] scores=[0.9, 0.6] boxes=[1,2,10,12, 20,20,30,31]", False),
    ],
    ids=["reordered", "box-moved", "class-changed", "tail-swap", "missing", "strongest-only", "dropped-weakest"],
)
def test_detection_comparison(line: str, ok: bool) -> None:
    (actual,) = parse_results(f"result: image=d.png {line}\n")
    result = compare([actual, DET_GOLDEN[1]], DET_GOLDEN, atol=1e-4, box_atol=0.05)
    assert bool(result) is ok


def test_detection_golden_round_trips_with_box_tolerance(tmp_path: Path) -> None:
    text = format_golden(DET_GOLDEN, atol=0.01, box_atol=0.5)
    assert parse_results(text) == DET_GOLDEN
    assert golden.golden_box_atol(text) == 0.5
    log = tmp_path / "infer.log"
    log.write_text("result: image=d.png class_ids=[1, 1, 2] scores=[0.9, 0.6, 0.1] boxes=[1,2,10,12.4, "
                   "20,20,30,31, 5,5,6,6]\nresult: image=e.png class_ids=[] scores=[] boxes=[]\n")
    gold = tmp_path / "golden.txt"
    gold.write_text(text)
    assert main(["--log", str(log), "--golden", str(gold)]) == 0  # 0.4 px is inside the file's box_atol
    assert main(["--log", str(log), "--golden", str(gold), "--box-atol", "0.1"]) == 1


def test_detection_missing_at_the_decoder_cutoff_is_forgiven() -> None:
    (actual,) = parse_results("result: image=d.png class_ids=[1, 1] scores=[0.9, 0.6] boxes=[1,2,10,12, 20,20,30,31]\n")
    assert not compare([actual, DET_GOLDEN[1]], DET_GOLDEN, atol=1e-4, box_atol=0.05)
    assert compare([actual, DET_GOLDEN[1]], DET_GOLDEN, atol=1e-4, box_atol=0.05, cutoff=0.1)


def test_golden_file_per_quantity_box_tolerances(tmp_path: Path) -> None:
    line = "result: frame=f class_ids=[0] scores=[0.5] boxes=[10,5,-1,1.7,4.7,1.5,0.1]\n"
    gold = tmp_path / "g.txt"
    gold.write_text("# box_atol: 1\n# centre_atol: 0.05\n# angle_atol: 0.05\n" + line)
    log = tmp_path / "infer.log"
    log.write_text(line.replace("0.1]", "0.95]"))  # yaw off by 0.85 rad: inside box_atol 1, outside angle_atol
    assert main(["--log", str(log), "--golden", str(gold)]) == 1
    log.write_text(line.replace("1.7,4.7", "1.7,5.6"))  # width off by 0.9 m: size falls back to box_atol 1
    assert main(["--log", str(log), "--golden", str(gold)]) == 0
    assert main(["--log", str(log), "--golden", str(gold), "--update"]) == 0
    assert "# angle_atol: 0.05" in gold.read_text()  # --update keeps every tolerance header
