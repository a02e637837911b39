"""The typed role view: a layout's line roles resolved once into values (role -> key, value, line)."""

from __future__ import annotations

import dataclasses

from harness.config import Layout, TipcConfig

__all__ = ["ROLE_MAPS", "Piece", "Role", "RoleView", "resolve_roles"]


@dataclasses.dataclass(frozen=True, slots=True)
class Piece:
    """A fragment of a command line and the config line it comes from (for quoting errors)."""

    text: str
    line: int = 0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Role:
    """One config line as the planner reads it. An absent line has index 0 and empty key and value."""

    index: int = 0  # logical line (1-based), 0 when the config has no such line
    key: str = ""
    value: str = ""  # Q4.6: with --quirks only the text between the 1st and 2nd ':'
    line: int = 0  # physical line, for error messages
    items: tuple[str, ...] = ()  # the value's '|' alternatives, stripped
    field: str = ""  # the text between the 1st and 2nd ':' (what every script's per-mode parser reads)

    @property
    def piece(self) -> Piece:
        return Piece(self.value, self.line)


_ABSENT = Role()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RoleView:
    """Every role the planner reads. A role the layout does not have is an absent Role."""

    model_name: Role = _ABSENT
    python: Role = _ABSENT
    gpu_list: Role = _ABSENT
    use_gpu_train: Role = _ABSENT
    autocast: Role = _ABSENT
    epoch: Role = _ABSENT
    save_model: Role = _ABSENT
    batch: Role = _ABSENT
    pretrain: Role = _ABSENT
    train_model_name: Role = _ABSENT
    train_infer_img: Role = _ABSENT
    param1: Role = _ABSENT
    trainer_list: Role = _ABSENT
    norm_train: Role = _ABSENT
    pact_train: Role = _ABSENT
    fpgm_train: Role = _ABSENT
    distill_train: Role = _ABSENT
    to_static: Role = _ABSENT
    trainer1: Role = _ABSENT  # PaddleDetection: trainer_key1 (cfg:20), exported by export1 (cfg:34)
    trainer2: Role = _ABSENT
    to_static_benchmark: Role = _ABSENT  # Paddle3D: the line after the to_static benchmark header (Q5.2)
    eval: Role = _ABSENT
    eval_param1: Role = _ABSENT
    save_infer: Role = _ABSENT
    export_weight: Role = _ABSENT
    norm_export: Role = _ABSENT
    quant_export: Role = _ABSENT
    fpgm_export: Role = _ABSENT
    distill_export: Role = _ABSENT
    kl_quant: Role = _ABSENT
    export1: Role = _ABSENT
    export2: Role = _ABSENT
    inference_dir: Role = _ABSENT
    infer_model: Role = _ABSENT
    infer_mode: Role = _ABSENT  # PaddleDetection whole_infer: norm|pact|fpgm|distill|kl_quant (cfg:38)
    infer_export: Role = _ABSENT
    infer_quant: Role = _ABSENT
    inference: Role = _ABSENT
    infer_use_gpu: Role = _ABSENT
    mkldnn: Role = _ABSENT
    threads: Role = _ABSENT
    infer_batch: Role = _ABSENT
    trt: Role = _ABSENT
    precision: Role = _ABSENT
    infer_model_key: Role = _ABSENT
    infer_img: Role = _ABSENT
    save_log_key: Role = _ABSENT
    benchmark: Role = _ABSENT
    infer_param2: Role = _ABSENT  # PaddleSeg: cfg:52
    infer_param1: Role = _ABSENT  # cfg:51 of the full layout, absent when the config ends or has a header there


# role -> logical line, per layout (test_tipc/docs/config_format.md)
ROLE_MAPS: dict[Layout, dict[str, int]] = {
    Layout.TUTORIAL: {
        "model_name": 2, "python": 3, "gpu_list": 4, "use_gpu_train": 5, "epoch": 6, "save_model": 7, "batch": 8,
        "pretrain": 9, "train_model_name": 10, "trainer_list": 13, "norm_train": 14, "eval": 17, "save_infer": 20,
        "export_weight": 21, "norm_export": 22, "infer_model": 24, "infer_export": 25, "inference": 27,
        "infer_use_gpu": 28, "infer_batch": 29, "infer_model_key": 30, "infer_img": 31, "benchmark": 32,
    },
    Layout.FULL: {
        "model_name": 2, "python": 3, "gpu_list": 4, "use_gpu_train": 5, "autocast": 6, "epoch": 7, "save_model": 8,
        "batch": 9, "pretrain": 10, "train_model_name": 11, "train_infer_img": 12, "param1": 13, "trainer_list": 15,
        "norm_train": 16, "pact_train": 17, "fpgm_train": 18, "distill_train": 19, "to_static": 20, "trainer2": 21,
        "eval": 24, "eval_param1": 25, "save_infer": 28, "export_weight": 29, "norm_export": 30,
        "quant_export": 31, "fpgm_export": 32, "distill_export": 33, "kl_quant": 34, "export2": 35,
        "inference_dir": 36, "infer_model": 37, "infer_export": 38, "infer_quant": 39, "inference": 40,
        "infer_use_gpu": 41, "mkldnn": 42, "threads": 43, "infer_batch": 44, "trt": 45, "precision": 46,
        "infer_model_key": 47, "infer_img": 48, "save_log_key": 49, "benchmark": 50, "infer_param1": 51,
    },
}


def _role(config: TipcConfig, index: int, *, quirks: bool) -> Role:
    if not config.has(index):
        return _ABSENT
    entry = config.at(index)
    value = entry.bash_value if quirks else entry.value
    items = tuple(item.strip() for item in value.split("|")) if value else ()
    return Role(index=index, key=entry.key, value=value, line=entry.line, items=items, field=entry.bash_value)


def resolve_roles(config: TipcConfig, *, quirks: bool, overrides: tuple[tuple[str, int], ...] = ()) -> RoleView:
    """Read every role of the config's layout (with a flavor's moved lines) once.

    ``quirks`` selects the value the reference scripts see: only the field between the 1st and 2nd ':' (Q4.6).
    """
    mapping = {**ROLE_MAPS.get(config.layout, {}), **dict(overrides)}
    roles = {name: _role(config, index, quirks=quirks) for name, index in mapping.items() if index}
    if "infer_param1" in roles and roles["infer_param1"].index and config.at(roles["infer_param1"].index).header:
        roles["infer_param1"] = _ABSENT
    start = config.section_start("to_static_train_benchmark_params")
    if start is not None:
        roles["to_static_benchmark"] = _role(config, start + 1, quirks=quirks)
    return RoleView(**roles)
