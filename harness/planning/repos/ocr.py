"""PaddleOCR's script model (test_tipc/test_train_inference_python.sh + common_func.sh).

The line positions are the full layout's, read whatever their keys say. Train adds ``Global.use_amp=True ...``
for ``amp``; whole_infer exports each ``infer_model`` into itself; inference passes ``--enable_mkldnn`` and the
precision on CPU, and keeps quantized models off TensorRT-less int8 only.
"""

from __future__ import annotations

from harness.planning.context import PlanContext
from harness.planning.grid import InferTarget
from harness.planning.repos.common import (TrainJob, export_step, inference_grid, logs_dir, model_chain, set_param,
                                           train_jobs, train_use_gpu, trt_gpu_rows)
from harness.planning.roles import Piece, Role
from harness.steps import Chain, Requirement, Step, StepKind

__all__ = ["chains"]

_AMP_WORDS = "Global.use_amp=True Global.scale_loss=1024.0 Global.use_dynamic_loss_scaling=True"


def chains(ctx: PlanContext) -> tuple[Chain, ...]:
    if ctx.mode == "whole_infer":
        return _whole_infer(ctx)
    return train_jobs(ctx, lambda job: _train_steps(ctx, job))


def _trainer_lines(ctx: PlanContext, trainer: str) -> tuple[Role, Role, bool, str]:
    r = ctx.roles
    for train, export, quant in ((r.pact_train, r.quant_export, True), (r.fpgm_train, r.fpgm_export, False),
                                 (r.distill_train, r.distill_export, False)):
        if train.key and trainer == train.key:
            return train, export, quant, ""
    extra = r.to_static_benchmark
    if extra.index and trainer == extra.key:
        return r.norm_train, r.norm_export, False, extra.value
    if r.trainer2.key and trainer == r.trainer2.key:
        return r.trainer2, r.export2, False, ""
    return r.norm_train, r.norm_export, False, ""


def _train_steps(ctx: PlanContext, job: TrainJob) -> list[Step] | None:
    r = ctx.roles
    train, export, quant, to_static = _trainer_lines(ctx, job.trainer)
    if train.value == "null":
        return None
    placement = job.placement
    use_gpu = train_use_gpu(ctx, job)
    epoch = set_param(r.epoch, ctx.mode_value(r.epoch))
    pretrain = set_param(r.pretrain, r.pretrain.value)
    script = Piece(f"{train.value}  {to_static}" if to_static else train.value, train.line)
    order = [pretrain, epoch] if placement.multi_node_order else [epoch, pretrain]
    amp = _AMP_WORDS if job.autocast == "amp" else ""
    pieces: list[Piece | str] = [script, use_gpu, set_param(r.save_model, job.save_log), *order,
                                 set_param(r.batch, ctx.mode_value(r.batch)), amp, set_param(r.param1, r.param1.value)]
    tags = (job.trainer, *(("pact",) if quant else ()), *(("amp",) if amp else ()),
            *(("gpu",) if Requirement.GPU in placement.requires else ()))
    steps = [ctx.step("train", StepKind.TRAIN, (ctx.python, *placement.launcher, *ctx.words(pieces)),
                      f"{ctx.out_rel}/{job.stem}.log", placement.train_env, (), placement.requires, train.line, tags)]
    weights = f"{job.save_log}/{r.train_model_name.value}"
    if r.eval.value not in ("null", ""):
        argv = (ctx.python, *ctx.words([r.eval.piece, set_param(r.pretrain, weights), use_gpu,
                                        set_param(r.eval_param1, r.eval_param1.value)]))
        steps.append(ctx.step("eval", StepKind.EVAL, argv, f"{ctx.out_rel}/{job.stem}_eval.log", placement.step_env,
                              ("train",), placement.requires, r.eval.line, tags))
    if export.value in ("null", ""):
        return steps
    steps.append(export_step(ctx, job, export, weights, tags))
    model_dir = job.save_log
    if r.inference_dir.value not in ("null", "##"):
        model_dir = f"{job.save_log}/{r.inference_dir.value}"
    target = InferTarget(model_dir=model_dir, image_dir=r.train_infer_img.value, quant=quant, gpu=placement.gpu,
                         needs="export", log_dir=logs_dir(ctx, job.stem),
                         env=placement.step_env, chain_requires=placement.requires, trainer=job.trainer, tags=tags,
                         compare=placement.gpu == "-1")
    steps.extend(_inference(ctx, target, "True" if quant else "False"))
    return steps


