"""TipcConfig x mode x options -> Plan (ordered chains of frozen steps). Pure: no file, env or clock access.

The planner follows the reference ``test_train_inference_python.sh`` scripts step by step. Their conventions live
in the flavor table (``harness/flavors.py``); their bugs are reproduced only with ``quirks=True`` and otherwise
fixed. Every such place is marked with its QUIRKS.md id (``Q4.3`` ...), and test_tipc/docs/config_format.md lists
the fixes.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import shlex
from collections.abc import Iterable, Sequence

from harness.check_steps import GOLDEN_MODES, add_checks, golden_label, skips_cpu_row
from harness.command import DEFAULT_TIMEOUT_S, Command
from harness.config import Entry, Layout, TipcConfig
from harness.errors import ConfigError
from harness.flavors import (
    AUTO,
    Autocast,
    Flavor,
    GpuSkip,
    TrainArgs,
    TrainUseGpu,
    pick_flavor,
)
from harness.layouts import check_layout
from harness.steps import Chain, Plan, Requirement, Step, StepKind

__all__ = ["MODES", "PlanOptions", "build_plan"]

MODES = (
    "lite_train_lite_infer",
    "lite_train_whole_infer",
    "whole_train_whole_infer",
    "whole_infer",
    "klquant_whole_infer",
    "paddle2onnx_infer",
)
# Mode names that may appear in per-mode values (`lite_train_lite_infer=5|...`); benchmark_train is TIPC's own.
_VALUE_MODES = (*MODES, "benchmark_train")
_TRAIN_MODES = ("lite_train_lite_infer", "lite_train_whole_infer", "whole_train_whole_infer")
_NAME_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_TRUE_FALSE = ("True", "False")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PlanOptions:
    flavor: str = AUTO
    quirks: bool = False
    repo_root: str = ""  # absolute run root; only flavors with absolute output paths (PaddleClas) use it
    timeout_s: float = DEFAULT_TIMEOUT_S
    output_root: str = "test_tipc/output"


def build_plan(config: TipcConfig, mode: str, options: PlanOptions = PlanOptions()) -> Plan:
    """Expand one config and mode into chains of steps, exactly as ordered as the reference script runs them."""
    if mode not in MODES:
        msg = f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}"
        raise ConfigError(config.path, 0, msg)
    flavor, how = pick_flavor(config, options.flavor)
    if config.layout is Layout.PTQ:
        # Q7.6: a ptq_params config belongs to test_ptq_inference_python.sh; this script runs nothing for it.
        return _plan(config, mode, flavor, options, "", (), (how, "ptq_params layout: nothing to run (Q7.6)"))
    check_layout(config, flavor.name)
    builder = _Builder(config, mode, flavor, options)
    chains = add_checks(config, mode, options.quirks, builder.python, builder.build())
    return _plan(config, mode, flavor, options, builder.model_name, chains, (how, *builder.notes))


def _plan(
    config: TipcConfig,
    mode: str,
    flavor: Flavor,
    options: PlanOptions,
    model_name: str,
    chains: tuple[Chain, ...],
    notes: tuple[str, ...],
) -> Plan:
    output_dir = posixpath.join(options.output_root, model_name or "unnamed", mode)
    return Plan(
        config_path=config.path,
        model_name=model_name,
        mode=mode,
        flavor=flavor.name,
        quirks=options.quirks,
        output_dir=output_dir,
        results_log=posixpath.join(output_dir, "results_python.log"),
        chains=chains,
        notes=notes,
    )


def safe_name(text: str) -> str:
    """Node-id safe form of a chain or step name: ``0,1`` -> ``0-1``."""
    return _NAME_SAFE.sub("-", text)


@dataclasses.dataclass(frozen=True, slots=True)
class _Piece:
    """A fragment of a command line and the config line it comes from (for quoting errors)."""

    text: str
    line: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class _Placement:
    """Where one gpu_list entry trains: the launcher words, env, hardware and the names the scripts derive."""

    gpu: str  # the gpu part as the scripts use it in names ("-1", "0", "0,1")
    ips: str
    nodes: int
    launcher: tuple[str, ...]  # words between the interpreter and the train script
    multi_node_order: bool  # Clas orders pretrain before epoch on multi-machine commands (Q5.3)
    multi: bool  # multi-GPU or multi-node command
    train_env: tuple[tuple[str, str | None], ...]
    step_env: tuple[tuple[str, str | None], ...]
    requires: tuple[Requirement, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Trained:
    """What a chain's train part leaves for eval/export/inference."""

    trainer: str
    save_log: str  # train output folder
    weights: str  # the trained weights file eval and export load
    name_stem: str  # <trainer>_gpus_<g>_autocast_<a>_nodes_<n>, the TIPC log stem
    quant: bool
    autocast: str


