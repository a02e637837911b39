"""PaddleSeg's script model (test_tipc/test_train_inference_python.sh + common_func.sh).

Its configs have an ``export_params`` section (cfg:27) before ``infer_params`` (cfg:36); inference reads
``<model dir>/deploy.yaml``; pact/fpgm training starts from the norm trainer's weights; CPU inference loops
over precision with skip rules and names a results folder in ``infer_key1``.
"""

from __future__ import annotations

from harness.planning.context import PlanContext
from harness.planning.grid import InferTarget
from harness.planning.repos.common import (TrainJob, bash_dirname, export_step, inference_grid, logs_dir, set_param,
                                           train_jobs, train_use_gpu, trt_gpu_rows, whole_infer_list)
from harness.planning.roles import Piece, Role
from harness.steps import Chain, Requirement, Step, StepKind

__all__ = ["bash_dirname", "chains"]  # bash_dirname lives in common; re-exported for old importers

_AMP_WORDS = "Global.use_amp=True Global.scale_loss=1024.0 Global.use_dynamic_loss_scaling=True"


def chains(ctx: PlanContext) -> tuple[Chain, ...]:
    if ctx.mode in ("whole_infer", "klquant_whole_infer"):
        return whole_infer_list(ctx, gpu="0", inference=_inference)
    state = {"norm_pretrain": ""}
    return train_jobs(ctx, lambda job: _train_steps(ctx, job, state))


def _trainer_lines(ctx: PlanContext, trainer: str) -> tuple[Role, Role, bool, str]:
    r = ctx.roles
    for train, export, quant in ((r.pact_train, r.quant_export, True), (r.fpgm_train, r.fpgm_export, False),
                                 (r.distill_train, r.distill_export, False), (r.trainer1, r.export1, False),
                                 (r.trainer2, r.export2, False)):
        if train.key and trainer == train.key:
            return train, export, quant, ""
    extra = r.to_static_benchmark
    if extra.index and trainer == extra.key:
        return r.norm_train, r.norm_export, False, extra.value
    return r.norm_train, r.norm_export, False, ""


def _train_steps(ctx: PlanContext, job: TrainJob, state: dict[str, str]) -> list[Step] | None:
    r = ctx.roles
    train, export, quant, to_static = _trainer_lines(ctx, job.trainer)
    if train.value == "null":
        return None
    placement = job.placement
    use_gpu = train_use_gpu(ctx, job)
    epoch = ctx.mode_value(r.epoch)
    pretrain = set_param(r.pretrain, r.pretrain.value)
    if job.trainer in (r.pact_train.key, r.fpgm_train.key) and placement.nodes <= 1:
        pretrain = state["norm_pretrain"]  # pact/fpgm start from the last norm training's weights
    amp = _AMP_WORDS if job.autocast == "amp" else ""
    save = set_param(r.save_model, job.save_log)
    script = Piece(f"{train.value} {to_static}" if to_static else train.value, train.line)
    head: list[Piece | str] = [script, use_gpu, save]
    rest: list[Piece | str] = [set_param(r.autocast, job.autocast), set_param(r.batch, ctx.mode_value(r.batch)),
            set_param(r.param1, r.param1.value), amp]
    if placement.multi_node_order:
        pieces = [*head, pretrain, set_param(r.epoch, epoch), *rest]
    else:
        pieces = [*head, set_param(r.epoch, epoch), pretrain, *rest]
    tags = (job.trainer, *(("pact",) if quant else ()), *(("amp",) if amp else ()),
            *(("gpu",) if Requirement.GPU in placement.requires else ()))
    steps = [ctx.step("train", StepKind.TRAIN, (ctx.python, *placement.launcher, *ctx.words(pieces)),
                      f"{ctx.out_rel}/{job.stem}.log", placement.train_env, (), placement.requires, train.line, tags)]
    # Q9.1: the script checks for <save_log>/<train_model_name> and, missing (always, under a recorder), falls
    # back to iter_<epochs>/model.pdparams; fixed: the configured train_model_name.
    model_file = f"iter_{epoch}/model.pdparams" if ctx.quirks else r.train_model_name.value
    weights = f"{job.save_log}/{model_file}"
    eval_pretrain = set_param(r.pretrain, weights)
    if job.trainer == r.norm_train.key and placement.nodes <= 1:
        state["norm_pretrain"] = eval_pretrain
    if r.eval.value not in ("null", ""):
        argv = (ctx.python, *ctx.words([r.eval.piece, eval_pretrain, use_gpu,
                                        set_param(r.eval_param1, r.eval_param1.value)]))
        steps.append(ctx.step("eval", StepKind.EVAL, argv, f"{ctx.out_rel}/{job.stem}_eval.log", placement.step_env,
                              ("train",), placement.requires, r.eval.line, tags))
    if export.value in ("null", ""):
        return steps
    steps.append(export_step(ctx, job, export, weights, tags))
    model_dir = job.save_log
    if r.inference_dir.value not in ("null", "##") and (ctx.quirks or r.inference_dir.value):
        # Q9.8: cfg:36 is the infer_params header, whose empty value gives "<save_log>/"; fixed: <save_log>
        model_dir = f"{job.save_log}/{r.inference_dir.value}"
    target = InferTarget(model_dir=model_dir, image_dir=r.train_infer_img.value, quant=quant, gpu=placement.gpu,
                         needs="export", log_dir=logs_dir(ctx, job.stem), env=placement.step_env,
                         chain_requires=placement.requires, trainer=job.trainer, tags=tags,
                         compare=placement.gpu == "-1")
    steps.extend(_inference(ctx, target, "True" if quant else "False"))
    return steps