def _whole_infer(ctx: PlanContext) -> tuple[Chain, ...]:
    """cfg:37 infer_model list: export each (when its cfg:38 entry is set) into its own folder, then infer."""
    r = ctx.roles
    exports = r.infer_export.items
    flags = r.infer_quant.items
    out: list[Chain] = []
    for count, infer_model in enumerate(r.infer_model.items):
        export = exports[count] if count < len(exports) else ""
        chain_id = "whole_infer" if len(r.infer_model.items) == 1 else f"whole_infer_{count}"
        steps: list[Step] = []
        if export not in ("null", ""):
            pieces: list[Piece | str] = [Piece(export, r.infer_export.line), set_param(r.export_weight, infer_model),
                                         set_param(r.save_infer, infer_model)]
            steps.append(ctx.step("export", StepKind.EXPORT, (ctx.python, *ctx.words(pieces)),
                                  f"{ctx.out_rel}/{chain_id}_export.log", (), (), (), r.infer_export.line,
                                  ("norm_train",)))
        # Q9.6: an empty quant entry shifts the script's arguments, so the gpu id ("0") becomes the flag and no
        # skip rule applies; fixed: a missing entry means not quantized.
        flag = flags[count] if count < len(flags) and flags[count] else ("0" if ctx.quirks else "False")
        target = InferTarget(model_dir=infer_model, image_dir=r.infer_img.value, quant=flag == "True", gpu="0",
                             needs=steps[-1].name if steps else "",
                             log_dir=logs_dir(ctx, chain_id), env=(),
                             chain_requires=(), trainer="norm_train", tags=("norm_train",))
        steps.extend(_inference(ctx, target, flag))
        out.append(model_chain(ctx, chain_id, steps))
    return tuple(out)


def _inference(ctx: PlanContext, target: InferTarget, flag: str) -> list[Step]:
    """CPU: mkldnn x threads x batch x precision; GPU: trt x precision x batch, with the script's skips."""
    r = ctx.roles
    grid = inference_grid(ctx, target, model=target.model_dir)
    if grid is None:
        return []
    script = grid.script
    extra = set_param(r.infer_param1, r.infer_param1.value)
    for use_gpu in r.infer_use_gpu.items:
        if use_gpu in ("False", "cpu"):
            for mkldnn in r.mkldnn.items:
                for threads in r.threads.items:
                    for batch in r.infer_batch.items:
                        for precision in r.precision.items:
                            if (mkldnn == "False" and precision == "fp16") or (flag == "True" and precision != "int8"):
                                continue
                            name = f"cpu_usemkldnn_{mkldnn}_threads_{threads}_precision_{precision}_batchsize_{batch}"
                            pieces: list[Piece | str] = [
                                script, f"{r.infer_use_gpu.key}={use_gpu}", set_param(r.mkldnn, mkldnn),
                                set_param(r.threads, threads), grid.model, set_param(r.infer_batch, batch),
                                grid.image, grid.bench, set_param(r.precision, precision), extra]
                            grid.add(f"infer_{name}", ctx.words(pieces), f"{target.log_dir}/python_infer_{name}.log",
                                     (), precision, ("cpu", precision))
        elif use_gpu in ("True", "gpu"):
            trt_gpu_rows(ctx, grid, use_gpu, flag, extra=extra, quant_skip_needs_both=True)
        else:
            ctx.notes.append(f"inference device {use_gpu!r} is neither CPU nor GPU: not run")
    return grid.steps
