"""benchmark_train: the params section, the rows it plans, the log numbers and the baseline gate."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.benchmark_train import gate, load_baseline, parse_train_log, plan_runs, read_params
from harness.config import load_config, parse_config_text
from harness.errors import ConfigError
from harness.plan import PlanOptions

CONFIG = Path(__file__).parent.parent / "test_tipc" / "configs" / "mobilenet_v3_small" / "train_infer_python.txt"


def test_params_and_rows_follow_tipc() -> None:
    config = load_config(CONFIG)
    params = read_params(config)
    assert params.batch_sizes == ("8", "16") and params.fp_items == ("fp32",) and params.epoch == "1"
    assert params.flags == (("FLAGS_cudnn_exhaustive_search", "1"),)
    runs = plan_runs(config, params, PlanOptions(), devices=("CPU", "N1C4"), log_dir="bench/train_log")
    assert [r.name for r in runs] == [
        "mobilenet_v3_small_bs8_fp32_DP_CPU",
        "mobilenet_v3_small_bs8_fp32_DP_N1C4",
        "mobilenet_v3_small_bs16_fp32_DP_CPU",
        "mobilenet_v3_small_bs16_fp32_DP_N1C4",
    ]
    (cpu_train,) = runs[0].chain.steps
    assert cpu_train.kind == "train" and cpu_train.needs == () and cpu_train.requires == ()
    assert "--epochs=1" in cpu_train.command.argv and "--batch-size=8" in cpu_train.command.argv
    assert ("FLAGS_cudnn_exhaustive_search", "1") in cpu_train.command.env
    assert cpu_train.command.log_path == "bench/train_log/mobilenet_v3_small_bs8_fp32_DP_CPU_log"
    (gpu_train,) = runs[3].chain.steps
    assert "--batch-size=16" in gpu_train.command.argv and "multi_gpu" in [str(r) for r in gpu_train.requires]
    assert "--gpus=0,1,2,3" in gpu_train.command.argv


def test_single_card_rows_get_a_profiling_run_first() -> None:
    config = load_config(CONFIG)
    params = dataclasses.replace(read_params(config), profile_value="batch_range=[10,20];state=GPU")
    cpu, n1c1, n1c4 = plan_runs(config, params, PlanOptions(), devices=("CPU", "N1C1", "N1C4"), log_dir="b")[:3]
    assert cpu.profiling == () and n1c4.profiling == ()
    (profiled,) = n1c1.profiling
    assert profiled.command.argv[-1] == "--profiler_options=batch_range=[10,20];state=GPU"
    assert profiled.command.argv[:-1] == n1c1.chain.steps[0].command.argv
    assert profiled.command.log_path == "b/mobilenet_v3_small_bs8_fp32_DP_N1C1_profiling"


def test_a_config_without_the_section_is_one_line_error() -> None:
    text = CONFIG.read_text(encoding="utf-8").split("===========================train_benchmark_params")[0]
    with pytest.raises(ConfigError, match="no '===train_benchmark_params===' section"):
        read_params(parse_config_text("c.txt", text))
    section = "===========================train_benchmark_params==========================\n"
    bad = text + section + "batch_size:8|x\nfp_items:fp32\nepoch:1\n"
    with pytest.raises(ConfigError) as info:
        read_params(parse_config_text("c.txt", bad))
    assert info.value.render().startswith("c.txt:") and "'x'" in info.value.render()


def test_log_numbers_skip_the_first_windows() -> None:
    log = "\n".join(
        [
            "epoch: 1/1 iter: 5/20 loss: 2.5 lr: 0.001 ips: 5.0 samples/s",
            "epoch: 1/1 iter: 10/20 loss: 2.4 lr: 0.001 ips: 7.0 samples/s",
            "epoch: 1/1 iter: 15/20 loss: 2.3 lr: 0.001 ips: 20.0 samples/s",
            "epoch: 1/1 iter: 20/20 loss: 2.1 lr: 0.001 ips: 30.0 samples/s, max_mem_reserved: 812 MB",
        ]
    )
    numbers = parse_train_log(log)
    assert numbers.ips == 25.0 and numbers.ips_samples == 2 and numbers.loss == 2.1
    assert numbers.memory == (("max_mem_reserved_mb", 812.0),)
    assert parse_train_log("no numbers here").ips is None


@pytest.mark.parametrize(
    ("ips", "ok", "says"),
    [(100.0, True, ""), (80.0, True, ""), (70.0, False, "slower: 70.00 vs baseline 100.00"), (130.0, True, "faster")],
)
def test_gate(ips: float, ok: bool, says: str) -> None:
    baseline = {"m_bs8_fp32_DP_CPU": {"ips": 100.0}}
    verdict = gate({"model_name": "m_bs8_fp32_DP", "device_num": "CPU", "ips": ips}, baseline, 0.25)
    assert verdict.ok is ok and says in verdict.message


def test_committed_baseline_loads(tmp_path: Path) -> None:
    results = CONFIG.parent.parent.parent / "results"
    baseline = load_baseline(results / "mobilenet_v3_small" / "benchmark_train_cpu.json")
    assert set(baseline) == {"mobilenet_v3_small_bs8_fp32_DP_CPU", "mobilenet_v3_small_bs16_fp32_DP_CPU"}
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"not": "a list"}), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_baseline(bad)


# --------------------------------------------------------------------------- end to end, on a tiny script

TRAIN_SCRIPT = """\
import sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
batch = int(args["--batch-size"])
for i in range(4):
    print(f"epoch: 1/1 iter: {i}/4 loss: {2.0 - i / 10} ips: {batch * 10.0 + i} samples/s")
