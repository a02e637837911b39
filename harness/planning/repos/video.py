"""PaddleVideo's script model (test_tipc/test_train_inference_python.sh + common_func.sh).

Its train command appends ``--max_iters=30`` outside whole_train modes, reads epochs and batch size raw (no
per-mode parsing), launches with ``-B -m paddle.distributed.launch --devices=``, and evaluates/exports the
``<model>_epoch_00001.pdparams`` weights (``PP-`` spelled ``pp``). Inference joins the model folder with the
``--model_file``/``--params_file`` names of cfg:47/51.
"""

from __future__ import annotations

from harness.planning.context import PlanContext
from harness.planning.grid import InferTarget
from harness.planning.repos.common import (TrainJob, export_step, inference_grid, logs_dir, set_param, train_jobs,
                                           train_use_gpu, trt_gpu_rows, whole_infer_list)
from harness.planning.roles import Piece, Role
from harness.steps import Chain, Requirement, Step, StepKind

__all__ = ["chains"]


def chains(ctx: PlanContext) -> tuple[Chain, ...]:
    if ctx.mode in ("whole_infer", "klquant_whole_infer"):
        return whole_infer_list(ctx, gpu="", inference=_inference)  # as PaddleSeg, but no gpu id
    return train_jobs(ctx, lambda job: _train_steps(ctx, job))


def _trainer_lines(ctx: PlanContext, trainer: str) -> tuple[Role, Role, bool, str]:
    r = ctx.roles
    for train, export, quant in ((r.pact_train, r.quant_export, True), (r.fpgm_train, r.fpgm_export, False),
                                 (r.distill_train, r.distill_export, False), (r.trainer1, r.norm_export, False),
                                 (r.trainer2, r.export2, False)):
        if train.key and trainer == train.key:
            return train, export, quant, ""
    extra = r.to_static_benchmark
    if extra.index and trainer == extra.key:
        return r.norm_train, r.norm_export, False, extra.value
    return r.norm_train, r.norm_export, False, ""


def _train_value(ctx: PlanContext, role: Role) -> str:
    """Q9.2: epochs and batch size are read raw (``lite_train_lite_infer=2|...`` stays whole); fixed: per mode."""
    return role.value if ctx.quirks else ctx.mode_value(role)


def _train_steps(ctx: PlanContext, job: TrainJob) -> list[Step] | None:
    r = ctx.roles
    train, export, quant, to_static = _trainer_lines(ctx, job.trainer)
    if train.value == "null":
        return None
    placement = job.placement
    whole_train = "whole_train" in ctx.mode
    script = train.value + (f"  {to_static}" if to_static else "")
    if ctx.mode != "benchmark_train" and not whole_train:
        script += " --max_iters=30"
    use_gpu = train_use_gpu(ctx, job)
    pretrain = set_param(r.pretrain, r.pretrain.value)
    if job.trainer in (r.pact_train.key, r.fpgm_train.key) and placement.nodes <= 1:
        pretrain = ""  # Q9.3: the norm weights it means to load are never recorded (a broken `[ [..] ]` test)
    epoch = "" if whole_train else set_param(r.epoch, _train_value(ctx, r.epoch))
    batch = "" if whole_train else set_param(r.batch, _train_value(ctx, r.batch))
    params = ("", "") if whole_train else (set_param(r.param1, r.param1.value),
                                            set_param(r.train_infer_img, r.train_infer_img.value))
    amp = "--amp --amp_level 'O2'" if job.autocast == "fp16" else ""
    head: list[Piece | str] = [Piece(script, train.line), amp, use_gpu, set_param(r.save_model, job.save_log)]
    order = [pretrain, epoch] if placement.multi_node_order else [epoch, pretrain]
    launcher: tuple[str, ...] = ()
    if placement.multi:
        ips = (f"--ips={placement.ips}",) if placement.multi_node_order else ()
        launcher = ("-B", "-m", "paddle.distributed.launch", *ips, f"--devices={placement.gpu}")
    argv = (ctx.python, *launcher, *ctx.words([*head, *order, batch, *params]))
    tags = (job.trainer, *(("pact",) if quant else ()), *(("amp",) if amp or "amp" in job.trainer else ()),
            *(("gpu",) if Requirement.GPU in placement.requires else ()))
    steps = [ctx.step("train", StepKind.TRAIN, argv, f"{ctx.out_rel}/{job.stem}.log", placement.train_env, (),
                      placement.requires, train.line, tags)]
    weights = f"{job.save_log}/{ctx.model_name.replace('PP-', 'pp', 1)}_epoch_00001.pdparams"
    if r.eval.value not in ("null", ""):
        pieces: list[Piece | str] = [r.eval.piece, use_gpu, set_param(r.eval_param1, weights)]
        if "lite_infer" in ctx.mode and r.param1.key != "null":
            pieces.append(f"{r.param1.key}={r.param1.value}")
        steps.append(ctx.step("eval", StepKind.EVAL, (ctx.python, *ctx.words(pieces)),
                              f"{ctx.out_rel}/{job.stem}_eval.log", placement.step_env, ("train",),
                              placement.requires, r.eval.line, tags))
    if export.value in ("null", ""):
        return steps
    steps.append(export_step(ctx, job, export, weights, tags))
    target = InferTarget(model_dir=job.save_log, image_dir=r.infer_img.value, quant=quant, gpu=placement.gpu,
                         needs="export", log_dir=logs_dir(ctx, job.stem),
                         env=placement.step_env, chain_requires=placement.requires, trainer=job.trainer, tags=tags,
                         compare=placement.gpu == "-1")
    steps.extend(_inference(ctx, target, "True" if quant else "False"))
    return steps


def _inference(ctx: PlanContext, target: InferTarget, flag: str) -> list[Step]:
    """CPU: mkldnn x threads x batch x precision; GPU: trt x precision x batch (PaddleSeg's skips, no fp32 rule)."""
    r = ctx.roles
    grid = inference_grid(ctx, target, model=f"{target.model_dir}/{r.infer_model_key.value}")
    if grid is None:
        return []
    script = grid.script
    params = set_param(r.infer_param1, f"{target.model_dir}/{r.infer_param1.value}")
    for use_gpu in r.infer_use_gpu.items:
        if use_gpu in ("False", "cpu"):
            for mkldnn in r.mkldnn.items:
                if mkldnn == "False" and flag == "True":
                    continue
                for threads in r.threads.items:
                    for batch in r.infer_batch.items:
                        for precision in r.precision.items:
                            if (mkldnn == "False" and precision == "fp16") or (flag == "True" and precision != "int8"):
                                continue
                            name = f"cpu_usemkldnn_{mkldnn}_threads_{threads}_precision_{precision}_batchsize_{batch}"
                            pieces: list[Piece | str] = [
                                script, f"{r.infer_use_gpu.key}={use_gpu}", f"{r.mkldnn.key}={mkldnn}",
                                set_param(r.threads, threads), grid.model, set_param(r.infer_batch, batch),
                                grid.image, grid.bench, set_param(r.precision, precision), params]
                            grid.add(f"infer_{name}", ctx.words(pieces), f"{target.log_dir}/python_infer_{name}.log",
                                     (), precision, ("cpu", precision))
        elif use_gpu in ("True", "gpu"):
            trt_gpu_rows(ctx, grid, use_gpu, flag, extra=params, quant_skip_needs_both=False)
        else:
            ctx.notes.append(f"inference device {use_gpu!r} is neither CPU nor GPU: not run")
    return grid.steps
