"""PaddleDetection's script model (test_tipc/test_train_inference_python.sh + utils_func.sh).

Its train command carries fixed words (``LearningRate.base_lr=0.0001 log_iter=1``, ``filename=<model>``), AMP as
``amp_level=O1|O2 --amp``, weights under ``<save_log>/<model_name>/``, an extra ONNX export when cfg:35's key is
``export_onnx``, and whole_infer walks cfg:38 ``infer_mode`` (norm|pact|fpgm|distill|kl_quant).
"""

from __future__ import annotations

from harness.planning.context import PlanContext, param
from harness.planning.grid import InferTarget
from harness.planning.repos.common import (TrainJob, dispatch_trainer, inference_grid, logs_dir, model_chain, set_param,
                                           train_jobs)
from harness.planning.roles import Piece, Role
from harness.steps import Chain, Requirement, Step, StepKind

__all__ = ["chains"]

_DEFORMABLE_OP_MODELS = ("dino_r50_4scale_1x_coco",)


def chains(ctx: PlanContext) -> tuple[Chain, ...]:
    if ctx.mode in ("whole_infer", "klquant_whole_infer"):
        return _whole_infer(ctx)
    state = {"position": "", "use_gpu": ""}
    return train_jobs(ctx, lambda job: _train_steps(ctx, job, state))


def _trainer_lines(ctx: PlanContext, trainer: str) -> tuple[Role, Role, bool, str] | None:
    """(train line, export line, quantized?, to_static words); None: the script skips the trainer name."""
    r = ctx.roles
    found = dispatch_trainer(trainer, (
        (r.norm_train, r.norm_export, False), (r.pact_train, r.quant_export, True),
        (r.fpgm_train, r.fpgm_export, False), (r.distill_train, r.distill_export, False),
        (r.trainer1, r.export1, False), (r.trainer2, r.export2, False),
    ))
    if found is not None:
        return (*found, "")
    extra = r.to_static_benchmark
    if extra.index and trainer == extra.key:
        return r.norm_train, r.norm_export, False, extra.value
    return None


def _pipe_cut(ctx: PlanContext, pieces: list[Piece | str]) -> list[Piece | str]:
    """Q9.20: a quoted ``eval "${cmd} > log"`` makes a ``|`` in the command a pipe: the call ends there."""
    if not ctx.quirks:
        return pieces
    out: list[Piece | str] = []
    for piece in pieces:
        text = piece.text if isinstance(piece, Piece) else piece
        if "|" in text:
            head = text.split("|", 1)[0]
            out.append(Piece(head, piece.line) if isinstance(piece, Piece) else head)
            break
        out.append(piece)
    return out


