"""The flavor table: per-repository conventions of the reference TIPC scripts that a config does not state.

Each field names one convention and the QUIRKS.md id that documents it
(``../shared/tipc-conformance/QUIRKS.md``). The planner reads these fields instead of testing flavor names.
"""

from __future__ import annotations

import dataclasses
import enum

from harness.config import Layout, TipcConfig
from harness.errors import ConfigError

__all__ = ["AUTO", "AUTO_RULES", "FLAVORS", "Autocast", "Flavor", "GpuSkip", "TrainArgs", "TrainUseGpu", "pick_flavor"]

AUTO = "auto"


class Autocast(enum.StrEnum):
    """How the autocast line (or the trainer name) becomes train flags (QUIRKS 3.3, 5.1, 5.4)."""

    TRAINER_NAME = "trainer_name"  # no autocast line; `amp_train` only flips autocast_True in the log name
    PADDLECLAS = "paddleclas"  # key ignored; fp16/amp/other -> -o AMP.* words
    PADDLE3D = "paddle3d"  # fp16 -> --amp --amp_level=O2, anything else -> nothing
    KEY_VALUE = "key_value"  # <key>=<value>, nothing for null


class GpuSkip(enum.StrEnum):
    """Which GPU inference combinations the reference script leaves out (Q6.2); used with --quirks."""

    PADDLECLAS = "paddleclas"  # skip use_fp16=True without TensorRT
    PADDLE3D = "paddle3d"  # skip int8 unless quantized, fp16/int8 without TRT, quantized without TRT or as int8
    GENERAL = "general"  # the harness rule: fp16/int8 need TensorRT; a quantized model with TRT runs int8


class TrainArgs(enum.StrEnum):
    """The order of the train words (Q5.3, Q5.4)."""

    TUTORIAL = "tutorial"  # save epoch pretrain batch
    PADDLECLAS = "paddleclas"  # use_gpu save epoch pretrain autocast batch param1 (multi-node: pretrain before epoch)
    PADDLE3D = "paddle3d"  # save epoch pretrain batch amp param1 (multi-GPU: no save, param1 twice)
    PADDLEGAN = "paddlegan"  # as PADDLE3D, but the multi-GPU command keeps save_model (and param1 once)


class TrainUseGpu(enum.StrEnum):
    """What the train use_gpu line (cfg:5) contributes to train/eval (QUIRKS 3.4, 5.4)."""

    UNUSED = "unused"
    WHOLE_VALUE = "whole_value"  # key=<the whole value>, on train and eval
    PER_GPU = "per_gpu"  # key=<the value at the gpu_list entry's position>


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Flavor:
    """One repository's conventions. Defaults are the plain choices; every reference row states what it relies on."""

    name: str
    layout: Layout
    description: str
    launcher_flag: str  # 5.3: --gpus (Step6, 3D) / --devices (Clas)
    multi_node_ips_len: int  # 5.3: an ips string longer than this counts as several nodes
    autocast: Autocast = Autocast.KEY_VALUE
    train_use_gpu: TrainUseGpu = TrainUseGpu.UNUSED
    weights_in_model_subdir: bool = False  # 5.6: <save_log>/<model_name>/<train_model_name>
    export_weight_positional: bool = False  # 5.7 (3D): weights as a bare argument, save dir as "key dir"
    infer_cwd: str = "."  # 5.10: "deploy" for PaddleClas
    absolute_paths: bool = False  # 1.5: Clas builds output paths from $(pwd)
    save_log_dot_log: bool = False  # 5.5: Step6 names the train output folder "<...>.log" (quirk mode only)
    infer_image_from_train_line: bool = False  # 5.9: 3D takes the train-mode image dir from cfg:12
    cpu_infer_params1: bool = False  # 6.3: infer_key1 on CPU commands
    gpu_infer_params1: bool = False  # 6.3: infer_key1 on GPU commands
    cpu_precision_flag: bool = False  # 6.1: the CPU command carries the precision flag
    print_mem_info: bool = False  # 3.1/3.2: Clas appends -o Global.print_mem_info / log_ranks
    trainer_keys: bool = False  # 5.1: dispatch trainers by the keys on cfg:17-21 (Clas)
    default_epochs: str = ""  # 4.3: Clas falls back to 2 epochs when the epoch line gives no value ("" = drop the flag)
    klquant_after_training: bool = False  # klquant_whole_infer: train + export first, then PTQ the exported model
    train_args: TrainArgs = TrainArgs.TUTORIAL
    gpu_skip: GpuSkip = GpuSkip.GENERAL  # with --quirks; without it every flavor uses GpuSkip.GENERAL
    output_dot_slash: bool = False  # 1.5: Step6 writes ./test_tipc/... (quirk mode)
    epochs_ignore_mode: bool = False  # 4.3 (quirk mode)
    train_batch_raw: bool = False  # 4.4 (quirk mode)
    folder_nodes_suffix: bool = True  # 5.5: the train folder name ends in _nodes_<n> even for one node
    inference_dir_line: bool = False  # 5.8: 3D infers from <save_log>/<cfg:36 inference_dir>
    cpu_command_minimal: bool = False  # 6.1: 3D's CPU command is only use_gpu + model dir
    benchmark_flag: bool = True  # 6.3: 3D never passes the benchmark flag
    cpu_quant_needs_mkldnn: bool = False  # 6.2: 3D skips CPU runs of a quantized model without mkldnn
    infer_log_gpu_id: bool = False  # Clas inference log names carry gpus_<g>
    whole_infer_klquant_only: bool = False  # 7.1 (quirk mode)
    whole_infer_export_beside_weights: bool = False  # 7.5 (quirk mode): export into dirname(infer_model), weights key = cfg:29 value
    # The script model that builds the chains: "tipc" (the Step6/Clas/3D/GAN family, driven by the fields above)
    # or a repository whose script builds commands in its own shape (harness/planning/repos/<name>.py); those
    # read only name, layout, launcher_flag, multi_node_ips_len, infer_cwd, the output-path fields and the three below.
    script: str = "tipc"
    value_rest_of_line: bool = False  # 4.6 does not apply: func_parser_value keeps everything after the 1st ':'
    role_overrides: tuple[tuple[str, int], ...] = ()  # roles on other lines than the layout's map (name, line)