def _inference(ctx: PlanContext, target: InferTarget, flag: str) -> list[Step]:
    """CPU: mkldnn x threads x batch x precision; GPU: trt x precision x batch; both with the script's skips.

    ``flag`` is the quant flag as the script tests it ("True", "False", or another word that skips nothing).
    """
    r = ctx.roles
    grid = inference_grid(ctx, target, model=f"{target.model_dir}/deploy.yaml")
    if grid is None:
        return []
    script = grid.script
    extra2 = set_param(r.infer_param2, r.infer_param2.value)
    results = ctx.out if ctx.quirks else target.log_dir
    for use_gpu in r.infer_use_gpu.items:
        if use_gpu in ("False", "cpu"):
            for mkldnn in r.mkldnn.items:
                if mkldnn == "False" and flag == "True":
                    continue
                for threads in r.threads.items:
                    for batch in r.infer_batch.items:
                        for precision in r.precision.items:
                            if (mkldnn == "False" and precision == "fp16") or (
                                flag == "True" and precision != "int8") or (flag == "False" and precision != "fp32"):
                                continue
                            name = f"cpu_usemkldnn_{mkldnn}_threads_{threads}_precision_{precision}_batchsize_{batch}"
                            pieces: list[Piece | str] = [
                                script, f"{r.infer_use_gpu.key}={use_gpu}", f"{r.mkldnn.key}={mkldnn}",
                                set_param(r.threads, threads), grid.model, set_param(r.infer_batch, batch),
                                grid.image, grid.bench, set_param(r.precision, precision),
                                set_param(r.infer_param1, f"{results}/python_infer_{name}_results"), extra2]
                            grid.add(f"infer_{name}", ctx.words(pieces), f"{target.log_dir}/python_infer_{name}.log",
                                     (), precision, ("cpu", precision))
        elif use_gpu in ("True", "gpu"):
            trt_gpu_rows(ctx, grid, use_gpu, flag, extra=extra2, quant_skip_needs_both=False)
        else:
            ctx.notes.append(f"inference device {use_gpu!r} is neither CPU nor GPU: not run")
    return grid.steps
