"""Mode chains: which chains a mode runs (train x placement x autocast x trainer, whole_infer, kl_quant, onnx)."""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable

from harness.flavors import TrainUseGpu
from harness.planning.commands import (
    autocast_name,
    export_argv,
    is_rec_model,
    resolve_trainer,
    staged_train_steps,
    stages,
    train_argv,
    train_image_dir,
    weights_path,
)
from harness.planning.context import PlanContext, param, safe_name
from harness.planning.grid import InferTarget, inference_steps
from harness.planning.placement import Placement, place
from harness.planning.repos import detection, ocr, seg, video
from harness.planning.roles import Piece
from harness.steps import Chain, Requirement, Step, StepKind

__all__ = ["SCRIPT_MODELS", "build_chains"]

# flavor.script -> the repository script model that builds its chains ("tipc" is this module's own)
SCRIPT_MODELS: dict[str, Callable[[PlanContext], tuple[Chain, ...]]] = {
    "paddledetection": detection.chains,
    "paddleseg": seg.chains,
    "paddlevideo": video.chains,
    "paddleocr": ocr.chains,
}


def build_chains(ctx: PlanContext) -> tuple[Chain, ...]:
    """The chains of ctx.mode, in the order the reference script runs them."""
    script_model = SCRIPT_MODELS.get(ctx.flavor.script)
    if script_model is not None:
        return script_model(ctx)
    if ctx.mode == "whole_infer":
        if not ctx.full:
            return _tutorial_whole_infer(ctx)
        if ctx.flavor.whole_infer_klquant_only and ctx.quirks:
            return _klquant_chains(ctx)  # Q7.1: Clas whole_infer runs only the kl_quant branch
        return _full_whole_infer(ctx)
    if ctx.mode == "klquant_whole_infer" and ctx.full and not ctx.quirks:
        if not ctx.flavor.klquant_after_training:
            return _klquant_chains(ctx)
    if ctx.mode == "paddle2onnx_infer" and ctx.quirks:
        return ()
    return _train_chains(ctx)


def _chain(ctx: PlanContext, chain_id: str, steps: list[Step]) -> Chain:
    return Chain(id=chain_id, model=ctx.model_name, mode=ctx.mode, steps=tuple(steps))


def _train_chains(ctx: PlanContext) -> tuple[Chain, ...]:
    r = ctx.roles
    gpu_list = r.gpu_list.items
    if not gpu_list:
        raise ctx.error(r.gpu_list, "gpu_list is empty")
    autocasts = r.autocast.items if ctx.full else ("",)
    trainers = r.trainer_list.items
    if not trainers:
        raise ctx.error(r.trainer_list, "trainer list is empty")
    chains: list[Chain] = []
    for position, gpu_entry in enumerate(gpu_list):
        placement = place(ctx, gpu_entry, r.gpu_list)
        use_gpu_value = _train_use_gpu_value(ctx, position)
        for autocast in autocasts:
            for trainer in trainers:
                chain = _train_chain(ctx, trainer, autocast, placement, use_gpu_value)
                if chain is not None:
                    chains.append(chain)
    return tuple(chains)


def _train_use_gpu_value(ctx: PlanContext, position: int) -> str:
    mode = ctx.flavor.train_use_gpu
    if mode is TrainUseGpu.UNUSED:
        return ""
    values = ctx.roles.use_gpu_train.items
    if mode is TrainUseGpu.WHOLE_VALUE and (ctx.quirks or len(values) <= 1):
        return ctx.roles.use_gpu_train.value  # Q3.4: the whole cfg:5 value, whatever the gpu_list entry
    return values[position] if position < len(values) else (values[-1] if values else "")


