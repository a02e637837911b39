"""benchmark_train: the params section, the rows it plans, the log numbers and the baseline gate."""

from __future__ import annotations

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


def test_a_config_without_the_section_is_one_line_error() -> None:
    text = CONFIG.read_text(encoding="utf-8").split("===========================train_benchmark_params")[0]
    with pytest.raises(ConfigError, match="no '===train_benchmark_params===' section"):
        read_params(parse_config_text("c.txt", text))
    bad = text + "===========================train_benchmark_params==========================\nbatch_size:8|x\nfp_items:fp32\nepoch:1\n"
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
    baseline = load_baseline(CONFIG.parent.parent.parent / "results" / "mobilenet_v3_small" / "benchmark_train_cpu.json")
    assert set(baseline) == {"mobilenet_v3_small_bs8_fp32_DP_CPU", "mobilenet_v3_small_bs16_fp32_DP_CPU"}
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"not": "a list"}), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_baseline(bad)