"""

TINY = """\
===========================train_params===========================
model_name:tiny
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
norm_train:train.py
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
===========================train_benchmark_params==========================
batch_size:2|4
fp_items:fp32
epoch:1
--profiler_options:null
flags:FLAGS_tiny=1
"""


def _tiny(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(TRAIN_SCRIPT, encoding="utf-8")
    config = tmp_path / "tiny.txt"
    config.write_text(TINY, encoding="utf-8")
    return config


def test_benchmark_writes_tipc_results_and_gates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from harness.cli import main

    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    monkeypatch.delenv("BENCHMARK_LOG_DIR", raising=False)
    config = _tiny(tmp_path)
    baseline = tmp_path / "baseline.json"
    common = [str(config), "--root", str(tmp_path), "--devices", "CPU,N1C1", "--python", sys.executable]
    assert main(["benchmark", *common, "--write-baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    # ips windows 20, 21, 22, 23 for batch 2: the first two are skipped, so (22 + 23) / 2.
    assert "PASSED   tiny_bs2_fp32_DP_CPU: ips 22.5 samples/s" in out
    assert "SKIPPED  tiny_bs2_fp32_DP_N1C1: no CUDA device" in out
    index = tmp_path / "test_tipc" / "output" / "benchmark_train" / "index"
    record = json.loads((index / "tiny_bs4_fp32_DP_CPU_speed").read_text(encoding="utf-8"))
    assert {k: record[k] for k in ("model_name", "batch_size", "fp_item", "run_mode", "ips", "device_num")} == {
        "model_name": "tiny_bs4_fp32_DP",
        "batch_size": 4,
        "fp_item": "fp32",
        "run_mode": "DP",
        "ips": 42.5,
        "device_num": "CPU",
    }
    assert record["convergence_value"] == 1.7 and record["speed_unit"] == "samples/s"
    log = tmp_path / "test_tipc" / "output" / "benchmark_train" / "train_log" / "tiny_bs2_fp32_DP_CPU_log"
    assert "FLAGS_tiny=1" in log.read_text(encoding="utf-8").splitlines()[0]  # the section's flags reach the run
    assert json.loads((index / "tiny_bs4_fp32_DP_N1C1_speed").read_text(encoding="utf-8"))["status"] == "skipped"
    # The same numbers pass the gate; a baseline twice as fast fails it and says by how much.
    assert main(["benchmark", *common, "--baseline", str(baseline)]) == 0
    capsys.readouterr()
    faster = [dict(r, ips=r["ips"] * 2) for r in json.loads(baseline.read_text(encoding="utf-8"))]
    baseline.write_text(json.dumps(faster), encoding="utf-8")
    assert main(["benchmark", *common, "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "SLOWER   tiny_bs2_fp32_DP_CPU: slower: 22.50 vs baseline 45.00 samples/s (-50.0%, tolerance 25%)" in out


def test_benchmark_without_section_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    config = tmp_path / "c.txt"
    config.write_text(TINY.split("===========================train_benchmark_params")[0], encoding="utf-8")
    assert main(["benchmark", str(config)]) == 2
    expected = f"{config}:0: no '===train_benchmark_params===' section: nothing to benchmark"
    assert capsys.readouterr().err.strip() == expected


def test_tipc_params_argument_picks_one_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from harness.cli import main

    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    config = _tiny(tmp_path)
    common = [str(config), "benchmark_train"]
    where = ["--root", str(tmp_path), "--python", sys.executable]
    assert main(["benchmark", *common, "static_bs4_fp32_DP_CPU", *where]) == 0
    out = capsys.readouterr().out
    assert "1 row(s)" in out and "PASSED   tiny_bs4_fp32_DP_CPU: ips 42.5 samples/s" in out
    assert main(["benchmark", *common, "bs4_fp32"]) == 2
    assert "expected <model type>_bs<B>_" in capsys.readouterr().err


def test_a_multi_card_row_scales_epochs_as_tipc_does() -> None:
    from harness.benchmark_train import choose_row, parse_row

    params = read_params(load_config(CONFIG))
    row = parse_row("dynamic_bs16_amp_DP_N1C4")
    assert (row.batch_size, row.fp_item, row.run_mode, row.device_num) == ("16", "fp16", "DP", "N1C4")
    chosen = choose_row(params, row)
    assert (chosen.batch_sizes, chosen.fp_items, chosen.epoch) == (("16",), ("fp16",), "4")


def test_drop_in_script(tmp_path: Path) -> None:
    import subprocess

    script = Path(__file__).parent.parent / "test_tipc" / "benchmark_train.sh"
    done = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "usage: tipc benchmark" in done.stdout