class _Builder:
    """Stateful helper for one build_plan call; its results are frozen values."""

    def __init__(self, config: TipcConfig, mode: str, flavor: Flavor, options: PlanOptions) -> None:
        self.config = config
        self.mode = mode
        self.flavor = flavor
        self.options = options
        self.quirks = options.quirks
        self.full = config.layout is Layout.FULL
        self.notes: list[str] = []
        self.model_name = self.value(2)
        if not self.model_name:
            raise config.error(2, "model_name is empty")
        self.python = self.value(3)
        if not self.python or self.python == "null":
            raise config.error(3, "python (the interpreter) is empty")
        root = options.repo_root.rstrip("/") if flavor.absolute_paths else ""
        if flavor.absolute_paths and not root:
            root = "{REPO_ROOT}"
        out = posixpath.join(options.output_root, self.model_name, mode)
        # Q1.5: PaddleClas writes absolute paths ($(pwd)/test_tipc/...), Step6 writes ./test_tipc/...
        if root:
            self.out = f"{root}/{out}"
        elif flavor.output_dot_slash and self.quirks:
            self.out = f"./{out}"
        else:
            self.out = out
        self.out_rel = out  # where logs go, relative to the run root

    # ---- reading values the way the reference scripts do -------------------------------------------------

    def entry(self, index: int) -> Entry:
        return self.config.at(index)

    def key(self, index: int) -> str:
        return self.config.at(index).key if self.config.has(index) else ""

    def value(self, index: int) -> str:
        """Q4.6: the scripts keep only the text between the 1st and 2nd ':'; fixed: everything after the 1st."""
        if not self.config.has(index):
            return ""
        entry = self.config.at(index)
        return entry.bash_value if self.quirks else entry.value

    def alternatives(self, index: int) -> list[str]:
        value = self.value(index)
        return [item.strip() for item in value.split("|")] if value else []

    def mode_value(self, index: int, *, use_mode: bool = True) -> str:
        """A ``mode=value|mode=value`` line resolved for this mode (``func_parser_params``)."""
        entry = self.entry(index)
        raw = self.value(index)
        items = [item.strip() for item in raw.split("|")] if raw else []
        table: dict[str, str] = {}
        for item in items:
            if "=" not in item:
                continue
            name, _, rest = item.partition("=")
            name = name.strip()
            if name not in _VALUE_MODES and not self.quirks:  # the scripts silently skip unknown modes
                msg = f"unknown mode {name!r} in per-mode value {raw!r}; modes are: {', '.join(MODES)}"
                raise ConfigError(self.config.path, entry.line, msg)
            table.setdefault(name, rest.split("=")[0].strip() if self.quirks else rest.strip())
        if self.quirks:
            # The scripts find nothing when they are not given the mode (Q4.3) or the value is plain.
            return table.get(self.mode, "") if use_mode else ""
        if items and not table:
            return raw  # a plain value applies to every mode
        if self.mode in table:
            return table[self.mode]
        fallback = {"lite_train_whole_infer": "lite_train_lite_infer", "klquant_whole_infer": "lite_train_lite_infer",
                    "paddle2onnx_infer": "lite_train_lite_infer"}.get(self.mode)
        if fallback and fallback in table:
            return table[fallback]
        return ""

    def words(self, pieces: Iterable[_Piece | str], *, ifs_pipe: bool = True) -> tuple[str, ...]:
        """Split command fragments into argv words as ``eval`` would (quotes removed), never through a shell.

        With --quirks: the scripts run ``eval $cmd`` while IFS is ``|`` (not listed in QUIRKS.md; found by replaying
        the PaddleClas script), so a ``|`` in a value splits the word
        there (``lite_train_lite_infer=4|whole...`` becomes two arguments). ``ifs_pipe=False`` is for the one
        command PaddleClas evaluates with IFS still a newline (kl_quant).
        """
        out: list[str] = []
        for piece in pieces:
            item = piece if isinstance(piece, _Piece) else _Piece(piece)
            text = item.text.replace("|", " ") if self.quirks and ifs_pipe else item.text
            try:
                out.extend(shlex.split(text, comments=False, posix=True))
            except ValueError as exc:
                msg = f"cannot split {item.text!r} into arguments: {exc}"
                raise ConfigError(self.config.path, item.line, msg) from None
        return tuple(out)

    def piece(self, index: int) -> _Piece:
        return _Piece(self.value(index), self.entry(index).line if self.config.has(index) else 0)

    def line_of(self, index: int) -> int:
        return self.entry(index).line if self.config.has(index) else 0

    @staticmethod
    def param(key: str, value: str) -> str:
        """``func_set_params``: nothing for a null key or a null/empty value, else ``key=value``."""
        if key == "null" or value in ("null", "", " ") or not value.strip():
            return ""
        return f"{key}={value}"

    def check_bool(self, index: int, values: Sequence[str], *, extra: tuple[str, ...] = ()) -> None:
        """Refuse near-misses of True/False (``Fasle``) on a boolean line the flavor uses."""
        allowed = {*_TRUE_FALSE, *extra, "null"}
        for value in values:
            if value in allowed:
                continue
            lowered = value.lower()
            close = lowered in ("true", "false") or _near(lowered, "true") or _near(lowered, "false")
            if close:
                entry = self.entry(index)
                msg = f"{entry.key}: {value!r} is not True or False"
                raise ConfigError(self.config.path, entry.line, msg)

    # ---- chains ---------------------------------------------------------------------------------------------

    def build(self) -> tuple[Chain, ...]:
        if self.mode == "whole_infer":
            return self.whole_infer_chains()
        if self.mode == "klquant_whole_infer" and self.full and not self.quirks:
            if not self.flavor.klquant_after_training:
                return self.klquant_chains()
        if self.mode == "paddle2onnx_infer" and self.quirks:
            return ()
        return self.train_chains()

    def tutorial_roles(self) -> dict[str, int]:
        return {
            "gpu_list": 4, "use_gpu_train": 5, "epoch": 6, "save_model": 7, "batch": 8, "pretrain": 9,
            "train_model_name": 10, "trainer_list": 13, "norm_train": 14, "eval": 17, "save_infer": 20,
            "export_weight": 21, "norm_export": 22, "infer_model": 24, "infer_export": 25, "inference": 27,
            "infer_use_gpu": 28, "infer_batch": 29, "infer_model_key": 30, "infer_img": 31, "benchmark": 32,
        }

    def train_chains(self) -> tuple[Chain, ...]:
        r = self.roles()
        chains: list[Chain] = []
        gpu_list = self.alternatives(r["gpu_list"])
        if not gpu_list:
            raise self.config.error(r["gpu_list"], "gpu_list is empty")
        train_use_gpu = self.alternatives(r["use_gpu_train"]) if "use_gpu_train" in r else []
        autocasts = self.alternatives(6) if self.full else [""]
        trainers = self.alternatives(r["trainer_list"])
        if not trainers:
            raise self.config.error(r["trainer_list"], "trainer list is empty")
        for position, gpu_entry in enumerate(gpu_list):
            placement = self.placement(gpu_entry, r["gpu_list"])
            use_gpu_value = self.train_use_gpu_value(train_use_gpu, position)
            for autocast in autocasts:
                for trainer in trainers:
                    chain = self.train_chain(trainer, autocast, placement, use_gpu_value)
                    if chain is not None:
                        chains.append(chain)
        return tuple(chains)

    def roles(self) -> dict[str, int]:
        if not self.full:
            return self.tutorial_roles()
        return {
            "gpu_list": 4, "use_gpu_train": 5, "epoch": 7, "save_model": 8, "batch": 9, "pretrain": 10,
            "train_model_name": 11, "train_infer_img": 12, "param1": 13, "trainer_list": 15, "norm_train": 16,
            "pact_train": 17, "fpgm_train": 18, "distill_train": 19, "to_static": 20, "trainer2": 21,
            "eval": 24, "eval_param1": 25, "save_infer": 28, "export_weight": 29, "norm_export": 30,
            "quant_export": 31, "fpgm_export": 32, "distill_export": 33, "kl_quant": 34, "export2": 35,
            "inference_dir": 36, "infer_model": 37, "infer_export": 38, "infer_quant": 39, "inference": 40,
            "infer_use_gpu": 41, "mkldnn": 42, "threads": 43, "infer_batch": 44, "trt": 45, "precision": 46,
            "infer_model_key": 47, "infer_img": 48, "save_log_key": 49, "benchmark": 50, "infer_param1": 51,
        }

    def train_use_gpu_value(self, values: list[str], position: int) -> str:
        mode = self.flavor.train_use_gpu
        if mode is TrainUseGpu.UNUSED:
            return ""
        whole = self.value(5)
        if mode is TrainUseGpu.WHOLE_VALUE and (self.quirks or len(values) <= 1):
            return whole  # Q3.4: the whole cfg:5 value, whatever the gpu_list entry
        return values[position] if position < len(values) else (values[-1] if values else "")

    def placement(self, entry: str, line_index: int) -> _Placement:
        """Q5.3: the scripts tell single/multi-GPU/multi-node apart by string lengths; fixed: by ';' and ','."""
        flavor = self.flavor
        ips = ""
        gpu = entry
        if self.quirks:
            if len(entry) > 15 and entry != "-1":
                ips, _, gpu = entry.partition(";")
            single = len(gpu) <= 2
            multi_node = not single and len(ips) > flavor.multi_node_ips_len
            nodes = len(ips.split(",")) if len(ips) > flavor.multi_node_ips_len else 1
        else:
            if ";" in entry:
                ips, _, gpu = entry.partition(";")
            ids = [g for g in gpu.split(",") if g]
            if not ids or any(not re.fullmatch(r"-1|\d+", g) for g in ids):
                msg = f"gpu_list entry {entry!r} is not -1, a device id, a list of ids or 'ip,ip;ids'"
                raise self.config.error(line_index, msg)
            ip_list = [ip for ip in ips.split(",") if ip]
            multi_node = len(ip_list) > 1
            nodes = len(ip_list) if multi_node else 1
            single = len(ids) == 1 and not multi_node
        first = gpu.split(",")[0]
        if gpu == "-1":
            # Fixed: the scripts leave CUDA_VISIBLE_DEVICES alone, so "-1" could still train on a GPU.
            cpu_env: tuple[tuple[str, str | None], ...] = () if self.quirks else (("CUDA_VISIBLE_DEVICES", ""),)
            return _Placement(gpu, "", 1, (), False, False, cpu_env, cpu_env, ())
        requires: tuple[Requirement, ...]
        if single:
            launcher: tuple[str, ...] = ()
            requires = (Requirement.GPU,)
        elif not multi_node:
            launcher = ("-m", "paddle.distributed.launch", f"{flavor.launcher_flag}={gpu}")
            requires = (Requirement.GPU, Requirement.MULTI_GPU)
        else:
            launcher = ("-m", "paddle.distributed.launch", f"--ips={ips}", f"{flavor.launcher_flag}={gpu}")
            requires = (Requirement.GPU, Requirement.MULTI_NODE)
        return _Placement(
            gpu=gpu,
            ips=ips,
            nodes=nodes,
            launcher=launcher,
            multi_node_order=multi_node,
            multi=not single,
            train_env=(("CUDA_VISIBLE_DEVICES", gpu),),
            step_env=(("CUDA_VISIBLE_DEVICES", first),),
            requires=requires,
        )

    def resolve_trainer(self, trainer: str) -> tuple[str, str, bool, int]:
        """(train script words, export script words, quantized?, line) for a trainer name (Q5.1, Q5.2)."""
        r = self.roles()
        if not self.full:
            # Q5.1: Step6 has one trainer line and uses it for every trainer name.
            return self.value(14), self.value(22), trainer == "pact_train", self.line_of(14)
        if self.flavor.trainer_keys:
            table = (
                ("pact_train", "quant_export", True),
                ("fpgm_train", "fpgm_export", False),
                ("distill_train", "distill_export", False),
            )
            for train_role, export_role, quant in table:
                if trainer == self.key(r[train_role]):
                    return self.value(r[train_role]), self.value(r[export_role]), quant, self.line_of(r[train_role])
            if trainer == self.key(r["to_static"]):
                combined = f"{self.value(r['norm_train'])}  {self.value(r['to_static'])}"
                return combined, self.value(r["norm_export"]), False, self.line_of(r["to_static"])
            if trainer == self.key(r["trainer2"]):
                return self.value(r["trainer2"]), self.value(r["export2"]), False, self.line_of(r["trainer2"])
            return self.value(r["norm_train"]), self.value(r["norm_export"]), False, self.line_of(r["norm_train"])
        # Paddle3D: norm_train, or to_static from the line after the to_static benchmark header (Q5.2).
        start = self.config.section_start("to_static_train_benchmark_params")
        if start is not None and self.config.has(start + 1) and trainer == self.config.at(start + 1).key:
            extra = self.config.at(start + 1)
            combined = f"{self.value(r['norm_train'])}  {extra.bash_value if self.quirks else extra.value}"
            return combined, self.value(r["norm_export"]), False, extra.line
        return self.value(r["norm_train"]), self.value(r["norm_export"]), False, self.line_of(r["norm_train"])

    def autocast_words(self, autocast: str, trainer: str) -> str:
        style = self.flavor.autocast
        if style is Autocast.TRAINER_NAME:
            return ""
        if style is Autocast.PADDLECLAS:
            level = {"fp16": "O2", "amp": "O1"}.get(autocast)
            if level:
                return (
                    "-o AMP.use_amp=True -o AMP.scale_loss=128 -o AMP.use_dynamic_loss_scaling=True "
                    f"-o AMP.level={level}"
                )
            # Q3.3: null adds -o AMP.use_amp=False, which switches off an amp_train config's own AMP; fixed: nothing.
            return "-o AMP.use_amp=False" if self.quirks else ""
        if style is Autocast.PADDLE3D:
            return "--amp --amp_level=O2" if autocast == "fp16" else ""
        return self.param(self.key(6), autocast)

    def autocast_name(self, autocast: str, trainer: str) -> str:
        if self.flavor.autocast is Autocast.TRAINER_NAME:
            return "True" if trainer == "amp_train" else "False"
        return autocast

    def epochs(self) -> str:
        r = self.roles()
        use_mode = not (self.quirks and self.flavor.epochs_ignore_mode)  # Q4.3
        value = self.mode_value(r["epoch"], use_mode=use_mode)
        if self.flavor.default_epochs and not value:
            value = self.flavor.default_epochs
            if self.mode == "benchmark_train" or self.value(5) == "npu":
                value = "1"
        return value

    def train_batch(self) -> str:
        r = self.roles()
        if self.quirks and self.flavor.train_batch_raw:
            return self.value(r["batch"])  # Q4.4: raw value, no mode parsing
        return self.mode_value(r["batch"])

    def train_chain(self, trainer: str, autocast: str, placement: _Placement, use_gpu_value: str) -> Chain | None:
        r = self.roles()
        flavor = self.flavor
        run_train, run_export, quant, train_line = self.resolve_trainer(trainer)
        if run_train == "null" or not run_train:
            return None
        staged = self.stages() if trainer == "staged_train" and not self.quirks else ()
        autocast_name = self.autocast_name(autocast, trainer)
        stem = f"{trainer}_gpus_{placement.gpu}_autocast_{autocast_name}_nodes_{placement.nodes}"
        # Paddle3D names its train folder without "_nodes_1" (its logs keep it).
        folder = stem if flavor.folder_nodes_suffix or placement.nodes > 1 else stem.rsplit("_nodes_", 1)[0]
        save_log = f"{self.out}/{folder}"
        if self.quirks and flavor.save_log_dot_log:
            save_log += ".log"  # Q5.5: Step6 names the train output folder "<stem>.log"
        chain_id = safe_name(stem)
        chain_dir_rel = f"{self.out_rel}/{folder}"
        use_gpu_param = self.param(self.key(5), use_gpu_value) if use_gpu_value else ""
        steps: list[Step] = []
        tags = _tags(trainer, autocast, quant, placement.requires)
        train_model_name = self.value(r["train_model_name"])

        if staged:
            weights, last = self.staged_train_steps(staged, save_log, chain_dir_rel, placement, use_gpu_param, tags)
            steps.extend(weights)
            weights_path = f"{save_log}/{last}/{train_model_name}"
        else:
            argv = self.train_argv(run_train, train_line, autocast, trainer, placement, save_log, use_gpu_param)
            steps.append(self.step("train", StepKind.TRAIN, argv, f"{self.out_rel}/{stem}.log", placement.train_env,
                                   (), placement.requires, train_line, tags))
            weights_path = self.weights_path(save_log, train_model_name)
        train_name = steps[-1].name

        eval_py = self.value(r["eval"])
        if eval_py != "null" and eval_py:
            pretrain_key = self.key(r["pretrain"])
            eval_pieces: list[_Piece | str] = [self.piece(r["eval"]), self.param(pretrain_key, weights_path)]
            if flavor.train_use_gpu is not TrainUseGpu.UNUSED:
                eval_pieces.append(use_gpu_param)
            if self.full:
                eval_pieces.append(self.param(self.key(r["eval_param1"]), self.value(r["eval_param1"])))
            argv = (self.python, *self.words(eval_pieces))
            steps.append(self.step("eval", StepKind.EVAL, argv, f"{self.out_rel}/{stem}_eval.log", placement.step_env,
                                   (train_name,), placement.requires, self.line_of(r["eval"]), tags))

        if run_export == "null" or not run_export:
            return Chain(id=chain_id, model=self.model_name, mode=self.mode, steps=tuple(steps))
        if self.quirks and flavor.weights_in_model_subdir and _is_rec_model(self.model_name):
            export_weights = ""  # Q5.7: the GeneralRecognition/MetaBIN branch never sets the export weights
        else:
            export_weights = weights_path
        argv = self.export_argv(run_export, export_weights, save_log, self.line_of(r["norm_export"]))
        steps.append(self.step("export", StepKind.EXPORT, argv, f"{self.out_rel}/{stem}_export.log",
                               placement.step_env, (train_name,), placement.requires,
                               self.line_of(r["norm_export"]), tags))
        model_dir = save_log
        if flavor.inference_dir_line:
            inference_dir = self.value(r["inference_dir"])
            if inference_dir and inference_dir not in ("null", "##"):
                model_dir = f"{save_log}/{inference_dir}"  # Q5.8
        if self.mode == "klquant_whole_infer" and self.full and not self.quirks:
            kl = self.klquant_step(model_dir, chain_dir_rel, placement, tags)
            if kl is None:
                return Chain(id=chain_id, model=self.model_name, mode=self.mode, steps=tuple(steps))
            steps.append(kl)
            model_dir = f"{model_dir}/quant_post_static_model"
            quant = True
        if self.mode == "paddle2onnx_infer" and self.full and not self.quirks:
            steps.extend(self.paddle2onnx_steps(model_dir, chain_dir_rel, placement, tags))
            return Chain(id=chain_id, model=self.model_name, mode=self.mode, steps=tuple(steps))
        steps.extend(
            self.inference_steps(
                model_dir=model_dir,
                image_dir=self.train_image_dir(),
                quant=quant,
                gpu=placement.gpu,
                needs=steps[-1].name,
                log_dir=self.infer_log_dir(chain_dir_rel),
                env=placement.step_env,
                chain_requires=placement.requires,
                trainer=trainer,
                tags=tags,
                # Goldens are CPU training results; GPU training does not reproduce them bit for bit.
                compare=placement.gpu == "-1",
            )
        )
        return Chain(id=chain_id, model=self.model_name, mode=self.mode, steps=tuple(steps))

    def weights_path(self, save_log: str, train_model_name: str) -> str:
        if self.flavor.weights_in_model_subdir:
            sub = "RecModel" if _is_rec_model(self.model_name) else self.model_name  # Q5.6
            return f"{save_log}/{sub}/{train_model_name}"
        return f"{save_log}/{train_model_name}"

    def train_image_dir(self) -> str:
        if not self.full:
            # Q5.9: Step6 passes ${train_infer_img_dir}, which it never defines, so no image flag is given.
            return "" if self.quirks else self.value(31)
        if self.flavor.infer_image_from_train_line:
            return self.value(12)
        return self.value(48)

    def infer_log_dir(self, chain_dir_rel: str) -> str:
        # The scripts write every chain's inference logs into the mode folder, where later chains overwrite
        # them; fixed: each chain's inference logs live in its own folder.
        return self.out_rel if self.quirks else chain_dir_rel

    def train_argv(
        self,
        run_train: str,
        line: int,
        autocast: str,
        trainer: str,
        placement: _Placement,
        save_log: str,
        use_gpu_param: str,
    ) -> tuple[str, ...]:
        r = self.roles()
        flavor = self.flavor
        save = self.param(self.key(r["save_model"]), save_log)
        epoch = self.param(self.key(r["epoch"]), self.epochs())
        pretrain = self.param(self.key(r["pretrain"]), self.value(r["pretrain"]))
        batch = self.param(self.key(r["batch"]), self.train_batch())
        script = _Piece(run_train, line)
        pieces: list[_Piece | str]
        if not self.full:
            pieces = [script, save, epoch, pretrain, batch]
        else:
            param1 = self.param(self.key(r["param1"]), self.value(r["param1"]))
            amp = self.autocast_words(autocast, trainer)
            if flavor.train_args is TrainArgs.PADDLE3D:
                if self.quirks and placement.multi and not placement.multi_node_order:
                    # Q5.3: the 3D multi-GPU command drops save_model and repeats train_param1.
                    pieces = [script, param1, epoch, pretrain, batch, amp, param1]
                elif self.quirks and placement.multi_node_order:
                    pieces = [script, save, pretrain, epoch, batch, amp, param1]
                else:
                    pieces = [script, save, epoch, pretrain, batch, amp, param1]
            elif placement.multi_node_order and self.quirks:
                pieces = [script, use_gpu_param, save, pretrain, epoch, amp, batch, param1]
            else:
                pieces = [script, use_gpu_param, save, epoch, pretrain, amp, batch, param1]
            if flavor.print_mem_info:
                pieces.append("-o Global.print_mem_info=True")  # Q3.1
                if placement.multi:
                    pieces.append("-o Global.log_ranks=0,1,2,3,4,5,6,7")  # Q3.2
            if flavor.autocast is Autocast.PADDLECLAS and autocast in ("amp", "fp16") and any(
                name in self.model_name
                for name in ("CLIP_vit_base_patch16_224", "SwinTransformer_base_patch4_window7_224_ampo2_ultra")
            ):
                pieces.append("-o Arch.use_fused_attn=True -o Arch.use_fused_linear=True")  # Q3.5
        return (self.python, *placement.launcher, *self.words(pieces))

    def export_argv(self, run_export: str, weights: str, save_dir: str, line: int) -> tuple[str, ...]:
        r = self.roles()
        save_key = self.key(r["save_infer"])
        weight_key = self.key(r["export_weight"])
        if self.flavor.export_weight_positional:
            # Q5.7 (3D): the weights are a bare argument and the save dir is "<key> <dir>".
            return (self.python, *self.words([_Piece(run_export, line), weights, save_key, save_dir]))
        pieces: list[_Piece | str] = [_Piece(run_export, line), self.param(weight_key, weights) if weights else "",
                  self.param(save_key, save_dir)]
        return (self.python, *self.words(pieces))

    # ---- inference grid ---------------------------------------------------------------------------------------

    def inference_steps(
        self,
        *,
        model_dir: str,
        image_dir: str,
        quant: bool,
        gpu: str,
        needs: str,
        log_dir: str,
        env: tuple[tuple[str, str | None], ...],
        chain_requires: tuple[Requirement, ...],
        trainer: str,
        tags: tuple[str, ...],
        compare: bool = True,
    ) -> list[Step]:
        """The inference grid of one model folder, each step followed by its compare step when goldens exist."""
        r = self.roles()
        script = self.piece(r["inference"])
        if not script.text or script.text == "null":
            return []
        use_gpus = self.alternatives(r["infer_use_gpu"])
        self.check_bool(r["infer_use_gpu"], use_gpus, extra=("gpu", "cpu"))
        bench = self.param(self.key(r["benchmark"]), self.value(r["benchmark"])) if self.flavor.benchmark_flag else ""
        grid = _Grid(
            builder=self,
            script=script,
            model=self.param(self.key(r["infer_model_key"]), model_dir),
            image=self.param(self.key(r["infer_img"]), image_dir) if image_dir else "",
            bench=bench,  # Q6.3: 3D never sets the benchmark key
            quant=quant,
            gpu=gpu,
            needs=needs,
            log_dir=log_dir,
            env=env,
            chain_requires=chain_requires,
            trainer=trainer,
            tags=tags,
            line=self.line_of(r["inference"]),
            golden_dir=self.golden_dir() if compare else "",
        )
        for use_gpu in use_gpus:
            device = _device(use_gpu)
            if device is None:
                self.notes.append(f"inference device {use_gpu!r} is neither CPU nor GPU: not run")
            elif not self.full:
                self.tutorial_grid(grid, use_gpu, device)
            elif device == "cpu":
                self.cpu_grid(grid, use_gpu)
            else:
                self.gpu_grid(grid, use_gpu)
        return grid.steps

    def tutorial_grid(self, grid: _Grid, use_gpu: str, device: str) -> None:
        """Step6: use-gpu x batch size; no mkldnn, threads or precision lines."""
        r = self.roles()
        for batch in self.alternatives(r["infer_batch"]) or [""]:
            pieces: list[_Piece | str] = [grid.script, f"{self.key(r['infer_use_gpu'])}={use_gpu}", grid.model,
                      self.param(self.key(r["infer_batch"]), batch), grid.image, grid.bench]
            requires = (Requirement.GPU,) if device == "gpu" else ()
            grid.add(f"infer_{device}_bs_{batch}", self.words(pieces),
                     f"{grid.log_dir}/python_infer_{device}_batchsize_{batch}.log", requires, "fp32", (device,))

    def cpu_grid(self, grid: _Grid, use_gpu: str) -> None:
        """Full layout CPU loop: mkldnn x threads x batch x precision (Q6.1, Q6.3)."""
        r = self.roles()
        flavor = self.flavor
        mkldnns = self.alternatives(r["mkldnn"]) or [""]
        self.check_bool(r["mkldnn"], mkldnns)
        precisions = self.alternatives(r["precision"]) or [""]
        for mkldnn in mkldnns:
            if flavor.cpu_quant_needs_mkldnn and grid.quant and mkldnn == "False":
                continue
            for threads in self.alternatives(r["threads"]) or [""]:
                for batch in self.alternatives(r["infer_batch"]) or [""]:
                    for precision in precisions:
                        prec = _precision_name(precision)
                        if not self.quirks and skips_cpu_row(self.config, prec, grid.quant, grid.trainer):
                            continue  # an int8 row on a float program would be an fp32 row named int8
                        if not self.quirks and flavor.cpu_precision_flag and (
                            prec == "fp16" or (prec == "int8" and mkldnn == "False")
                        ):
                            continue  # fp16 has no CPU kernels; CPU int8 runs through oneDNN
                        gpus = f"gpus_{grid.gpu}_" if flavor.infer_log_gpu_id else ""
                        log = (f"{grid.log_dir}/python_infer_cpu_{gpus}usemkldnn_{mkldnn}_threads_{threads}"
                               f"_precision_{precision}_batchsize_{batch}.log")
                        pieces: list[_Piece | str] = [grid.script, f"{self.key(r['infer_use_gpu'])}={use_gpu}"]
                        if flavor.cpu_command_minimal:
                            pieces.append(grid.model)  # Q6.1: the 3D CPU command has only these two flags
                        else:
                            pieces += [f"{self.key(r['mkldnn'])}={mkldnn}", self.param(self.key(r["threads"]), threads)]
                            if flavor.cpu_precision_flag:
                                pieces.append(self.param(self.key(r["precision"]), precision))
                            pieces += [grid.model, self.param(self.key(r["infer_batch"]), batch), grid.image,
                                       grid.bench]
                            if flavor.cpu_infer_params1:
                                pieces.append(self.infer_param1())
                        name = f"infer_cpu_mkldnn_{mkldnn}_threads_{threads}_bs_{batch}"
                        if flavor.cpu_precision_flag or len(precisions) > 1:
                            name = f"infer_cpu_mkldnn_{mkldnn}_threads_{threads}_precision_{prec}_bs_{batch}"
                        grid.add(safe_name(name), self.words(pieces), log, (), prec, ("cpu", prec))

    def gpu_grid(self, grid: _Grid, use_gpu: str) -> None:
        """Full layout GPU loop: TensorRT x precision x batch, with the flavor's skip rules (Q6.2)."""
        r = self.roles()
        trts = self.alternatives(r["trt"]) or [""]
        self.check_bool(r["trt"], trts)
        for trt in trts:
            for precision in self.alternatives(r["precision"]) or [""]:
                prec = _precision_name(precision)
                if self.skip_gpu_combo(trt, precision, prec, grid.quant):
                    continue
                for batch in self.alternatives(r["infer_batch"]) or [""]:
                    gpus = f"gpus_{grid.gpu}_" if self.flavor.infer_log_gpu_id else ""
                    log = (f"{grid.log_dir}/python_infer_gpu_{gpus}usetrt_{trt}_precision_{precision}"
                           f"_batchsize_{batch}.log")
                    pieces: list[_Piece | str] = [grid.script, f"{self.key(r['infer_use_gpu'])}={use_gpu}",
                              self.param(self.key(r["trt"]), trt), self.param(self.key(r["precision"]), precision),
                              grid.model, self.param(self.key(r["infer_batch"]), batch), grid.image, grid.bench]
                    if self.flavor.gpu_infer_params1:
                        pieces.append(self.infer_param1())
                    requires = (Requirement.GPU, Requirement.TENSORRT) if trt == "True" else (Requirement.GPU,)
                    name = safe_name(f"infer_gpu_trt_{trt}_precision_{prec}_bs_{batch}")
                    grid.add(name, self.words(pieces), log, requires, prec, ("gpu", prec))

    def infer_param1(self) -> str:
        """cfg:51 `key:value`, when the config has that line (some end at line 50 or put a header there)."""
        index = self.roles()["infer_param1"]
        if not self.config.has(index) or self.config.at(index).header is not None:
            return ""
        return self.param(self.key(index), self.value(index))

    def skip_gpu_combo(self, trt: str, precision: str, prec: str, quant: bool) -> bool:
        """The reference skip rules for GPU inference (Q6.2), and the fixed general rule."""
        rule = self.flavor.gpu_skip if self.quirks else GpuSkip.GENERAL
        if rule is GpuSkip.PADDLECLAS:
            return precision == "True" and trt == "False"
        if rule is GpuSkip.PADDLE3D:
            if prec == "int8" and not quant:
                return True
            if prec in ("fp16", "int8") and trt == "False":
                return True
            return quant and (trt == "False" or prec == "int8")
        # fp16/int8 on GPU need TensorRT; a quantized model runs int8 only.
        if prec in ("fp16", "int8") and trt != "True":
            return True
        return quant and prec != "int8" and trt == "True"

    # ---- whole_infer / kl_quant / onnx --------------------------------------------------------------------------

    def whole_infer_chains(self) -> tuple[Chain, ...]:
        if not self.full:
            return self.tutorial_whole_infer()
        if self.flavor.whole_infer_klquant_only and self.quirks:
            return self.klquant_chains()  # Q7.1: Clas whole_infer runs only the kl_quant branch
        return self.full_whole_infer()

    def tutorial_whole_infer(self) -> tuple[Chain, ...]:
        """Q7.4: export the configured weights (cfg:24) when cfg:25 is set, then infer from cfg:20."""
        save_dir = self.value(20)
        steps: list[Step] = []
        export = self.value(25)
        stem = "norm_train"
        if export and export != "null":
            argv = self.export_argv(export, self.value(24), save_dir, self.line_of(25))
            steps.append(self.step("export", StepKind.EXPORT, argv, f"{self.out_rel}/{stem}_export.log", (), (), (),
                                   self.line_of(25), ("norm_train",)))
        steps.extend(
            self.inference_steps(
                model_dir=save_dir, image_dir=self.value(31), quant=False, gpu="0", needs=steps[-1].name if steps else "",
                log_dir=self.out_rel, env=(), chain_requires=(),
                trainer="norm_train", tags=("norm_train",),
            )
        )
        return (Chain(id="whole_infer", model=self.model_name, mode=self.mode, steps=_drop_empty_needs(steps)),)

    def full_whole_infer(self) -> tuple[Chain, ...]:
        """Export the configured pretrained model (cfg:37) with cfg:38 when that is a script, then infer."""
        r = self.roles()
        models = self.alternatives(r["infer_model"])
        exports = self.alternatives(r["infer_export"])
        quant_flag = self.value(r["infer_quant"])
        chains: list[Chain] = []
        for position, infer_model in enumerate(models):
            if not infer_model or infer_model == "null":
                self.notes.append(f"line {self.line_of(r['infer_model'])}: infer_model is null: whole_infer runs nothing")
                continue
            export = exports[position] if position < len(exports) else ""
            chain_id = "whole_infer" if len(models) == 1 else f"whole_infer_{position}"
            steps: list[Step] = []
            model_dir = infer_model
            beside = self.flavor.whole_infer_export_beside_weights and self.quirks
            if beside:
                runs_export = export not in ("null", "")  # Q7.5: a missing entry fails the test, so no export
            else:
                runs_export = export not in ("null", "True", "False", "")
            if runs_export:
                if beside:
                    model_dir = posixpath.dirname(infer_model.rstrip("/"))  # Q7.5
                    argv = (self.python, *self.words([_Piece(export, self.line_of(r["infer_export"])),
                                                       self.param(self.value(r["export_weight"]), infer_model),
                                                       self.key(r["save_infer"]), model_dir]))
                else:
                    model_dir = f"{self.out}/{chain_id}"
                    argv = self.export_argv(export, infer_model, model_dir, self.line_of(r["infer_export"]))
                steps.append(self.step("export", StepKind.EXPORT, argv, f"{self.out_rel}/{chain_id}_export.log", (),
                                       (), (), self.line_of(r["infer_export"]), ("norm_train",)))
            if not model_dir.startswith(("/", "{")) and self.flavor.infer_cwd != ".":
                # Inference runs from deploy/ (Q5.10): a repo-relative model dir must be seen from there.
                model_dir = posixpath.relpath(posixpath.normpath(model_dir), self.flavor.infer_cwd)
            steps.extend(
                self.inference_steps(
                    model_dir=model_dir, image_dir=self.value(r["infer_img"]), quant=quant_flag == "True", gpu="0",
                    needs=steps[-1].name if steps else "", log_dir=self.infer_log_dir(f"{self.out_rel}/{chain_id}"),
                    env=(), chain_requires=(), trainer="norm_train", tags=("norm_train",),
                )
            )
            chains.append(Chain(id=chain_id, model=self.model_name, mode=self.mode, steps=_drop_empty_needs(steps)))
        return tuple(chains)

    def klquant_chains(self) -> tuple[Chain, ...]:
        """Clas kl_quant: PTQ of the configured inference model, then int8 inference from deploy/ (Q7.1, Q7.2)."""
        r = self.roles()
        kl = self.value(r["kl_quant"])
        if not kl or kl in ("null", "False"):
            self.notes.append(f"line {self.line_of(r['kl_quant'])}: kl_quant is null: nothing to run in {self.mode}")
            return ()
        infer_model = self.value(r["infer_model"])
        argv = (self.python, *self.words([self.piece(r["kl_quant"])], ifs_pipe=False))
        steps = [self.step("kl_quant", StepKind.KL_QUANT, argv, f"{self.out_rel}/export.log", (), (), (),
                           self.line_of(r["kl_quant"]), ("kl_quant",), cwd=".")]
        quant_dir = f"{infer_model}/quant_post_static_model"
        # Q7.2: the script then does `cd <infer_model>/quant_post_static_model; cd ../../deploy`. The first cd works
        # only where kl_quant wrote that folder (its save_inference_dir) inside the repository; otherwise both fail
        # and inference runs from the repo root.
        saved = [w.split("=", 1)[1] for w in argv if w.split("=", 1)[0].endswith("save_inference_dir") and "=" in w]
        target = posixpath.normpath(infer_model)
        written = not saved or any(posixpath.normpath(d) == target for d in saved)
        if written and not target.startswith(".."):
            cwd = posixpath.normpath(posixpath.join(quant_dir, "../../deploy"))
        else:
            cwd = "."
        model_dir = f"../{quant_dir}"
        if not self.quirks:
            cwd = self.flavor.infer_cwd
            model_dir = quant_dir if cwd == "." else posixpath.relpath(posixpath.normpath(quant_dir), cwd)
        for step in self.inference_steps(
            model_dir=model_dir, image_dir=self.value(r["infer_img"]), quant=True, gpu="0", needs="kl_quant",
            log_dir=self.out_rel if self.quirks else f"{self.out_rel}/kl_quant", env=(),
            chain_requires=(), trainer="kl_quant", tags=("kl_quant",),
        ):
            command = dataclasses.replace(step.command, cwd=cwd) if step.kind is StepKind.INFER else step.command
            steps.append(dataclasses.replace(step, command=command))
        return (Chain(id="kl_quant", model=self.model_name, mode=self.mode, steps=tuple(steps)),)

    def klquant_step(self, model_dir: str, chain_dir_rel: str, placement: _Placement,
                     tags: tuple[str, ...]) -> Step | None:
        """klquant_whole_infer after training: PTQ the exported model into <model_dir>/quant_post_static_model."""
        r = self.roles()
        kl = self.value(r["kl_quant"])
        if not kl or kl in ("null", "False"):
            self.notes.append(f"line {self.line_of(r['kl_quant'])}: kl_quant is null: no PTQ step")
            return None
        pieces: list[_Piece | str] = [self.piece(r["kl_quant"]), self.param(self.key(r["infer_model_key"]), model_dir),
                  self.param(self.key(r["save_infer"]), f"{model_dir}/quant_post_static_model")]
        argv = (self.python, *self.words(pieces))
        return self.step("kl_quant", StepKind.KL_QUANT, argv, f"{chain_dir_rel}_kl_quant.log", placement.step_env,
                         ("export",), placement.requires, self.line_of(r["kl_quant"]), (*tags, "kl_quant"))

    def paddle2onnx_steps(self, model_dir: str, chain_dir_rel: str, placement: _Placement,
                          tags: tuple[str, ...]) -> list[Step]:
        """paddle2onnx_infer: convert the exported model and run it with onnxruntime (harness_params line)."""
        r = self.roles()
        for entry in self.config.section("harness_params"):
            if entry.key == "paddle2onnx" and entry.value not in ("", "null"):
                pieces: list[_Piece | str] = [_Piece(entry.value, entry.line), self.param(self.key(r["infer_model_key"]), model_dir),
                          self.param(self.key(r["infer_img"]), self.train_image_dir())]
                argv = (self.python, *self.words(pieces))
                return [self.step("paddle2onnx", StepKind.PADDLE2ONNX, argv, f"{chain_dir_rel}_paddle2onnx.log",
                                  placement.step_env, ("export",), placement.requires, entry.line,
                                  (*tags, "onnx"))]
        self.notes.append("no paddle2onnx line in harness_params: paddle2onnx_infer runs train and export only")
        return []

    # ---- staged training (format extension) -------------------------------------------------------------------

    def stages(self) -> tuple[Entry, ...]:
        section = self.config.section("stage_params")
        if not section:
            return ()
        listing = next((e for e in section if e.key == "stages"), None)
        if listing is None:
            raise ConfigError(self.config.path, section[0].line, "stage_params needs a 'stages:a|b|c' line")
        by_key = {e.key: e for e in section}
        out: list[Entry] = []
        for name in (s.strip() for s in listing.value.split("|")):
            if name not in by_key:
                raise ConfigError(self.config.path, listing.line, f"stage {name!r} has no '{name}:' line")
            out.append(by_key[name])
        return tuple(out)

    def staged_train_steps(self, stages: tuple[Entry, ...], save_log: str, chain_dir_rel: str,
                           placement: _Placement, use_gpu_param: str,
                           tags: tuple[str, ...]) -> tuple[list[Step], str]:
        r = self.roles()
        steps: list[Step] = []
        previous = ""
        train_model_name = self.value(r["train_model_name"])
        for stage in stages:
            pieces: list[_Piece | str] = [_Piece(stage.value, stage.line), use_gpu_param,
                                          self.param(self.key(r["save_model"]), f"{save_log}/{stage.key}"),
                                          self.param(self.key(r["epoch"]), self.epochs()),
                                          self.param(self.key(r["batch"]), self.train_batch())]
            if previous:
                pieces.append(self.param(self.key(r["pretrain"]), f"{save_log}/{previous}/{train_model_name}"))
            argv = (self.python, *placement.launcher, *self.words(pieces))
            needs = (steps[-1].name,) if steps else ()
            steps.append(self.step(f"train_{stage.key}", StepKind.TRAIN, argv, f"{chain_dir_rel}_{stage.key}.log",
                                   placement.train_env, needs, placement.requires, stage.line, (*tags, stage.key)))
            previous = stage.key
        return steps, previous

    # ---- small helpers -------------------------------------------------------------------------------------------

    def golden_dir(self) -> str:
        """Where compare steps find goldens; none in quirks mode and none for modes goldens do not cover.

        Goldens describe fixed weights, so only whole_infer (the shipped checkpoints) compares with them;
        chains that train get portable checks instead (harness/check_steps.py).
        """
        if self.quirks or self.mode not in GOLDEN_MODES:
            return ""
        for entry in self.config.section("harness_params"):
            if entry.key == "golden_dir" and entry.value not in ("", "null"):
                return entry.value.rstrip("/")
        return ""

    def step(
        self,
        name: str,
        kind: StepKind,
        argv: tuple[str, ...],
        log: str,
        env: tuple[tuple[str, str | None], ...],
        needs: tuple[str, ...],
        requires: tuple[Requirement, ...],
        line: int,
        tags: tuple[str, ...],
        *,
        cwd: str | None = None,
    ) -> Step:
        if cwd is None:
            cwd = self.flavor.infer_cwd if kind is StepKind.INFER else "."
        command = Command(argv=argv, cwd=cwd, env=env, timeout_s=self.options.timeout_s, log_path=log)
        return Step(name=name, kind=kind, command=command, needs=tuple(n for n in needs if n), requires=requires,
                    line=line, tags=tuple(dict.fromkeys((str(kind), *tags))))