FLAVORS: dict[str, Flavor] = {
    flavor.name: flavor
    for flavor in (
        Flavor(
            name="tutorial",
            layout=Layout.TUTORIAL,
            description="PaddlePaddle/models tutorials (Step6 test_train_inference_python.sh)",
            launcher_flag="--gpus",
            multi_node_ips_len=15,
            autocast=Autocast.TRAINER_NAME,
            train_use_gpu=TrainUseGpu.UNUSED,
            weights_in_model_subdir=False,
            export_weight_positional=False,
            infer_cwd=".",
            absolute_paths=False,
            save_log_dot_log=True,
            infer_image_from_train_line=False,
            cpu_infer_params1=False,
            gpu_infer_params1=False,
            cpu_precision_flag=False,
            print_mem_info=False,
            trainer_keys=False,
            default_epochs="",
            klquant_after_training=False,
            train_args=TrainArgs.TUTORIAL,
            gpu_skip=GpuSkip.GENERAL,
            output_dot_slash=True,
            epochs_ignore_mode=False,
            train_batch_raw=False,
            folder_nodes_suffix=True,
            inference_dir_line=False,
            cpu_command_minimal=False,
            benchmark_flag=True,
            cpu_quant_needs_mkldnn=False,
            infer_log_gpu_id=False,
            whole_infer_klquant_only=False,
            whole_infer_export_beside_weights=False,
        ),
        Flavor(
            name="paddleclas",
            layout=Layout.FULL,
            description="PaddleClas test_tipc (full layout, -o Global.* flags, inference from deploy/)",
            launcher_flag="--devices",
            multi_node_ips_len=15,
            autocast=Autocast.PADDLECLAS,
            train_use_gpu=TrainUseGpu.WHOLE_VALUE,
            weights_in_model_subdir=True,
            export_weight_positional=False,
            infer_cwd="deploy",
            absolute_paths=True,
            save_log_dot_log=False,
            infer_image_from_train_line=False,
            cpu_infer_params1=True,
            gpu_infer_params1=False,
            cpu_precision_flag=False,
            print_mem_info=True,
            trainer_keys=True,
            default_epochs="2",
            klquant_after_training=False,
            train_args=TrainArgs.PADDLECLAS,
            gpu_skip=GpuSkip.PADDLECLAS,
            output_dot_slash=False,
            epochs_ignore_mode=True,
            train_batch_raw=True,
            folder_nodes_suffix=True,
            inference_dir_line=False,
            cpu_command_minimal=False,
            benchmark_flag=True,
            cpu_quant_needs_mkldnn=False,
            infer_log_gpu_id=True,
            whole_infer_klquant_only=True,
            whole_infer_export_beside_weights=False,
        ),
        Flavor(
            name="paddle3d",
            layout=Layout.FULL,
            description="Paddle3D test_tipc (full layout, positional export weights, --amp for fp16)",
            launcher_flag="--gpus",
            multi_node_ips_len=26,
            autocast=Autocast.PADDLE3D,
            train_use_gpu=TrainUseGpu.UNUSED,
            weights_in_model_subdir=False,
            export_weight_positional=True,
            infer_cwd=".",
            absolute_paths=False,
            save_log_dot_log=False,
            infer_image_from_train_line=True,
            cpu_infer_params1=False,
            gpu_infer_params1=True,
            cpu_precision_flag=False,
            print_mem_info=False,
            trainer_keys=False,
            default_epochs="",
            klquant_after_training=False,
            train_args=TrainArgs.PADDLE3D,
            gpu_skip=GpuSkip.PADDLE3D,
            output_dot_slash=False,
            epochs_ignore_mode=False,
            train_batch_raw=False,
            folder_nodes_suffix=False,
            inference_dir_line=True,
            cpu_command_minimal=True,
            benchmark_flag=False,
            cpu_quant_needs_mkldnn=True,
            infer_log_gpu_id=False,
            whole_infer_klquant_only=False,
            whole_infer_export_beside_weights=True,
        ),
        Flavor(
            name="harness",
            layout=Layout.FULL,
            description="this project's own models: full layout, --key=value flags, everything from the repo root",
            launcher_flag="--devices",
            multi_node_ips_len=15,
            autocast=Autocast.KEY_VALUE,
            train_use_gpu=TrainUseGpu.PER_GPU,
            weights_in_model_subdir=False,
            export_weight_positional=False,
            infer_cwd=".",
            absolute_paths=False,
            save_log_dot_log=False,
            infer_image_from_train_line=False,
            cpu_infer_params1=True,
            gpu_infer_params1=True,
            cpu_precision_flag=True,
            print_mem_info=False,
            trainer_keys=True,
            default_epochs="",
            klquant_after_training=True,
            train_args=TrainArgs.PADDLECLAS,
            gpu_skip=GpuSkip.GENERAL,
            output_dot_slash=False,
            epochs_ignore_mode=False,
            train_batch_raw=False,
            folder_nodes_suffix=True,
            inference_dir_line=False,
            cpu_command_minimal=False,
            benchmark_flag=True,
            cpu_quant_needs_mkldnn=False,
            infer_log_gpu_id=False,
            whole_infer_klquant_only=False,
            whole_infer_export_beside_weights=False,
        ),
        Flavor(
            name="paddlegan",
            layout=Layout.FULL,
            description="PaddleGAN test_tipc (Paddle3D-like; train_model on line 37; train/eval-only configs end at line 26)",
            launcher_flag="--gpus",
            multi_node_ips_len=26,
            autocast=Autocast.PADDLE3D,
            train_use_gpu=TrainUseGpu.UNUSED,
            weights_in_model_subdir=False,
            export_weight_positional=True,
            infer_cwd=".",
            absolute_paths=False,
            save_log_dot_log=False,
            infer_image_from_train_line=True,
            cpu_infer_params1=False,
            gpu_infer_params1=True,
            cpu_precision_flag=False,
            print_mem_info=False,
            trainer_keys=False,
            default_epochs="",
            klquant_after_training=False,
            train_args=TrainArgs.PADDLEGAN,
            gpu_skip=GpuSkip.PADDLE3D,
            output_dot_slash=True,
            epochs_ignore_mode=False,
            train_batch_raw=False,
            folder_nodes_suffix=False,
            inference_dir_line=True,
            cpu_command_minimal=True,
            benchmark_flag=False,
            cpu_quant_needs_mkldnn=True,
            infer_log_gpu_id=False,
            whole_infer_klquant_only=False,
            whole_infer_export_beside_weights=True,
        ),
        Flavor(
            name="paddledetection",
            layout=Layout.FULL,
            description="PaddleDetection test_tipc (utils_func.sh; -o style train words, infer_mode whole_infer)",
            launcher_flag="--gpus",
            multi_node_ips_len=15,
            output_dot_slash=True,
            folder_nodes_suffix=False,
            script="paddledetection",
            value_rest_of_line=True,
            # cfg:20/21 trainer_key1/2 exported by cfg:34/35; cfg:36 kl_quant_export; cfg:38/39 infer_mode/quant
            role_overrides=(("to_static", 0), ("trainer1", 20), ("export1", 34), ("export2", 35), ("kl_quant", 36),
                            ("inference_dir", 0), ("infer_model", 0), ("infer_export", 0), ("infer_mode", 38),
                            ("infer_quant", 39)),
        ),
        Flavor(
            name="paddleseg",
            layout=Layout.FULL,
            description="PaddleSeg test_tipc (export_params section, deploy.yaml inference, pact from norm weights)",
            launcher_flag="--devices",
            multi_node_ips_len=15,
            output_dot_slash=True,
            folder_nodes_suffix=False,
            script="paddleseg",
            value_rest_of_line=False,
            # cfg:20/21 trainer_key1/2 exported by cfg:34/35; cfg:36 (the infer_params header) is inference_dir
            role_overrides=(("to_static", 0), ("trainer1", 20), ("export1", 34), ("kl_quant", 0), ("infer_param2", 52)),
        ),
        Flavor(
            name="paddleocr",
            layout=Layout.FULL,
            description="PaddleOCR test_tipc (full layout read by position, Global.use_amp words, mkldnn/precision on CPU)",
            launcher_flag="--gpus",
            multi_node_ips_len=15,
            output_dot_slash=True,
            folder_nodes_suffix=False,
            script="paddleocr",
            value_rest_of_line=False,
            # cfg:21 trainer_key2 exported by cfg:35
            role_overrides=(("to_static", 0), ("kl_quant", 0)),
        ),
        Flavor(
            name="paddlevideo",
            layout=Layout.FULL,
            description="PaddleVideo test_tipc (--max_iters=30, raw epochs, <model>_epoch_00001 weights, model/params files)",
            launcher_flag="--devices",
            multi_node_ips_len=15,
            output_dot_slash=True,
            folder_nodes_suffix=True,
            script="paddlevideo",
            value_rest_of_line=False,
            # cfg:20 amp_key (its export is norm_export); cfg:21 trainer_key2 exported by cfg:35
            role_overrides=(("to_static", 0), ("trainer1", 20), ("kl_quant", 0)),
        ),
    )
}


