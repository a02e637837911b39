"""Train, eval and export commands: trainer dispatch, autocast words, per-mode values and argument order."""

from __future__ import annotations

from harness.config import Entry
from harness.errors import ConfigError
from harness.flavors import Autocast, TrainArgs
from harness.planning.context import PlanContext, param
from harness.planning.placement import Placement
from harness.planning.roles import Piece
from harness.steps import Step, StepKind

__all__ = [
    "autocast_name",
    "epochs",
    "export_argv",
    "is_rec_model",
    "resolve_trainer",
    "stages",
    "staged_train_steps",
    "train_argv",
    "train_batch",
    "train_image_dir",
    "weights_path",
]

_FUSED_ATTN_MODELS = ("CLIP_vit_base_patch16_224", "SwinTransformer_base_patch4_window7_224_ampo2_ultra")


def is_rec_model(model_name: str) -> bool:
    return "GeneralRecognition" in model_name or "MetaBIN_ResNet50" in model_name


def resolve_trainer(ctx: PlanContext, trainer: str) -> tuple[str, str, bool, int]:
    """(train script words, export script words, quantized?, line) for a trainer name (Q5.1, Q5.2)."""
    r = ctx.roles
    if not ctx.full:
        # Q5.1: Step6 has one trainer line and uses it for every trainer name.
        return r.norm_train.value, r.norm_export.value, trainer == "pact_train", r.norm_train.line
    if ctx.flavor.trainer_keys:
        table = ((r.pact_train, r.quant_export, True), (r.fpgm_train, r.fpgm_export, False),
                 (r.distill_train, r.distill_export, False))
        for train_role, export_role, quant in table:
            if trainer == train_role.key:
                return train_role.value, export_role.value, quant, train_role.line
        if trainer == r.to_static.key:
            return f"{r.norm_train.value}  {r.to_static.value}", r.norm_export.value, False, r.to_static.line
        if trainer == r.trainer2.key:
            return r.trainer2.value, r.export2.value, False, r.trainer2.line
        return r.norm_train.value, r.norm_export.value, False, r.norm_train.line
    # Paddle3D: norm_train, or to_static from the line after the to_static benchmark header (Q5.2).
    extra = r.to_static_benchmark
    if extra.index and trainer == extra.key:
        return f"{r.norm_train.value}  {extra.value}", r.norm_export.value, False, extra.line
    return r.norm_train.value, r.norm_export.value, False, r.norm_train.line


def autocast_words(ctx: PlanContext, autocast: str) -> str:
    style = ctx.flavor.autocast
    if style is Autocast.TRAINER_NAME:
        return ""
    if style is Autocast.PADDLECLAS:
        level = {"fp16": "O2", "amp": "O1"}.get(autocast)
        if level:
            return ("-o AMP.use_amp=True -o AMP.scale_loss=128 -o AMP.use_dynamic_loss_scaling=True "
                    f"-o AMP.level={level}")
        # Q3.3: null adds -o AMP.use_amp=False, which switches off an amp_train config's own AMP; fixed: nothing.
        return "-o AMP.use_amp=False" if ctx.quirks else ""
    if style is Autocast.PADDLE3D:
        return "--amp --amp_level=O2" if autocast == "fp16" else ""
    return param(ctx.roles.autocast.key, autocast)


def autocast_name(ctx: PlanContext, autocast: str, trainer: str) -> str:
    if ctx.flavor.autocast is Autocast.TRAINER_NAME:
        return "True" if trainer == "amp_train" else "False"
    return autocast


def epochs(ctx: PlanContext) -> str:
    use_mode = not (ctx.quirks and ctx.flavor.epochs_ignore_mode)  # Q4.3
    value = ctx.mode_value(ctx.roles.epoch, use_mode=use_mode)
    if ctx.flavor.default_epochs and not value:
        value = ctx.flavor.default_epochs
        if ctx.mode == "benchmark_train" or ctx.roles.use_gpu_train.value == "npu":
            value = "1"
    return value


def train_batch(ctx: PlanContext) -> str:
    if ctx.quirks and ctx.flavor.train_batch_raw:
        return ctx.roles.batch.value  # Q4.4: raw value, no mode parsing
    return ctx.mode_value(ctx.roles.batch)


def weights_path(ctx: PlanContext, save_log: str) -> str:
    train_model_name = ctx.roles.train_model_name.value
    if ctx.flavor.weights_in_model_subdir:
        sub = "RecModel" if is_rec_model(ctx.model_name) else ctx.model_name  # Q5.6
        return f"{save_log}/{sub}/{train_model_name}"
    return f"{save_log}/{train_model_name}"


def train_image_dir(ctx: PlanContext) -> str:
    if not ctx.full:
        # Q5.9: Step6 passes ${train_infer_img_dir}, which it never defines, so no image flag is given.
        return "" if ctx.quirks else ctx.roles.infer_img.value
    if ctx.flavor.infer_image_from_train_line:
        return ctx.roles.train_infer_img.value
    return ctx.roles.infer_img.value