@dataclasses.dataclass(slots=True, kw_only=True)
class _Grid:
    """Collects one model folder's inference steps: unique names, Q6.1 de-duplication and compare steps."""

    builder: _Builder
    script: _Piece
    model: str
    image: str
    bench: str
    quant: bool
    gpu: str
    needs: str
    log_dir: str
    env: tuple[tuple[str, str | None], ...]
    chain_requires: tuple[Requirement, ...]
    trainer: str
    tags: tuple[str, ...]
    line: int
    golden_dir: str
    steps: list[Step] = dataclasses.field(default_factory=list)
    seen: set[tuple[str, ...]] = dataclasses.field(default_factory=set)

    def add(self, name: str, words: tuple[str, ...], log: str, requires: tuple[Requirement, ...], precision: str,
            tags: tuple[str, ...]) -> None:
        builder = self.builder
        argv = (builder.python, *words)
        if not builder.quirks:
            if argv in self.seen:
                return  # Q6.1: identical commands (the CPU precision loop) run once
            self.seen.add(argv)
        unique, count = name, 2
        while any(step.name == unique for step in self.steps):
            unique, count = f"{name}_{count}", count + 1
        all_requires = tuple(dict.fromkeys((*self.chain_requires, *requires)))
        step_tags = (*self.tags, *tags)
        env = self.env
        if Requirement.GPU in requires:
            # A CPU chain hides the GPUs from training; its GPU inference steps must see them again.
            env = tuple((k, v) for k, v in env if not (k == "CUDA_VISIBLE_DEVICES" and v == ""))
        self.steps.append(builder.step(unique, StepKind.INFER, argv, log, env, (self.needs,), all_requires,
                                       self.line, step_tags))
        if self.golden_dir:
            label = golden_label(builder.mode, self.trainer)
            golden = f"{self.golden_dir}/{label}_{precision}.txt"
            compare = (builder.python, "-m", "harness.golden", "--log", log, "--golden", golden,
                       "--precision", precision)
            self.steps.append(builder.step(f"compare_{unique}", StepKind.COMPARE, compare,
                                           f"{log.removesuffix('.log')}_compare.log", (), (unique,), all_requires,
                                           self.line, step_tags, cwd="."))


