"""Planning: argv tuples, chain order, per-mode values, flavors, quirk fixes, skip rules, format extensions."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_config, parse_config_text
from harness.errors import ConfigError
from harness.plan import PlanOptions, build_plan
from harness.steps import Requirement, StepKind

DATA = Path(__file__).parent / "data"
TUTORIAL = DATA / "good" / "tutorial_ok.txt"
FULL = DATA / "good" / "full_ok.txt"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "tipc-conformance"
OUT = "test_tipc/output"


def _plan(path: Path, mode: str = "lite_train_lite_infer", **options: object):  # type: ignore[no-untyped-def]
    return build_plan(load_config(path), mode, PlanOptions(**options))  # type: ignore[arg-type]


def _edited(path: Path, tmp_path: Path, **lines: str) -> Path:
    """A copy of a config with physical lines replaced: _edited(p, tmp, l6='--epochs:...')."""
    text = path.read_text().splitlines()
    for key, value in lines.items():
        text[int(key[1:]) - 1] = value
    out = tmp_path / path.name
    out.write_text("\n".join(text) + "\n")
    return out


def test_tutorial_chains_are_gpu_list_times_trainers_in_order() -> None:
    plan = _plan(TUTORIAL)
    assert [c.id for c in plan.chains] == [
        "norm_train_gpus_-1_autocast_False_nodes_1",
        "pact_train_gpus_-1_autocast_False_nodes_1",
        "norm_train_gpus_0_autocast_False_nodes_1",
        "pact_train_gpus_0_autocast_False_nodes_1",
    ]
    assert plan.output_dir == f"{OUT}/toy_cls/lite_train_lite_infer"
    assert plan.results_log == f"{OUT}/toy_cls/lite_train_lite_infer/results_python.log"


def test_tutorial_cpu_chain_commands() -> None:
    chain = _plan(TUTORIAL).chains[0]
    save = f"{OUT}/toy_cls/lite_train_lite_infer/norm_train_gpus_-1_autocast_False_nodes_1"
    assert [s.name for s in chain.steps] == ["train", "eval", "export", "infer_gpu_bs_1", "infer_gpu_bs_2",
                                             "infer_cpu_bs_1", "infer_cpu_bs_2"]
    train, evaluate, export, *_ = chain.steps
    assert train.command.argv == ("python3", "tools/train.py", f"--output-dir={save}", "--epochs=2", "--batch-size=4")
    assert train.command.env == (("CUDA_VISIBLE_DEVICES", ""),)
    assert train.requires == ()
    assert evaluate.command.argv == ("python3", "tools/train.py", "--test-only", f"--pretrained={save}/latest.pdparams")
    assert evaluate.needs == ("train",)
    assert export.command.argv == ("python3", "tools/export_model.py", "--model=toy",
                                   f"--pretrained={save}/latest.pdparams", f"--save-inference-dir={save}")
    cpu = chain.step("infer_cpu_bs_2")
    assert cpu.command.argv == ("python3", "deploy/infer.py", "--use-gpu=False", f"--model-dir={save}",
                                "--batch-size=2", "--img-path=./lite_data/toy/demo", "--benchmark=False")
    assert cpu.needs == ("export",)
    # Beside the chain's output folder, never inside it: commands use that folder (harness/collisions.py).
    logs = f"{OUT}/toy_cls/lite_train_lite_infer/logs/norm_train_gpus_-1_autocast_False_nodes_1"
    assert cpu.command.log_path == f"{logs}/python_infer_cpu_batchsize_2.log"
    assert chain.step("infer_gpu_bs_1").requires == (Requirement.GPU,)
    assert chain.step("infer_gpu_bs_1").command.env == ()  # GPU inference of a CPU chain sees the GPUs
    assert cpu.command.env == (("CUDA_VISIBLE_DEVICES", ""),)


def test_gpu_chain_requires_a_gpu_and_sets_cuda_visible_devices() -> None:
    chain = _plan(TUTORIAL).chains[2]
    assert all(Requirement.GPU in s.requires for s in chain.steps)
    assert chain.steps[0].command.env == (("CUDA_VISIBLE_DEVICES", "0"),)
    assert "gpu" in chain.steps[0].tags


@pytest.mark.parametrize(
    ("mode", "quirks", "epochs"),
    [
        ("lite_train_lite_infer", False, "--epochs=2"),
        ("whole_train_whole_infer", False, "--epochs=90"),
        ("lite_train_whole_infer", False, "--epochs=2"),  # falls back to the lite training value
        ("lite_train_whole_infer", True, None),  # the script finds nothing and drops the flag
    ],
)
def test_per_mode_values(mode: str, quirks: bool, epochs: str | None) -> None:
    argv = _plan(TUTORIAL, mode, quirks=quirks).chains[0].steps[0].command.argv
    assert [a for a in argv if a.startswith("--epochs")] == ([epochs] if epochs else [])


def test_plain_value_applies_to_every_mode(tmp_path: Path) -> None:
    config = _edited(TUTORIAL, tmp_path, l6="--epochs:3")
    assert "--epochs=3" in _plan(config, "whole_train_whole_infer").chains[0].steps[0].command.argv
    assert "--epochs=3" not in _plan(config, quirks=True).chains[0].steps[0].command.argv


def test_tutorial_fixes_versus_quirks() -> None:
    fixed = _plan(TUTORIAL).chains[0]
    quirky = _plan(TUTORIAL, quirks=True).chains[0]
    # Q5.5: the reference names the train output folder "<stem>.log"
    assert quirky.steps[0].command.argv[2].endswith("nodes_1.log")
    assert not fixed.steps[0].command.argv[2].endswith(".log")
    # Q5.9: the reference drops the image flag after training
    assert not any(a.startswith("--img-path") for a in quirky.step("infer_cpu_bs_1").command.argv)
    assert "--img-path=./lite_data/toy/demo" in fixed.step("infer_cpu_bs_1").command.argv


def test_full_harness_flavor_autocast_device_and_launcher() -> None:
    plan = _plan(FULL)
    assert plan.flavor == "harness"
    ids = [c.id for c in plan.chains]
    assert ids[:4] == [
        "norm_train_gpus_-1_autocast_null_nodes_1",
        "pact_train_gpus_-1_autocast_null_nodes_1",
        "norm_train_gpus_-1_autocast_O1_nodes_1",
        "pact_train_gpus_-1_autocast_O1_nodes_1",
    ]
    assert len(ids) == 3 * 2 * 2
    amp_train = plan.chains[2].steps[0].command.argv
    assert "--amp_level=O1" in amp_train and "--device=cpu" in amp_train
    assert not any(a.startswith("--amp_level") for a in plan.chains[0].steps[0].command.argv)
    gpu_train = plan.chains[4].steps[0].command.argv
    assert "--device=gpu" in gpu_train
    multi = plan.chains[8].steps[0].command.argv
    assert multi[:4] == ("python3", "-m", "paddle.distributed.launch", "--devices=0,1")
    assert Requirement.MULTI_GPU in plan.chains[8].steps[0].requires
    pact = plan.chains[1].steps[0].command.argv
    assert pact[1:3] == ("tools/train.py", "--pact_quant")
    assert plan.chains[1].step("export").command.argv[1:3] == ("tools/export_model.py", "--pact_quant")


def test_full_inference_grid_and_skip_rules() -> None:
    chain = _plan(FULL).chains[0]
    infer = [s for s in chain.steps if s.kind is StepKind.INFER]
    cpu = [s for s in infer if "cpu" in s.tags]
    gpu = [s for s in infer if "gpu" in s.tags]
    # CPU: mkldnn 2 x threads 2 x batch 2 x precision 2, minus int8 without mkldnn (4)
    assert len(cpu) == 12
    assert not any("--use-mkldnn=False" in s.command.argv and "--precision=int8" in s.command.argv for s in cpu)
    # GPU: fp32 without TensorRT, fp32 and int8 with it
    assert {(s.command.argv[3], s.command.argv[4]) for s in gpu} == {
        ("--use-tensorrt=False", "--precision=fp32"),
        ("--use-tensorrt=True", "--precision=fp32"),
        ("--use-tensorrt=True", "--precision=int8"),
    }
    trt = [s for s in gpu if "--use-tensorrt=True" in s.command.argv]
    assert all(Requirement.TENSORRT in s.requires for s in trt)
    names = [s.name for s in infer]
    assert len(names) == len(set(names))
    assert "infer_cpu_mkldnn_True_threads_1_precision_fp32_bs_1" in names


WITH_WEIGHTS = ("infer_model:null\ninfer_export:null", "infer_model:./toy/model.pdparams\ninfer_export:tools/export.py")


def test_golden_dir_adds_a_compare_step_after_each_inference(tmp_path: Path) -> None:
    text = FULL.read_text().replace(*WITH_WEIGHTS) + "golden_dir:test_tipc/results/toy\n"
    config = tmp_path / "golden.txt"
    config.write_text(text)
    chain = _plan(config, "whole_infer").chains[0]
    infer = chain.step("infer_cpu_mkldnn_True_threads_1_precision_int8_bs_1")
    compare = chain.step("compare_infer_cpu_mkldnn_True_threads_1_precision_int8_bs_1")
    assert compare.kind is StepKind.COMPARE
    assert compare.needs == (infer.name,)
    assert compare.command.argv == (
        "python3", "-m", "harness.golden", "--log", infer.command.log_path,
        "--golden", "test_tipc/results/toy/pretrained_int8.txt", "--precision", "int8",
    )


def test_no_compare_steps_without_golden_dir() -> None:
    assert not any(s.kind is StepKind.COMPARE for s in _plan(FULL).steps)


def test_staged_training_chain(tmp_path: Path) -> None:
    lines = FULL.read_text().splitlines()
    lines[14] = "trainer:staged_train"
    lines += ["===stage_params===", "stages:float|calibration|qat", "float:tools/train.py --stage float",
              "calibration:tools/train.py --stage calibration", "qat:tools/train.py --stage qat"]
    config = tmp_path / "staged.txt"
    config.write_text("\n".join(lines) + "\n")
    chain = _plan(config).chains[0]
    save = f"{OUT}/toy_full/lite_train_lite_infer/staged_train_gpus_-1_autocast_null_nodes_1"
    assert [s.name for s in chain.steps[:5]] == ["train_float", "train_calibration", "train_qat", "eval", "export"]
    assert chain.step("train_calibration").needs == ("train_float",)
    calib = chain.step("train_calibration").command.argv
    assert f"--output-dir={save}/calibration" in calib
    assert f"--pretrained={save}/float/latest.pdparams" in calib
    assert f"--pretrained={save}/qat/latest.pdparams" in chain.step("eval").command.argv
    assert chain.step("export").needs == ("train_qat",)


def test_klquant_mode_quantizes_the_exported_model() -> None:
    chain = _plan(FULL, "klquant_whole_infer").chains[0]
    kl = chain.step("kl_quant")
    save = f"{OUT}/toy_full/klquant_whole_infer/norm_train_gpus_-1_autocast_null_nodes_1"
    assert kl.needs == ("export",)
    assert kl.command.argv == ("python3", "tools/quant_post_static.py", f"--model-dir={save}",
                               f"--save-inference-dir={save}/quant_post_static_model")
    infer = [s for s in chain.steps if s.kind is StepKind.INFER]
    assert infer and all(s.needs == ("kl_quant",) for s in infer)
    assert all(f"--model-dir={save}/quant_post_static_model" in s.command.argv for s in infer)


def test_values_reach_argv_literally(tmp_path: Path) -> None:
    config = _edited(TUTORIAL, tmp_path, l14="norm_train:tools/train.py --tag=$(touch x) --b=`id` ; rm -rf /")
    argv = _plan(config).chains[0].steps[0].command.argv
    assert argv[:7] == ("python3", "tools/train.py", "--tag=$(touch", "x)", "--b=`id`", ";", "rm")


def test_plan_is_deterministic_and_json_plain() -> None:
    import json

    first = _plan(FULL).to_json()
    assert first == _plan(FULL).to_json()
    step = first["chains"][0]["steps"][0]  # type: ignore[index]
    assert {"name", "kind", "argv", "cwd", "env", "log"} <= set(step)
    json.dumps(first)


def test_unknown_mode_and_flavor_are_errors() -> None:
    config = load_config(TUTORIAL)
    with pytest.raises(ConfigError, match="unknown mode"):
        build_plan(config, "lite_infer")
    with pytest.raises(ConfigError, match="unknown flavor"):
        build_plan(config, "lite_train_lite_infer", PlanOptions(flavor="tensorflow"))
    with pytest.raises(ConfigError, match="layout"):
        build_plan(config, "lite_train_lite_infer", PlanOptions(flavor="paddleclas"))


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/tipc-conformance is not beside this checkout")
class TestPaddleClasFixes:
    def config(self, family: str, name: str):  # type: ignore[no-untyped-def]
        return load_config(CORPUS / "PaddleClas" / family / name)

    def test_epochs_follow_the_mode_when_fixed(self) -> None:
        config = self.config("UniFormer", "UniFormer_small_train_infer_python.txt")
        fixed = build_plan(config, "lite_train_lite_infer", PlanOptions(repo_root="/r")).chains[0].steps[0]
        quirky = build_plan(config, "lite_train_lite_infer", PlanOptions(quirks=True, repo_root="/r")).chains[0].steps[0]
        assert "Global.epochs=5" in fixed.command.argv  # Q4.3 fixed
        assert "Global.epochs=2" in quirky.command.argv

    def test_cpu_duplicates_run_once_when_fixed(self) -> None:
        config = self.config("ResNet", "ResNet50_train_ampfp16_infer_python.txt")
        fixed = build_plan(config, "lite_train_lite_infer", PlanOptions(repo_root="/r"))
        quirky = build_plan(config, "lite_train_lite_infer", PlanOptions(quirks=True, repo_root="/r"))
        argv_fixed = [s.command.argv for s in fixed.steps]
        argv_quirky = [s.command.argv for s in quirky.steps]
        assert len(argv_quirky) > len(set(argv_quirky))  # Q6.1 duplicates
        assert len(argv_fixed) == len(set(argv_fixed))

    def test_no_amp_off_switch_when_autocast_is_null(self) -> None:
        config = self.config("PPLCNet", "PPLCNet_x1_0_train_infer_python.txt")
        fixed = build_plan(config, "lite_train_lite_infer", PlanOptions(repo_root="/r")).steps[0]
        quirky = build_plan(config, "lite_train_lite_infer", PlanOptions(quirks=True, repo_root="/r")).steps[0]
        assert "AMP.use_amp=False" in quirky.command.argv  # Q3.3
        assert "AMP.use_amp=False" not in fixed.command.argv

    def test_inference_runs_from_deploy_with_absolute_model_dir(self) -> None:
        config = self.config("PPLCNet", "PPLCNet_x1_0_train_infer_python.txt")
        plan = build_plan(config, "lite_train_lite_infer", PlanOptions(repo_root="/r"))
        infer = [s for s in plan.steps if s.kind is StepKind.INFER]
        assert infer and all(s.command.cwd == "deploy" for s in infer)
        assert all(any(a.startswith("Global.inference_model_dir=/r/test_tipc/output/") for a in s.command.argv)
                   for s in infer)

    def test_whole_infer_when_fixed_infers_from_the_configured_model(self) -> None:
        config = self.config("PPLCNet", "PPLCNet_x1_0_train_infer_python.txt")
        assert build_plan(config, "whole_infer", PlanOptions(quirks=True, repo_root="/r")).chains == ()
        plan = build_plan(config, "whole_infer", PlanOptions(repo_root="/r"))
        infer = [s for s in plan.steps if s.kind is StepKind.INFER]
        assert infer and all("Global.inference_model_dir=../../inference" in s.command.argv for s in infer)


def test_ptq_layout_plans_nothing_with_a_note() -> None:
    text = "===========ptq_params===========\nmodel_name:m\npython:python3\n"
    plan = build_plan(parse_config_text("p.txt", text), "lite_train_lite_infer")
    assert plan.chains == ()
    assert any("ptq_params" in note for note in plan.notes)


PADDLE3D = DATA / "good" / "paddle3d_like.txt"


def test_paddle3d_is_picked_for_a_full_layout_without_clas_trainer_lines() -> None:
    assert _plan(PADDLE3D).flavor == "paddle3d"


def test_paddle3d_commands_follow_its_script() -> None:
    plan = _plan(PADDLE3D, quirks=True)
    out = "test_tipc/output/toy3d/lite_train_lite_infer"
    single, single_fp16, multi, _ = plan.chains
    assert single.steps[0].command.argv == (
        "python3.7", "tools/train.py", "--config", "configs/toy3d.yml", "--save_interval", "5", "--num_workers", "2",
        f"--save_dir={out}/norm_train_gpus_0_autocast_null", "--iters=20", "--batch_size=2",
    )
    assert single_fp16.steps[0].command.argv[-2:] == ("--amp", "--amp_level=O2")
    # Q5.3: the multi-GPU command has no save dir
    assert multi.steps[0].command.argv[:5] == ("python3.7", "-m", "paddle.distributed.launch", "--gpus=0,1",
                                                "tools/train.py")
    assert not any(a.startswith("--save_dir") for a in multi.steps[0].command.argv)
    # Q5.7: positional weights, "key dir" save dir
    assert single.step("export").command.argv[-3:] == (
        f"{out}/norm_train_gpus_0_autocast_null/model.pdparams", "--save_dir", f"{out}/norm_train_gpus_0_autocast_null"
    )
    cpu = [s for s in single.steps if "cpu" in s.tags]
    assert cpu[0].command.argv == ("python3.7", "deploy/infer.py", "--use_gpu=False",
                                   f"--model_file={out}/norm_train_gpus_0_autocast_null")
    gpu = [s for s in single.steps if "gpu" in s.tags and s.kind is StepKind.INFER]
    assert gpu[0].command.argv[-2:] == ("--lidar_file=datasets/lite/velodyne/000001.bin", "--num_point_dim=4")


def test_paddle3d_whole_infer_exports_next_to_the_weights() -> None:
    steps = _plan(PADDLE3D, "whole_infer", quirks=True).steps
    # Q5.7: whole_infer uses the *value* of line 29 as the weights key; it is empty here, hence "=<path>"
    assert steps[0].command.argv == ("python3.7", "tools/export.py", "--config", "configs/toy3d.yml",
                                     "=./toy3d/model.pdparams", "--save_dir", "./toy3d")
    fixed = _plan(PADDLE3D, "whole_infer").steps
    assert fixed[0].command.argv[4] == "./toy3d/model.pdparams"
    assert all("--model_file=./toy3d" in s.command.argv for s in steps[1:])


def test_goldens_are_compared_only_for_fixed_weights(tmp_path: Path) -> None:
    """Only whole_infer exports fixed (shipped) weights; every other mode trains, so it has no compare step."""
    config = tmp_path / "golden.txt"
    config.write_text(FULL.read_text().replace(*WITH_WEIGHTS) + "golden_dir:test_tipc/results/toy\n")
    kinds = {mode: {s.kind for s in _plan(config, mode).steps} for mode in
             ("lite_train_lite_infer", "lite_train_whole_infer", "whole_train_whole_infer", "klquant_whole_infer")}
    assert all(StepKind.COMPARE not in k for k in kinds.values()), kinds
    whole = [s for s in _plan(config, "whole_infer").steps if s.kind is StepKind.COMPARE]
    assert whole and all("/pretrained_" in " ".join(s.command.argv) for s in whole)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/tipc-conformance is not beside this checkout")
def test_quirks_split_values_at_pipes_like_eval_under_ifs_pipe(tmp_path: Path) -> None:
    source = CORPUS / "PaddleClas" / "ResNet" / "ResNet50_train_infer_python.txt"
    lines = source.read_text().splitlines()
    lines[8] = "-o DataLoader.Train.sampler.batch_size:lite_train_lite_infer=4|whole_train_whole_infer=8"
    config = tmp_path / "c.txt"
    config.write_text("\n".join(lines) + "\n")
    quirky = build_plan(load_config(config), "lite_train_lite_infer", PlanOptions(quirks=True, repo_root="/r"))
    assert "DataLoader.Train.sampler.batch_size=lite_train_lite_infer=4" in quirky.steps[0].command.argv
    assert "whole_train_whole_infer=8" in quirky.steps[0].command.argv  # Q4.4 raw value, split at the pipe
    fixed = build_plan(load_config(config), "lite_train_lite_infer", PlanOptions(repo_root="/r"))
    assert "DataLoader.Train.sampler.batch_size=4" in fixed.steps[0].command.argv


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/tipc-conformance is not beside this checkout")
def test_quirks_kl_quant_inference_folder_depends_on_where_kl_quant_wrote(tmp_path: Path) -> None:
    source = CORPUS / "PaddleClas" / "PPLCNet" / "PPLCNet_x1_0_train_ptq_infer_python.txt"
    lines = source.read_text().splitlines()

    def cwd_of_inference(kl_save: str) -> str:
        lines[33] = f"kl_quant:deploy/slim/quant_post_static.py -c a.yaml -o Global.save_inference_dir={kl_save}"
        config = tmp_path / "c.txt"
        config.write_text("\n".join(lines) + "\n")
        plan = build_plan(load_config(config), "whole_infer", PlanOptions(quirks=True, repo_root="/r"))
        return {s.command.cwd for s in plan.steps if s.kind is StepKind.INFER}.pop()

    assert cwd_of_inference("./PPLCNet_x1_0_infer") == "deploy"  # the script's `cd` reaches deploy/
    assert cwd_of_inference("./elsewhere") == "."  # the folder does not exist, both `cd`s fail


# ---- the five repositories added with their script models (quirks.md section 9) --------------------------------

MORE = CORPUS / "PaddleDetection"
needs_more = pytest.mark.skipif(not MORE.is_dir(), reason="../shared/tipc-conformance (manifest-more) not beside")


@needs_more
@pytest.mark.parametrize(
    ("config", "flavor"),
    [
        ("PaddleDetection/dino/dino_r50_4scale_1x_coco_train_infer_python.txt", "paddledetection"),
        ("PaddleSeg/bisenetv2/train_infer_python.txt", "paddleseg"),
        ("PaddleVideo/PP-TSN/train_infer_python.txt", "paddlevideo"),
        ("PaddleGAN/CycleGAN/train_infer_python.txt", "paddlegan"),
        ("PaddleGAN/edvr/train_linux_gpu_normal_amp_infer_python_linux_gpu_cpu.txt", "paddlegan"),
        ("PaddleOCR/det_mv3_db_v2_0/train_infer_python.txt", "paddleocr"),
        ("PaddleOCR/PP-OCRv4_server_rec_ampO2_ultra/train_infer_python.txt", "paddleocr"),
    ],
)
def test_auto_flavor_recognises_each_repository_and_says_why(config: str, flavor: str) -> None:
    plan = _plan(CORPUS / config)
    assert plan.flavor == flavor
    assert plan.notes[0].startswith(f"flavor {flavor} (auto: ")


@needs_more
@pytest.mark.parametrize(
    "config",
    ["PaddleOCR/ch_PP-OCRv2_det/train_ptq_infer_python.txt", "PaddleOCR/en_table_structure/train_ptq_infer_python.txt",
     "PaddleSeg/deeplabv3p_resnet50/train_ptq_infer_python.txt"],
)
def test_ptq_configs_plan_to_nothing_without_error(config: str) -> None:
    for quirks in (False, True):
        plan = _plan(CORPUS / config, quirks=quirks)
        assert plan.chains == ()
        assert plan.model_name.endswith("_KL")


def _more_copy(relative: str, tmp_path: Path, **lines: str) -> Path:
    return _edited(CORPUS / relative, tmp_path, **lines)


@needs_more
def test_seg_weights_fall_back_to_iter_only_with_quirks() -> None:
    config = CORPUS / "PaddleSeg/lpsnet/train_infer_python.txt"
    fixed = _plan(config).chains[0]
    quirky = _plan(config, quirks=True).chains[0]
    fixed_export = fixed.step("export").command.argv
    quirky_export = quirky.step("export").command.argv
    assert any(w.endswith("/best_model/model.pdparams") for w in fixed_export)  # Q9.1 fixed: train_model_name
    assert any(w.endswith("/iter_20/model.pdparams") for w in quirky_export)


@needs_more
def test_video_epochs_are_per_mode_unless_quirks(tmp_path: Path) -> None:
    config = _more_copy("PaddleVideo/PP-TSN/train_infer_python.txt", tmp_path,
                        l7="-o epochs:lite_train_lite_infer=2|whole_train_whole_infer=5")
    fixed = _plan(config).chains[0].step("train").command.argv
    quirky = _plan(config, quirks=True).chains[0].step("train").command.argv
    assert "epochs=2" in fixed and not any("whole_train" in w for w in fixed)
    assert "epochs=lite_train_lite_infer=2" in quirky and "whole_train_whole_infer=5" in quirky  # Q9.2, 9.5


@needs_more
def test_detection_whole_infer_null_export_runs_only_with_quirks(tmp_path: Path) -> None:
    config = _more_copy("PaddleDetection/detr/detr_r50_1x_coco_train_infer_python.txt", tmp_path, l30="norm_export:null")
    fixed = _plan(config, "whole_infer").chains[0]
    quirky = _plan(config, "whole_infer", quirks=True).chains[0]
    assert [s.kind for s in fixed.steps][0] is StepKind.INFER
    assert quirky.steps[0].command.argv[:2] == ("python3.7", "null")  # Q9.4


@needs_more
def test_detection_dino_builds_its_op_before_each_train() -> None:
    chain = _plan(CORPUS / "PaddleDetection/dino/dino_r50_4scale_1x_coco_train_infer_python.txt").chains[0]
    setup, train = chain.steps[:2]
    assert setup.kind is StepKind.SETUP
    assert setup.command.argv == ("python3.7", "setup_ms_deformable_attn_op.py", "install")
    assert setup.command.cwd == "ppdet/modeling/transformers/ext_op"
    assert train.needs == ("build_op",)


@needs_more
def test_ocr_legacy_mode_names_are_read_as_todays(tmp_path: Path) -> None:
    config = CORPUS / "PaddleOCR/ch_PP-OCRv2_det/train_linux_gpu_normal_pact_inference_python_linux_gpu.txt"
    argv = _plan(config).chains[0].step("train").command.argv
    assert "Global.epoch_num=1" in argv  # lite_train_infer=1 (Q9.15)
    assert not any(w.startswith("Global.epoch_num") for w in _plan(config, quirks=True).steps[0].command.argv)


@needs_more
def test_ocr_missing_line_config_plans_by_position_with_a_note() -> None:
    plan = _plan(CORPUS / "PaddleOCR/PP-OCRv4_server_rec_ampO2_ultra/train_infer_python.txt", quirks=True)
    assert any("eval_params is on logical line 22" in note for note in plan.notes)
    assert [s.name for s in plan.chains[0].steps] == ["train"]


def test_a_shifted_eval_header_is_an_anchor_error_for_other_flavors(tmp_path: Path) -> None:
    lines = FULL.read_text().splitlines()
    del lines[8]
    path = tmp_path / "x.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"x\.txt:11: expected 'train_model_name:' here"):
        _plan(path)


# ---- zoo scale: values split once, grid linear (issue 13 item 1) ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["a b  c", "", "   ", "-o x='a b' y", 'k="q" \\"z', "tab\there", "nbsp\u00a0kept", "x\u2003y", "a\\ b", "-c x.yml -o"],
)
def test_cached_split_is_shlex_split(text: str) -> None:
    import shlex

    from harness.planning.context import split_words

    assert split_words(text) == tuple(shlex.split(text, comments=False, posix=True))


def test_cached_split_raises_like_shlex_on_an_open_quote() -> None:
    from harness.planning.context import split_words

    with pytest.raises(ValueError, match="No closing quotation"):
        split_words("a 'b")


def test_repeated_grid_values_get_numbered_step_names(tmp_path: Path) -> None:
    config = _edited(FULL, tmp_path, **{f"l{_physical(FULL, 44)}": "--batch_size:1|1|1"})
    names = [s.name for s in _plan(config, quirks=True).chains[0].steps if s.kind is StepKind.INFER]
    assert len(names) == len(set(names))
    assert any(n.endswith("_3") for n in names)


def _physical(path: Path, index: int) -> int:
    """Physical line of logical line ``index`` (blank lines skipped)."""
    count = 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        count += bool(line.strip())
        if count == index:
            return number
    raise AssertionError(index)


def test_no_class_or_function_in_harness_reaches_200_lines() -> None:
    import ast

    sizes = []
    for module in sorted((Path(__file__).resolve().parents[1] / "harness").rglob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                sizes.append((node.end_lineno - node.lineno + 1, f"{module.name}:{node.name}"))  # type: ignore[operator]
    assert max(sizes) < (200, "")