def _train_chain(ctx: PlanContext, trainer: str, autocast: str, placement: Placement,
                 use_gpu_value: str) -> Chain | None:
    """train -> eval -> export -> (kl_quant | paddle2onnx) -> inference grid, for one trainer and placement."""
    r = ctx.roles
    flavor = ctx.flavor
    run_train, run_export, quant, train_line = resolve_trainer(ctx, trainer)
    if run_train == "null" or not run_train:
        return None
    staged = stages(ctx) if trainer == "staged_train" and not ctx.quirks else ()
    stem = f"{trainer}_gpus_{placement.gpu}_autocast_{autocast_name(ctx, autocast, trainer)}_nodes_{placement.nodes}"
    # Paddle3D names its train folder without "_nodes_1" (its logs keep it).
    folder = stem if flavor.folder_nodes_suffix or placement.nodes > 1 else stem.rsplit("_nodes_", 1)[0]
    save_log = f"{ctx.out}/{folder}"
    if ctx.quirks and flavor.save_log_dot_log:
        save_log += ".log"  # Q5.5: Step6 names the train output folder "<stem>.log"
    chain_id = safe_name(stem)
    chain_dir_rel = f"{ctx.out_rel}/{folder}"
    use_gpu_param = param(r.use_gpu_train.key, use_gpu_value) if use_gpu_value else ""
    steps: list[Step] = []
    tags = _tags(trainer, autocast, quant, placement.requires)
    if staged:
        stage_steps, last = staged_train_steps(ctx, staged, save_log, chain_dir_rel, placement, use_gpu_param, tags)
        steps.extend(stage_steps)
        weights = f"{save_log}/{last}/{r.train_model_name.value}"
    else:
        argv = train_argv(ctx, Piece(run_train, train_line), autocast, placement, save_log, use_gpu_param)
        steps.append(ctx.step("train", StepKind.TRAIN, argv, f"{ctx.out_rel}/{stem}.log", placement.train_env,
                              (), placement.requires, train_line, tags))
        weights = weights_path(ctx, save_log)
    train_name = steps[-1].name
    steps.extend(_eval_steps(ctx, weights, use_gpu_param, stem, placement, train_name, tags))
    if run_export == "null" or not run_export:
        return _chain(ctx, chain_id, steps)
    if ctx.quirks and flavor.weights_in_model_subdir and is_rec_model(ctx.model_name):
        export_weights = ""  # Q5.7: the GeneralRecognition/MetaBIN branch never sets the export weights
    else:
        export_weights = weights
    argv = export_argv(ctx, run_export, export_weights, save_log, r.norm_export.line)
    steps.append(ctx.step("export", StepKind.EXPORT, argv, f"{ctx.out_rel}/{stem}_export.log", placement.step_env,
                          (train_name,), placement.requires, r.norm_export.line, tags))
    model_dir = save_log
    if flavor.inference_dir_line and r.inference_dir.value not in ("", "null", "##"):
        model_dir = f"{save_log}/{r.inference_dir.value}"  # Q5.8
    if ctx.mode == "klquant_whole_infer" and ctx.full and not ctx.quirks:
        kl = _klquant_step(ctx, model_dir, chain_dir_rel, placement, tags)
        if kl is None:
            return _chain(ctx, chain_id, steps)
        steps.append(kl)
        model_dir = f"{model_dir}/quant_post_static_model"
        quant = True
    if ctx.mode == "paddle2onnx_infer" and ctx.full and not ctx.quirks:
        steps.extend(_paddle2onnx_steps(ctx, model_dir, chain_dir_rel, placement, tags))
        return _chain(ctx, chain_id, steps)
    target = InferTarget(
        model_dir=model_dir, image_dir=train_image_dir(ctx), quant=quant, gpu=placement.gpu, needs=steps[-1].name,
        log_dir=_infer_log_dir(ctx, chain_dir_rel), env=placement.step_env, chain_requires=placement.requires,
        trainer=trainer, tags=tags,
        compare=placement.gpu == "-1",  # Goldens are CPU training results; GPU training does not reproduce them.
    )
    steps.extend(inference_steps(ctx, target))
    return _chain(ctx, chain_id, steps)


def _eval_steps(ctx: PlanContext, weights: str, use_gpu_param: str, stem: str, placement: Placement,
                train_name: str, tags: tuple[str, ...]) -> list[Step]:
    r = ctx.roles
    if r.eval.value in ("null", ""):
        return []
    pieces: list[Piece | str] = [r.eval.piece, param(r.pretrain.key, weights)]
    if ctx.flavor.train_use_gpu is not TrainUseGpu.UNUSED:
        pieces.append(use_gpu_param)
    if ctx.full:
        pieces.append(param(r.eval_param1.key, r.eval_param1.value))
    argv = (ctx.python, *ctx.words(pieces))
    return [ctx.step("eval", StepKind.EVAL, argv, f"{ctx.out_rel}/{stem}_eval.log", placement.step_env,
                     (train_name,), placement.requires, r.eval.line, tags)]


def _infer_log_dir(ctx: PlanContext, chain_dir_rel: str) -> str:
    # The scripts write every chain's inference logs into the mode folder, where later chains overwrite
    # them; fixed: each chain's inference logs live in its own folder.
    return ctx.out_rel if ctx.quirks else chain_dir_rel


