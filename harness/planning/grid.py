"""The inference grid: one model folder's inference commands (device x mkldnn/trt x threads x precision x batch)."""

from __future__ import annotations

import dataclasses

from harness.check_steps import GOLDEN_MODES, golden_label, skips_cpu_row
from harness.flavors import GpuSkip
from harness.planning.context import Env, PlanContext, param, safe_name
from harness.planning.roles import Piece
from harness.steps import Requirement, Step, StepKind

__all__ = ["Grid", "InferTarget", "golden_dir", "inference_steps"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class InferTarget:
    """What one grid infers and where its steps go: the model folder, its images, and the chain's context."""

    model_dir: str
    image_dir: str
    quant: bool
    gpu: str
    needs: str
    log_dir: str
    env: Env
    chain_requires: tuple[Requirement, ...]
    trainer: str
    tags: tuple[str, ...]
    compare: bool = True
    quant_unset: bool = False  # Q6.5: the script passed no quant flag, so no quantization skip rule applies


@dataclasses.dataclass(slots=True, kw_only=True)
class Grid:
    """Collects one model folder's inference steps: unique names, Q6.1 de-duplication and compare steps."""

    ctx: PlanContext
    target: InferTarget
    script: Piece
    model: str
    image: str
    bench: str
    line: int
    golden_dir: str
    steps: list[Step] = dataclasses.field(default_factory=list)
    seen: set[tuple[str, ...]] = dataclasses.field(default_factory=set)
    names: dict[str, int] = dataclasses.field(default_factory=dict)  # name -> next suffix; keeps add() O(1)

    def unique(self, name: str) -> str:
        count = self.names.get(name)
        if count is None:
            self.names[name] = 2
            return name
        while f"{name}_{count}" in self.names:
            count += 1
        self.names[name] = count + 1
        unique = f"{name}_{count}"
        self.names[unique] = 2
        return unique

    def add(self, name: str, words: tuple[str, ...], log: str, requires: tuple[Requirement, ...], precision: str,
            tags: tuple[str, ...]) -> None:
        ctx, target = self.ctx, self.target
        argv = (ctx.python, *words)
        if not ctx.quirks:
            if argv in self.seen:
                return  # Q6.1: identical commands (the CPU precision loop) run once
            self.seen.add(argv)
        unique = self.unique(name)
        all_requires = tuple(dict.fromkeys((*target.chain_requires, *requires)))
        step_tags = (*target.tags, *tags)
        env = target.env
        if Requirement.GPU in requires:
            # A CPU chain hides the GPUs from training; its GPU inference steps must see them again.
            env = tuple((k, v) for k, v in env if not (k == "CUDA_VISIBLE_DEVICES" and v == ""))
        self.steps.append(ctx.step(unique, StepKind.INFER, argv, log, env, (target.needs,), all_requires,
                                   self.line, step_tags))
        if self.golden_dir:
            label = golden_label(ctx.mode, target.trainer)
            golden = f"{self.golden_dir}/{label}_{precision}.txt"
            compare = (ctx.python, "-m", "harness.golden", "--log", log, "--golden", golden, "--precision", precision)
            self.steps.append(ctx.step(f"compare_{unique}", StepKind.COMPARE, compare,
                                       f"{log.removesuffix('.log')}_compare.log", (), (unique,), all_requires,
                                       self.line, step_tags, cwd="."))


def golden_dir(ctx: PlanContext) -> str:
    """Where compare steps find goldens; none in quirks mode and none for modes goldens do not cover.

    Goldens describe fixed weights, so only whole_infer (the shipped checkpoints) compares with them; chains
    that train get portable checks instead (harness/check_steps.py).
    """
    if ctx.quirks or ctx.mode not in GOLDEN_MODES:
        return ""
    for entry in ctx.config.section("harness_params"):
        if entry.key == "golden_dir" and entry.value not in ("", "null"):
            return entry.value.rstrip("/")
    return ""


def inference_steps(ctx: PlanContext, target: InferTarget) -> list[Step]:
    """The inference grid of one model folder, each step followed by its compare step when goldens exist."""
    r = ctx.roles
    script = r.inference.piece
    if not script.text or script.text == "null":
        return []
    use_gpus = r.infer_use_gpu.items
    ctx.check_bool(r.infer_use_gpu, use_gpus, extra=("gpu", "cpu"))
    grid = Grid(
        ctx=ctx,
        target=target,
        script=script,
        model=param(r.infer_model_key.key, target.model_dir),
        image=param(r.infer_img.key, target.image_dir) if target.image_dir else "",
        bench=param(r.benchmark.key, r.benchmark.value) if ctx.flavor.benchmark_flag else "",  # Q6.3
        line=r.inference.line,
        golden_dir=golden_dir(ctx) if target.compare else "",
    )
    for use_gpu in use_gpus:
        device = _device(use_gpu)
        if device is None:
            ctx.notes.append(f"inference device {use_gpu!r} is neither CPU nor GPU: not run")
        elif not ctx.full:
            _tutorial_grid(grid, use_gpu, device)
        elif device == "cpu":
            _cpu_grid(grid, use_gpu)
        else:
            _gpu_grid(grid, use_gpu)
    return grid.steps


def _tutorial_grid(grid: Grid, use_gpu: str, device: str) -> None:
    """Step6: use-gpu x batch size; no mkldnn, threads or precision lines."""
    ctx = grid.ctx
    r = ctx.roles
    for batch in r.infer_batch.items or ("",):
        pieces: list[Piece | str] = [grid.script, f"{r.infer_use_gpu.key}={use_gpu}", grid.model,
                                     param(r.infer_batch.key, batch), grid.image, grid.bench]
        requires = (Requirement.GPU,) if device == "gpu" else ()
        grid.add(f"infer_{device}_bs_{batch}", ctx.words(pieces),
                 f"{grid.target.log_dir}/python_infer_{device}_batchsize_{batch}.log", requires, "fp32", (device,))


def _cpu_grid(grid: Grid, use_gpu: str) -> None:
    """Full layout CPU loop: mkldnn x threads x batch x precision (Q6.1, Q6.3)."""
    ctx = grid.ctx
    r = ctx.roles
    flavor = ctx.flavor
    mkldnns = r.mkldnn.items or ("",)
    ctx.check_bool(r.mkldnn, mkldnns)
    precisions = r.precision.items or ("",)
    gpus = f"gpus_{grid.target.gpu}_" if flavor.infer_log_gpu_id else ""
    for mkldnn in mkldnns:
        if flavor.cpu_quant_needs_mkldnn and grid.target.quant and mkldnn == "False":
            continue
        for threads in r.threads.items or ("",):
            for batch in r.infer_batch.items or ("",):
                for precision in precisions:
                    prec = _precision_name(precision)
                    if not ctx.quirks and skips_cpu_row(ctx.config, prec, grid.target.quant, grid.target.trainer):
                        continue  # an int8 row on a float program would be an fp32 row named int8
                    if not ctx.quirks and flavor.cpu_precision_flag and (
                        prec == "fp16" or (prec == "int8" and mkldnn == "False")
                    ):
                        continue  # fp16 has no CPU kernels; CPU int8 runs through oneDNN
                    log = (f"{grid.target.log_dir}/python_infer_cpu_{gpus}usemkldnn_{mkldnn}_threads_{threads}"
                           f"_precision_{precision}_batchsize_{batch}.log")
                    pieces: list[Piece | str] = [grid.script, f"{r.infer_use_gpu.key}={use_gpu}"]
                    if flavor.cpu_command_minimal:
                        pieces.append(grid.model)  # Q6.1: the 3D CPU command has only these two flags
                    else:
                        pieces += [f"{r.mkldnn.key}={mkldnn}", param(r.threads.key, threads)]
                        if flavor.cpu_precision_flag:
                            pieces.append(param(r.precision.key, precision))
                        pieces += [grid.model, param(r.infer_batch.key, batch), grid.image, grid.bench]
                        if flavor.cpu_infer_params1:
                            pieces.append(param(r.infer_param1.key, r.infer_param1.value))
                    name = f"infer_cpu_mkldnn_{mkldnn}_threads_{threads}_bs_{batch}"
                    if flavor.cpu_precision_flag or len(precisions) > 1:
                        name = f"infer_cpu_mkldnn_{mkldnn}_threads_{threads}_precision_{prec}_bs_{batch}"
                    grid.add(safe_name(name), ctx.words(pieces), log, (), prec, ("cpu", prec))


def _gpu_grid(grid: Grid, use_gpu: str) -> None:
    """Full layout GPU loop: TensorRT x precision x batch, with the flavor's skip rules (Q6.2)."""
    ctx = grid.ctx
    r = ctx.roles
    trts = r.trt.items or ("",)
    ctx.check_bool(r.trt, trts)
    gpus = f"gpus_{grid.target.gpu}_" if ctx.flavor.infer_log_gpu_id else ""
    for trt in trts:
        for precision in r.precision.items or ("",):
            prec = _precision_name(precision)
            if _skip_gpu_combo(ctx, trt, precision, prec, grid.target):
                continue
            for batch in r.infer_batch.items or ("",):
                log = (f"{grid.target.log_dir}/python_infer_gpu_{gpus}usetrt_{trt}_precision_{precision}"
                       f"_batchsize_{batch}.log")
                pieces: list[Piece | str] = [grid.script, f"{r.infer_use_gpu.key}={use_gpu}", param(r.trt.key, trt),
                                             param(r.precision.key, precision), grid.model,
                                             param(r.infer_batch.key, batch), grid.image, grid.bench]
                if ctx.flavor.gpu_infer_params1:
                    pieces.append(param(r.infer_param1.key, r.infer_param1.value))
                requires = (Requirement.GPU, Requirement.TENSORRT) if trt == "True" else (Requirement.GPU,)
                name = safe_name(f"infer_gpu_trt_{trt}_precision_{prec}_bs_{batch}")
                grid.add(name, ctx.words(pieces), log, requires, prec, ("gpu", prec))


def _skip_gpu_combo(ctx: PlanContext, trt: str, precision: str, prec: str, target: InferTarget) -> bool:
    """The reference skip rules for GPU inference (Q6.2), and the fixed general rule."""
    quant = target.quant
    rule = ctx.flavor.gpu_skip if ctx.quirks else GpuSkip.GENERAL
    if rule is GpuSkip.PADDLE3D and target.quant_unset:
        return prec in ("fp16", "int8") and trt == "False"  # Q6.5: only the TensorRT rule needs no flag
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


def _device(use_gpu: str) -> str | None:
    if use_gpu in ("False", "cpu", "false"):
        return "cpu"
    if use_gpu in ("True", "gpu", "true"):
        return "gpu"
    return None


def _precision_name(precision: str) -> str:
    """Precision as a name: PaddleClas' use_fp16 True/False become fp16/fp32."""
    return {"True": "fp16", "False": "fp32", "": "fp32", "null": "fp32"}.get(precision, precision)