def _drop_empty_needs(steps: list[Step]) -> tuple[Step, ...]:
    return tuple(dataclasses.replace(s, needs=tuple(n for n in s.needs if n)) for s in steps)


def _device(use_gpu: str) -> str | None:
    if use_gpu in ("False", "cpu", "false"):
        return "cpu"
    if use_gpu in ("True", "gpu", "true"):
        return "gpu"
    return None


def _precision_name(precision: str) -> str:
    """Precision as a name: PaddleClas' use_fp16 True/False become fp16/fp32."""
    return {"True": "fp16", "False": "fp32", "": "fp32", "null": "fp32"}.get(precision, precision)


def _is_rec_model(model_name: str) -> bool:
    return "GeneralRecognition" in model_name or "MetaBIN_ResNet50" in model_name


def _tags(trainer: str, autocast: str, quant: bool, requires: tuple[Requirement, ...]) -> tuple[str, ...]:
    tags = [trainer]
    if quant or "pact" in trainer:
        tags.append("pact")
    if "amp" in trainer or autocast in ("amp", "fp16", "O1", "O2"):
        tags.append("amp")
    if Requirement.GPU in requires:
        tags.append("gpu")
    return tuple(tags)


def _near(word: str, target: str) -> bool:
    """True when ``word`` is one edit (or one swap) away from ``target``: a typo, not another word."""
    if word == target or abs(len(word) - len(target)) > 1:
        return False
    if len(word) == len(target):
        diffs = [i for i, (a, b) in enumerate(zip(word, target, strict=True)) if a != b]
        if len(diffs) == 1:
            return True
        return len(diffs) == 2 and diffs[1] == diffs[0] + 1 and word[diffs[0]] == target[diffs[1]] and word[
            diffs[1]] == target[diffs[0]]
    short, long_ = (word, target) if len(word) < len(target) else (target, word)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))
