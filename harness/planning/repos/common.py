"""Pieces the repository script models share: the gpu x autocast x trainer loop and the chain record."""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable

from harness.planning.context import PlanContext, param, safe_name
from harness.planning.grid import Grid, InferTarget, golden_dir
from harness.planning.placement import Placement, place
from harness.planning.roles import Piece, Role
from harness.steps import Chain, Requirement, Step, StepKind

__all__ = ["TrainJob", "bash_dirname", "dispatch_trainer", "export_step", "inference_grid", "logs_dir", "model_chain",
           "train_jobs", "train_use_gpu", "trt_gpu_rows", "whole_infer_list"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TrainJob:
    """One (gpu entry, autocast, trainer) of the train loop, with the names the scripts derive from it."""

    trainer: str
    autocast: str
    placement: Placement
    position: int  # the gpu_list entry's position
    stem: str  # <trainer>_gpus_<g>_autocast_<a>_nodes_<n>: log names
    save_log: str  # the train output folder (some scripts drop _nodes_1: flavor.folder_nodes_suffix)
    chain_id: str


def train_jobs(ctx: PlanContext, build: Callable[[TrainJob], list[Step] | None]) -> tuple[Chain, ...]:
    """gpu_list x autocast x trainer_list, in the scripts' order; ``build`` gives a job's steps (None: skipped)."""
    r = ctx.roles
    if not r.gpu_list.items:
        raise ctx.error(r.gpu_list, "gpu_list is empty")
    if not r.trainer_list.items:
        raise ctx.error(r.trainer_list, "trainer list is empty")
    chains: list[Chain] = []
    for position, entry in enumerate(r.gpu_list.items):
        placement = place(ctx, entry, r.gpu_list)
        for autocast in r.autocast.items or ("",):
            for trainer in r.trainer_list.items:
                stem = f"{trainer}_gpus_{placement.gpu}_autocast_{autocast}_nodes_{placement.nodes}"
                keep = ctx.flavor.folder_nodes_suffix or placement.nodes > 1
                folder = stem if keep else stem.rsplit("_nodes_", 1)[0]
                job = TrainJob(trainer=trainer, autocast=autocast, placement=placement, position=position, stem=stem,
                               save_log=f"{ctx.out}/{folder}", chain_id=safe_name(stem))
                steps = build(job)
                if steps:
                    chains.append(model_chain(ctx, job.chain_id, steps))
    return tuple(chains)


def model_chain(ctx: PlanContext, chain_id: str, steps: list[Step]) -> Chain:
    return Chain(id=chain_id, model=ctx.model_name, mode=ctx.mode,
                 steps=tuple(dataclasses.replace(s, needs=tuple(n for n in s.needs if n)) for s in steps))


def dispatch_trainer(trainer: str, table: tuple[tuple[Role, Role, bool], ...]) -> tuple[Role, Role, bool] | None:
    """The first (train line, export line, quantized?) whose train key is the trainer name."""
    for train, export, quant in table:
        if train.index and trainer == train.key:
            return train, export, quant
    return None


def set_param(role: Role, value: str) -> str:
    """``func_set_params <role key> <value>``."""
    return param(role.key, value)


def bash_dirname(path: str) -> str:
    """``dirname`` as coreutils computes it (``x`` -> ``.``, ``a/b/`` -> ``a``)."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    head = posixpath.dirname(stripped).rstrip("/")
    if head:
        return head
    return "/" if stripped.startswith("/") else "."


def logs_dir(ctx: PlanContext, stem: str) -> str:
    """A chain's inference log folder: the output root as the scripts have it, else beside the chain folder."""
    return ctx.out_rel if ctx.quirks else f"{ctx.out_rel}/logs/{stem}"  # beside the chain folder (collisions.py)


def train_use_gpu(ctx: PlanContext, job: TrainJob) -> str:
    """The train line's use_gpu word: the use_gpu entry at the gpu_list entry's position (empty past its end)."""
    values = ctx.roles.use_gpu_train.items
    return set_param(ctx.roles.use_gpu_train, values[job.position] if job.position < len(values) else "")


def export_step(ctx: PlanContext, job: TrainJob, export: Role, weights: str, tags: tuple[str, ...]) -> Step:
    """The after-train export of ``weights`` into the train output folder."""
    r = ctx.roles
    argv = (ctx.python, *ctx.words([export.piece, set_param(r.export_weight, weights),
                                    set_param(r.save_infer, job.save_log)]))
    return ctx.step("export", StepKind.EXPORT, argv, f"{ctx.out_rel}/{job.stem}_export.log",
                    job.placement.step_env, ("train",), job.placement.requires, export.line, tags)


def inference_grid(ctx: PlanContext, target: InferTarget, *, model: str) -> Grid | None:
    """The inference grid with the words every repo's rows share (None: no inference line configured)."""
    r = ctx.roles
    script = r.inference.piece
    if script.text in ("", "null"):
        return None
    return Grid(ctx=ctx, target=target, script=script, model=set_param(r.infer_model_key, model),
                image=set_param(r.infer_img, target.image_dir), bench=set_param(r.benchmark, r.benchmark.value),
                line=r.inference.line, golden_dir=golden_dir(ctx) if target.compare else "")


def whole_infer_list(ctx: PlanContext, *, gpu: str,
                     inference: Callable[[PlanContext, InferTarget, str], list[Step]]) -> tuple[Chain, ...]:
    """cfg:37 infer_model list with the matching cfg:38 export and cfg:39 quant flag (PaddleSeg, PaddleVideo).

    ``gpu`` is the InferTarget gpu the script passes; ``inference`` plans the repo's inference grid.
    """
    r = ctx.roles
    exports = r.infer_export.items
    flags = r.infer_quant.items
    out: list[Chain] = []
    for count, infer_model in enumerate(r.infer_model.items):
        export = exports[count] if count < len(exports) else ""
        chain_id = "whole_infer" if len(r.infer_model.items) == 1 else f"whole_infer_{count}"
        steps: list[Step] = []
        model_dir = infer_model
        if export not in ("null", ""):
            model_dir = bash_dirname(infer_model)
            pieces: list[Piece | str] = [Piece(export, r.infer_export.line), set_param(r.export_weight, infer_model),
                                         set_param(r.save_infer, model_dir)]
            steps.append(ctx.step("export", StepKind.EXPORT, (ctx.python, *ctx.words(pieces)),
                                  f"{ctx.out_rel}/{chain_id}_export.log", (), (), (), r.infer_export.line,
                                  ("norm_train",)))
        flag = flags[count] if count < len(flags) else ""
        if not ctx.quirks and flag not in ("True", "False"):
            flag = "False"  # Q9.6: a missing quant entry skips nothing in the script; fixed: not quantized
        target = InferTarget(model_dir=model_dir, image_dir=r.infer_img.value, quant=flag == "True", gpu=gpu,
                             needs=steps[-1].name if steps else "", log_dir=logs_dir(ctx, chain_id), env=(),
                             chain_requires=(), trainer="norm_train", tags=("norm_train",))
        steps.extend(inference(ctx, target, flag))
        out.append(model_chain(ctx, chain_id, steps))
    return tuple(out)


def trt_gpu_rows(ctx: PlanContext, grid: Grid, use_gpu: str, flag: str, *, extra: str,
                 quant_skip_needs_both: bool) -> None:
    """GPU rows, trt x precision x batch, with the script's skips (PaddleSeg, PaddleVideo, PaddleOCR).

    ``extra`` is the repo's last word; a quantized model (``flag`` "True") skips a row when trt is off or the
    precision is int8, or, with ``quant_skip_needs_both`` (PaddleOCR), only when both hold.
    """
    r = ctx.roles
    for trt in r.trt.items:
        for precision in r.precision.items:
            if quant_skip_needs_both:
                quant_skip = trt == "False" and "int8" in precision
            else:
                quant_skip = trt == "False" or "int8" in precision
            if (flag == "False" and "int8" in precision) or (
                ("fp16" in precision or "int8" in precision) and trt == "False") or (quant_skip and flag == "True"):
                continue
            requires = (Requirement.GPU, Requirement.TENSORRT) if trt == "True" else (Requirement.GPU,)
            for batch in r.infer_batch.items:
                name = f"gpu_usetrt_{trt}_precision_{precision}_batchsize_{batch}"
                pieces: list[Piece | str] = [
                    grid.script, f"{r.infer_use_gpu.key}={use_gpu}", set_param(r.trt, trt),
                    set_param(r.precision, precision), grid.model, set_param(r.infer_batch, batch), grid.image,
                    grid.bench, extra]
                grid.add(f"infer_{name}", ctx.words(pieces), f"{grid.target.log_dir}/python_infer_{name}.log",
                         requires, precision, ("gpu", precision))