# Full-layout repositories told apart by lines only their configs have: (flavor, ((logical line, key), ...), reason).
# A key "=name=" is a header; "" means the config ends before that line.
AUTO_RULES: tuple[tuple[str, tuple[tuple[int, str], ...], str], ...] = (
    ("paddledetection", ((38, "infer_mode"),), "'infer_mode:' on line 38"),
    ("paddleseg", ((27, "=export_params="),), "an export_params header on line 27"),
    ("paddlevideo", ((29, "-p"), (47, "--model_file")), "'-p:' on line 29 and '--model_file:' on line 47"),
    ("paddlegan", ((5, "##"), (37, "train_model")), "'##' on line 5 and 'train_model:' on line 37"),
    ("paddlegan", ((5, "##"), (27, "")), "'##' on line 5 and no infer_params (a train/eval-only config)"),
    ("paddleocr", ((5, "Global.use_gpu"),), "'Global.use_gpu:' on line 5"),
)


def _line_is(config: TipcConfig, index: int, key: str) -> bool:
    """Whether logical line ``index`` has this key, this header (``=name=``), or is missing (``""``)."""
    if not key:
        return not config.has(index)
    if not config.has(index):
        return False
    entry = config.at(index)
    if key == "##":
        return entry.text.strip() == "##"
    if key.startswith("="):
        return entry.header == key.strip("=")
    return entry.key == key