def _train_steps(ctx: PlanContext, job: TrainJob, state: dict[str, str]) -> list[Step] | None:
    r = ctx.roles
    if state["position"] != str(job.position):
        # use_gpu is set per gpu_list entry (False for -1); Q9.19: the inference loop reuses the variable, so a
        # later trainer/autocast of the same entry trains with the last inference device; fixed: the train value.
        state["position"] = str(job.position)
        state["use_gpu"] = "False" if job.placement.gpu == "-1" else r.use_gpu_train.value
    lines = _trainer_lines(ctx, job.trainer)
    if lines is None:
        ctx.notes.append(f"trainer {job.trainer!r} matches no trainer key: not run")
        return None
    train, export, quant, to_static = lines
    if train.value == "null" or not train.value:
        return None
    placement = job.placement
    use_gpu = state["use_gpu"] if ctx.quirks else ("False" if placement.gpu == "-1" else r.use_gpu_train.value)
    filename = param("filename", ctx.model_name)
    amp_level, amp = {"amp": ("amp_level=O1", "--amp"), "fp16": ("amp_level=O2", "--amp")}.get(job.autocast, ("", ""))
    fixed = "LearningRate.base_lr=0.0001 log_iter=1" if not placement.multi else "log_iter=1"
    pieces: list[Piece | str] = [
        train.piece, fixed, set_param(r.use_gpu_train, use_gpu), set_param(r.save_model, job.save_log),
        set_param(r.epoch, ctx.mode_value(r.epoch)), set_param(r.pretrain, r.pretrain.value),
        set_param(r.batch, ctx.mode_value(r.batch)), filename, amp_level, amp, to_static,
        set_param(r.param1, r.param1.value),
    ]
    tags = (job.trainer, *(("pact",) if quant else ()), *(("amp",) if amp else ()),
            *(("gpu",) if Requirement.GPU in placement.requires else ()))
    steps: list[Step] = []
    if any(name in ctx.model_name for name in _DEFORMABLE_OP_MODELS):
        # The script builds the deformable attention op before every train command (from its source folder).
        steps.append(ctx.step("build_op", StepKind.SETUP, (ctx.python, "setup_ms_deformable_attn_op.py", "install"),
                              f"{ctx.out_rel}/{job.stem}_build_op.log", (), (), (), train.line, tags,
                              cwd="ppdet/modeling/transformers/ext_op"))
    argv = (ctx.python, *placement.launcher, *ctx.words(_pipe_cut(ctx, pieces), ifs_pipe=False))
    steps.append(ctx.step("train", StepKind.TRAIN, argv, f"{ctx.out_rel}/{job.stem}.log", placement.train_env,
                          (steps[-1].name if steps else "",), placement.requires, train.line, tags))
    weights = set_param(r.export_weight, f"{job.save_log}/{ctx.model_name}/{r.train_model_name.value}")
    if r.eval.value not in ("null", ""):
        argv = (ctx.python, *ctx.words(_pipe_cut(ctx, [r.eval.piece, weights, set_param(r.use_gpu_train, use_gpu),
                                                        set_param(r.eval_param1, r.eval_param1.value)]),
                                       ifs_pipe=False))
        steps.append(ctx.step("eval", StepKind.EVAL, argv, f"{ctx.out_rel}/{job.stem}_eval.log", placement.step_env,
                              ("train",), placement.requires, r.eval.line, tags))
    if export.value in ("null", ""):
        return steps
    save = set_param(r.save_infer, job.save_log)
    if r.export2.key == "export_onnx":
        argv = (ctx.python, *ctx.words([export.piece, weights, filename, "export_onnx=True", save]))
        steps.append(ctx.step("export_onnx", StepKind.EXPORT, argv, f"{ctx.out_rel}/{job.stem}_onnx_export.log",
                              placement.step_env, ("train",), placement.requires, export.line, tags))
    argv = (ctx.python, *ctx.words(_pipe_cut(ctx, [export.piece, weights, filename, save]), ifs_pipe=False))
    steps.append(ctx.step("export", StepKind.EXPORT, argv, f"{ctx.out_rel}/{job.stem}_export.log",
                          placement.step_env, ("train",), placement.requires, export.line, tags))
    target = InferTarget(model_dir=f"{job.save_log}/{ctx.model_name}", image_dir=r.train_infer_img.value,
                         quant=quant, gpu=placement.gpu, needs="export", log_dir=logs_dir(ctx, job.stem),
                         env=placement.step_env, chain_requires=placement.requires, trainer=job.trainer, tags=tags,
                         compare=placement.gpu == "-1")
    steps.extend(_inference(ctx, target, "True" if quant else "False"))
    if r.infer_use_gpu.items:
        state["use_gpu"] = r.infer_use_gpu.items[-1]  # Q9.19: left over from the inference loop
    return steps