def _tutorial_whole_infer(ctx: PlanContext) -> tuple[Chain, ...]:
    """Q7.4: export the configured weights (cfg:24) when cfg:25 is set, then infer from cfg:20."""
    r = ctx.roles
    save_dir = r.save_infer.value
    steps: list[Step] = []
    export = r.infer_export.value
    if export and export != "null":
        argv = export_argv(ctx, export, r.infer_model.value, save_dir, r.infer_export.line)
        steps.append(ctx.step("export", StepKind.EXPORT, argv, f"{ctx.out_rel}/norm_train_export.log", (), (), (),
                              r.infer_export.line, ("norm_train",)))
    target = InferTarget(model_dir=save_dir, image_dir=r.infer_img.value, quant=False, gpu="0",
                         needs=steps[-1].name if steps else "", log_dir=ctx.out_rel, env=(), chain_requires=(),
                         trainer="norm_train", tags=("norm_train",))
    steps.extend(inference_steps(ctx, target))
    return (Chain(id="whole_infer", model=ctx.model_name, mode=ctx.mode, steps=_drop_empty_needs(steps)),)


def _full_whole_infer(ctx: PlanContext) -> tuple[Chain, ...]:
    """Export the configured pretrained model (cfg:37) with cfg:38 when that is a script, then infer."""
    r = ctx.roles
    models = r.infer_model.items
    exports = r.infer_export.items
    chains: list[Chain] = []
    for position, infer_model in enumerate(models):
        if not infer_model or infer_model == "null":
            ctx.notes.append(f"line {r.infer_model.line}: infer_model is null: whole_infer runs nothing")
            continue
        export = exports[position] if position < len(exports) else ""
        chain_id = "whole_infer" if len(models) == 1 else f"whole_infer_{position}"
        steps: list[Step] = []
        model_dir = infer_model
        beside = ctx.flavor.whole_infer_export_beside_weights and ctx.quirks
        if beside:
            runs_export = export not in ("null", "")  # Q7.5: a missing entry fails the test, so no export
        else:
            runs_export = export not in ("null", "True", "False", "")
        if runs_export:
            if beside:
                model_dir = posixpath.dirname(infer_model.rstrip("/"))  # Q7.5
                argv = (ctx.python, *ctx.words([Piece(export, r.infer_export.line),
                                                param(r.export_weight.value, infer_model), r.save_infer.key,
                                                model_dir]))
            else:
                model_dir = f"{ctx.out}/{chain_id}"
                argv = export_argv(ctx, export, infer_model, model_dir, r.infer_export.line)
            steps.append(ctx.step("export", StepKind.EXPORT, argv, f"{ctx.out_rel}/{chain_id}_export.log", (),
                                  (), (), r.infer_export.line, ("norm_train",)))
        if not model_dir.startswith(("/", "{")) and ctx.flavor.infer_cwd != ".":
            # Inference runs from deploy/ (Q5.10): a repo-relative model dir must be seen from there.
            model_dir = posixpath.relpath(posixpath.normpath(model_dir), ctx.flavor.infer_cwd)
        target = InferTarget(model_dir=model_dir, image_dir=r.infer_img.value, quant=r.infer_quant.value == "True",
                             gpu="0", needs=steps[-1].name if steps else "",
                             log_dir=_infer_log_dir(ctx, f"{ctx.out_rel}/{chain_id}"), env=(), chain_requires=(),
                             trainer="norm_train", tags=("norm_train",))
        steps.extend(inference_steps(ctx, target))
        chains.append(Chain(id=chain_id, model=ctx.model_name, mode=ctx.mode, steps=_drop_empty_needs(steps)))
    return tuple(chains)