def declared_flavor(config: TipcConfig) -> tuple[str, int] | None:
    """The ``flavor:`` entry of the optional trailing ``harness_params`` section, with its line."""
    for entry in config.section("harness_params"):
        if entry.key == "flavor":
            return entry.value, entry.line
    return None


def pick_flavor(config: TipcConfig, requested: str = AUTO) -> tuple[Flavor, str]:
    """The flavor to plan with, and a sentence saying how it was chosen."""
    if requested != AUTO:
        flavor = FLAVORS.get(requested)
        if flavor is None:
            msg = f"unknown flavor {requested!r}; choose one of: auto, {', '.join(FLAVORS)}"
            raise ConfigError(config.path, 0, msg)
        if flavor.layout is not config.layout and config.layout is not Layout.PTQ:
            msg = f"flavor {requested!r} reads the {flavor.layout} layout, but this config has the {config.layout} layout"
            raise ConfigError(config.path, 0, msg)
        return flavor, f"flavor {flavor.name} (requested)"
    declared = declared_flavor(config)
    if declared is not None:
        name, line = declared
        flavor = FLAVORS.get(name)
        if flavor is None:
            raise ConfigError(config.path, line, f"unknown flavor {name!r}; choose one of: {', '.join(FLAVORS)}")
        if flavor.layout is not config.layout:
            msg = f"flavor {name!r} reads the {flavor.layout} layout, but this config has the {config.layout} layout"
            raise ConfigError(config.path, line, msg)
        return flavor, f"flavor {name} (declared in harness_params)"
    if config.layout is not Layout.FULL:
        return FLAVORS["tutorial"], f"flavor tutorial (auto: {config.layout} layout)"
    for name, conditions, why in AUTO_RULES:
        if all(_line_is(config, index, key) for index, key in conditions):
            return FLAVORS[name], f"flavor {name} (auto: full layout, {why})"
    # Paddle3D leaves cfg:5 (train use_gpu, which its script never reads) as '##' and is the only one with a
    # to_static benchmark section; PaddleClas always has its use_gpu flag line there.
    if config.at(5).text.strip() == "##" or config.section_start("to_static_train_benchmark_params") is not None:
        return FLAVORS["paddle3d"], "flavor paddle3d (auto: full layout, '##' on line 5 or a to_static benchmark section)"
    return FLAVORS["paddleclas"], "flavor paddleclas (auto: full layout with a train use_gpu line on line 5)"