def _whole_infer(ctx: PlanContext) -> tuple[Chain, ...]:
    """cfg:38 infer_mode list: export the configured weights with that mode's export line, then infer."""
    r = ctx.roles
    exports = {"norm": r.norm_export, "pact": r.quant_export, "fpgm": r.fpgm_export, "distill": r.distill_export,
               "kl_quant": r.kl_quant}
    out: list[Chain] = []
    count = 0
    for infer_mode in r.infer_mode.items:
        if infer_mode == "null" or (ctx.mode == "klquant_whole_infer") != (infer_mode == "kl_quant"):
            continue
        export = exports.get(infer_mode)
        if export is None:
            msg = f"infer_mode {infer_mode!r} is not one of: {', '.join(exports)}"
            raise ctx.error(r.infer_mode, msg)  # the script stops here ("Undefined infer_mode!")
        quant_flags = r.infer_quant.items
        flag = quant_flags[count] if count < len(quant_flags) else ""
        if not ctx.quirks and flag not in ("True", "False"):
            flag = "False"  # Q9.6: a missing quant entry skips nothing in the script; fixed: not quantized
        count += 1
        steps: list[Step] = []
        chain_id = f"whole_infer_{infer_mode}"
        if export.value != "null" or ctx.quirks:  # Q9.4: the script runs `python null ...`
            pieces: list[Piece | str] = [export.piece, set_param(r.export_weight, r.export_weight.value),
                                         param("filename", ctx.model_name), set_param(r.save_infer, r.save_infer.value)]
            steps.append(ctx.step("export", StepKind.EXPORT, (ctx.python, *ctx.words(pieces)),
                                  f"{ctx.out_rel}/{chain_id}_export.log", (), (), (), export.line, (infer_mode,)))
        target = InferTarget(model_dir=f"{r.save_infer.value}/{ctx.model_name}", image_dir=r.infer_img.value,
                             quant=flag == "True", gpu="{gpu}", needs=steps[-1].name if steps else "",
                             log_dir=logs_dir(ctx, chain_id), env=(), chain_requires=(), trainer=infer_mode,
                             tags=(infer_mode,))
        steps.extend(_inference(ctx, target, flag))
        out.append(model_chain(ctx, chain_id, steps))
    return tuple(out)


def _inference(ctx: PlanContext, target: InferTarget, flag: str) -> list[Step]:
    """CPU: mkldnn x threads x batch (no precision); GPU: run_mode x batch, trt_int8 only for quantized models.

    ``flag`` is the quant flag as the script tests it: neither "True" nor "False" (an empty infer_quant entry)
    skips nothing.
    """
    r = ctx.roles
    grid = inference_grid(ctx, target, model=target.model_dir)
    if grid is None:
        return []
    script = grid.script
    extra = set_param(r.infer_param1, r.infer_param1.value)
    for use_gpu in r.infer_use_gpu.items:
        if use_gpu in ("False", "cpu"):
            for mkldnn in r.mkldnn.items:
                if mkldnn == "False" and flag == "True":
                    continue
                for threads in r.threads.items:
                    for batch in r.infer_batch.items:
                        pieces: list[Piece | str] = [
                            script, f"{r.infer_use_gpu.key}={use_gpu}", f"{r.mkldnn.key}={mkldnn}",
                            set_param(r.threads, threads), grid.model, set_param(r.infer_batch, batch), grid.image,
                            grid.bench, extra]
                        log = (f"{target.log_dir}/python_infer_cpu_usemkldnn_{mkldnn}_threads_{threads}"
                               f"_mode_paddle_batchsize_{batch}.log")
                        grid.add(f"infer_cpu_mkldnn_{mkldnn}_threads_{threads}_bs_{batch}", ctx.words(pieces), log, (),
                                 "fp32", ("cpu",))
        elif use_gpu in ("True", "gpu"):
            for precision in r.precision.items:
                if precision != "paddle" and (
                    (flag == "False" and precision == "trt_int8") or (flag == "True" and precision != "trt_int8")
                ):
                    continue
                requires = (Requirement.GPU,) if precision == "paddle" else (Requirement.GPU, Requirement.TENSORRT)
                for batch in r.infer_batch.items:
                    pieces = [script, f"{r.infer_use_gpu.key}={use_gpu}", set_param(r.precision, precision),
                              grid.model, set_param(r.infer_batch, batch), grid.image, grid.bench, extra]
                    log = f"{target.log_dir}/python_infer_gpu_mode_{precision}_batchsize_{batch}.log"
                    grid.add(f"infer_gpu_{precision}_bs_{batch}", ctx.words(pieces), log, requires, precision,
                             ("gpu", precision))
        else:
            ctx.notes.append(f"inference device {use_gpu!r} is neither CPU nor GPU: not run")
    return grid.steps