def train_argv(ctx: PlanContext, script: Piece, autocast: str, placement: Placement, save_log: str,
               use_gpu_param: str) -> tuple[str, ...]:
    """The train command: the flavor's argument order (Q5.3, Q5.4) and its added words (Q3.1, Q3.2, Q3.5)."""
    r = ctx.roles
    flavor = ctx.flavor
    save = param(r.save_model.key, save_log)
    epoch = param(r.epoch.key, epochs(ctx))
    pretrain = param(r.pretrain.key, r.pretrain.value)
    batch = param(r.batch.key, train_batch(ctx))
    pieces: list[Piece | str]
    if not ctx.full:
        pieces = [script, save, epoch, pretrain, batch]
        return (ctx.python, *placement.launcher, *ctx.words(pieces))
    param1 = param(r.param1.key, r.param1.value)
    amp = autocast_words(ctx, autocast)
    if flavor.train_args in (TrainArgs.PADDLE3D, TrainArgs.PADDLEGAN):
        if ctx.quirks and placement.multi and not placement.multi_node_order and flavor.train_args is TrainArgs.PADDLE3D:
            # Q5.3: the 3D multi-GPU command drops save_model and repeats train_param1.
            pieces = [script, param1, epoch, pretrain, batch, amp, param1]
        elif ctx.quirks and placement.multi_node_order:
            pieces = [script, save, pretrain, epoch, batch, amp, param1]
        else:
            pieces = [script, save, epoch, pretrain, batch, amp, param1]
    elif placement.multi_node_order and ctx.quirks:
        pieces = [script, use_gpu_param, save, pretrain, epoch, amp, batch, param1]
    else:
        pieces = [script, use_gpu_param, save, epoch, pretrain, amp, batch, param1]
    if flavor.print_mem_info:
        pieces.append("-o Global.print_mem_info=True")  # Q3.1
        if placement.multi:
            pieces.append("-o Global.log_ranks=0,1,2,3,4,5,6,7")  # Q3.2
    if flavor.autocast is Autocast.PADDLECLAS and autocast in ("amp", "fp16") and any(
        name in ctx.model_name for name in _FUSED_ATTN_MODELS
    ):
        pieces.append("-o Arch.use_fused_attn=True -o Arch.use_fused_linear=True")  # Q3.5
    return (ctx.python, *placement.launcher, *ctx.words(pieces))


def export_argv(ctx: PlanContext, run_export: str, weights: str, save_dir: str, line: int) -> tuple[str, ...]:
    save_key = ctx.roles.save_infer.key
    weight_key = ctx.roles.export_weight.key
    if ctx.flavor.export_weight_positional:
        # Q5.7 (3D): the weights are a bare argument and the save dir is "<key> <dir>".
        return (ctx.python, *ctx.words([Piece(run_export, line), weights, save_key, save_dir]))
    pieces: list[Piece | str] = [Piece(run_export, line), param(weight_key, weights) if weights else "",
                                 param(save_key, save_dir)]
    return (ctx.python, *ctx.words(pieces))


# ---- staged training (format extension) ---------------------------------------------------------------------


def stages(ctx: PlanContext) -> tuple[Entry, ...]:
    section = ctx.config.section("stage_params")
    if not section:
        return ()
    listing = next((e for e in section if e.key == "stages"), None)
    if listing is None:
        raise ConfigError(ctx.config.path, section[0].line, "stage_params needs a 'stages:a|b|c' line")
    by_key = {e.key: e for e in section}
    out: list[Entry] = []
    for name in (s.strip() for s in listing.value.split("|")):
        if name not in by_key:
            raise ConfigError(ctx.config.path, listing.line, f"stage {name!r} has no '{name}:' line")
        out.append(by_key[name])
    return tuple(out)


def staged_train_steps(ctx: PlanContext, staged: tuple[Entry, ...], save_log: str, chain_dir_rel: str,
                       placement: Placement, use_gpu_param: str, tags: tuple[str, ...]) -> tuple[list[Step], str]:
    """One train step per stage; each stage starts from the previous stage's weights."""
    r = ctx.roles
    steps: list[Step] = []
    previous = ""
    for stage in staged:
        pieces: list[Piece | str] = [Piece(stage.value, stage.line), use_gpu_param,
                                     param(r.save_model.key, f"{save_log}/{stage.key}"),
                                     param(r.epoch.key, epochs(ctx)), param(r.batch.key, train_batch(ctx))]
        if previous:
            pieces.append(param(r.pretrain.key, f"{save_log}/{previous}/{r.train_model_name.value}"))
        argv = (ctx.python, *placement.launcher, *ctx.words(pieces))
        needs = (steps[-1].name,) if steps else ()
        steps.append(ctx.step(f"train_{stage.key}", StepKind.TRAIN, argv, f"{chain_dir_rel}_{stage.key}.log",
                              placement.train_env, needs, placement.requires, stage.line, (*tags, stage.key)))
        previous = stage.key
    return steps, previous