def _klquant_chains(ctx: PlanContext) -> tuple[Chain, ...]:
    """Clas kl_quant: PTQ of the configured inference model, then int8 inference from deploy/ (Q7.1, Q7.2)."""
    r = ctx.roles
    if r.kl_quant.value in ("", "null", "False"):
        ctx.notes.append(f"line {r.kl_quant.line}: kl_quant is null: nothing to run in {ctx.mode}")
        return ()
    infer_model = r.infer_model.value
    argv = (ctx.python, *ctx.words([r.kl_quant.piece], ifs_pipe=False))
    steps = [ctx.step("kl_quant", StepKind.KL_QUANT, argv, f"{ctx.out_rel}/export.log", (), (), (),
                      r.kl_quant.line, ("kl_quant",), cwd=".")]
    quant_dir = f"{infer_model}/quant_post_static_model"
    # Q7.2: the script then does `cd <infer_model>/quant_post_static_model; cd ../../deploy`. The first cd works
    # only where kl_quant wrote that folder (its save_inference_dir) inside the repository; otherwise both fail
    # and inference runs from the repo root.
    saved = [w.split("=", 1)[1] for w in argv if w.split("=", 1)[0].endswith("save_inference_dir") and "=" in w]
    target_dir = posixpath.normpath(infer_model)
    written = not saved or any(posixpath.normpath(d) == target_dir for d in saved)
    cwd = posixpath.normpath(posixpath.join(quant_dir, "../../deploy")) if written and not target_dir.startswith(
        "..") else "."
    model_dir = f"../{quant_dir}"
    if not ctx.quirks:
        cwd = ctx.flavor.infer_cwd
        model_dir = quant_dir if cwd == "." else posixpath.relpath(posixpath.normpath(quant_dir), cwd)
    target = InferTarget(model_dir=model_dir, image_dir=r.infer_img.value, quant=True, gpu="0", needs="kl_quant",
                         log_dir=ctx.out_rel if ctx.quirks else f"{ctx.out_rel}/kl_quant", env=(), chain_requires=(),
                         trainer="kl_quant", tags=("kl_quant",))
    for step in inference_steps(ctx, target):
        command = dataclasses.replace(step.command, cwd=cwd) if step.kind is StepKind.INFER else step.command
        steps.append(dataclasses.replace(step, command=command))
    return (Chain(id="kl_quant", model=ctx.model_name, mode=ctx.mode, steps=tuple(steps)),)


def _klquant_step(ctx: PlanContext, model_dir: str, chain_dir_rel: str, placement: Placement,
                  tags: tuple[str, ...]) -> Step | None:
    """klquant_whole_infer after training: PTQ the exported model into <model_dir>/quant_post_static_model."""
    r = ctx.roles
    if r.kl_quant.value in ("", "null", "False"):
        ctx.notes.append(f"line {r.kl_quant.line}: kl_quant is null: no PTQ step")
        return None
    pieces: list[Piece | str] = [r.kl_quant.piece, param(r.infer_model_key.key, model_dir),
                                 param(r.save_infer.key, f"{model_dir}/quant_post_static_model")]
    argv = (ctx.python, *ctx.words(pieces))
    return ctx.step("kl_quant", StepKind.KL_QUANT, argv, f"{chain_dir_rel}_kl_quant.log", placement.step_env,
                    ("export",), placement.requires, r.kl_quant.line, (*tags, "kl_quant"))


def _paddle2onnx_steps(ctx: PlanContext, model_dir: str, chain_dir_rel: str, placement: Placement,
                       tags: tuple[str, ...]) -> list[Step]:
    """paddle2onnx_infer: convert the exported model and run it with onnxruntime (harness_params line)."""
    r = ctx.roles
    for entry in ctx.config.section("harness_params"):
        if entry.key == "paddle2onnx" and entry.value not in ("", "null"):
            pieces: list[Piece | str] = [Piece(entry.value, entry.line), param(r.infer_model_key.key, model_dir),
                                         param(r.infer_img.key, train_image_dir(ctx))]
            argv = (ctx.python, *ctx.words(pieces))
            return [ctx.step("paddle2onnx", StepKind.PADDLE2ONNX, argv, f"{chain_dir_rel}_paddle2onnx.log",
                             placement.step_env, ("export",), placement.requires, entry.line, (*tags, "onnx"))]
    ctx.notes.append("no paddle2onnx line in harness_params: paddle2onnx_infer runs train and export only")
    return []


def _drop_empty_needs(steps: list[Step]) -> tuple[Step, ...]:
    return tuple(dataclasses.replace(s, needs=tuple(n for n in s.needs if n)) for s in steps)


def _tags(trainer: str, autocast: str, quant: bool, requires: tuple[Requirement, ...]) -> tuple[str, ...]:
    tags = [trainer]
    if quant or "pact" in trainer:
        tags.append("pact")
    if "amp" in trainer or autocast in ("amp", "fp16", "O1", "O2"):
        tags.append("amp")
    if Requirement.GPU in requires:
        tags.append("gpu")
    return tuple(tags)
