"""TIPC's benchmark_train mode: train per batch size x precision x devices, read ips and memory, gate on a baseline."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from harness.config import Entry, Layout, TipcConfig
from harness.errors import ConfigError
from harness.hardware import Hardware
from harness.plan import PlanOptions, build_plan
from harness.status import StepResult, StepStatus
from harness.steps import Chain, Step, StepKind

__all__ = [
    "DEVICE_ROWS",
    "BenchmarkParams",
    "BenchmarkRun",
    "Verdict",
    "gate",
    "RowChoice",
    "choose_row",
    "parse_row",
    "parse_train_log",
    "plan_runs",
    "read_params",
    "result_record",
]

SECTION: Final = "train_benchmark_params"
# TIPC's device notation: N<machines>C<cards>. "CPU" is ours: the same training with gpu_list -1.
DEVICE_ROWS: Final = ("CPU", "N1C1", "N1C4")
SKIP_STEPS: Final = 2  # the first ips windows include start-up and warm-up; TIPC's log analysis skips them too
_PLAN_MODE: Final = "lite_train_lite_infer"  # planned through this mode with its per-mode values rewritten
# Logical config lines the benchmark rewrites, per layout (config_format.md role maps).
_LINES: Final[dict[Layout, dict[str, int]]] = {
    Layout.TUTORIAL: {"gpu_list": 4, "epoch": 6, "batch_size": 8},
    Layout.FULL: {"gpu_list": 4, "precision": 6, "epoch": 7, "batch_size": 9},
}
_IPS = re.compile(r"\bips:\s*([0-9]+(?:\.[0-9]*)?)")
_LOSS = re.compile(r"\bloss:\s*([-+0-9.eE]+)")
_MEM = {
    "max_mem_reserved_mb": re.compile(r"max_mem_reserved:\s*([0-9.]+)"),
    "max_mem_allocated_mb": re.compile(r"max_mem_allocated:\s*([0-9.]+)"),
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BenchmarkParams:
    """The five lines after ``===train_benchmark_params===``: batch_size, fp_items, epoch, profiler options, flags."""

    batch_sizes: tuple[str, ...]
    fp_items: tuple[str, ...]
    epoch: str
    profile_key: str
    profile_value: str  # "null" when no profiling run
    flags: tuple[tuple[str, str], ...]  # environment the training runs with (FLAGS_cudnn_exhaustive_search=1 ...)
    line: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BenchmarkRun:
    """One batch size x precision x device row; its training steps and where its logs and result go."""

    name: str  # <model>_bs<B>_<precision>_<run_mode>_<device_num>, TIPC's log name without repository prefix
    model_name: str
    batch_size: int
    fp_item: str  # fp32 / fp16, as results name it (TIPC's amp is fp16)
    run_mode: str
    device_num: str
    chain: Chain  # the training steps only
    skip_reason: str = ""
    # TIPC first trains once with the profiler on (single-card rows only) and takes no numbers from that run.
    profiling: tuple[Step, ...] = ()


def read_params(config: TipcConfig) -> BenchmarkParams:
    """The config's train_benchmark_params section; a missing or short section is a ConfigError with its line."""
    entries = config.section(SECTION)
    start = config.section_start(SECTION)
    if start is None:
        raise ConfigError(config.path, 0, f"no '==={SECTION}===' section: nothing to benchmark")
    if len(entries) < 3:
        line = entries[-1].line if entries else config.at(start).line
        msg = f"{SECTION} needs batch_size, fp_items and epoch lines (then optional profiler options and flags)"
        raise ConfigError(config.path, line, msg)
    batch, fp, epoch = entries[0], entries[1], entries[2]
    sizes = tuple(v.strip() for v in batch.value.split("|") if v.strip())
    for size in sizes:
        if not size.isdigit() or int(size) < 1:
            raise ConfigError(config.path, batch.line, f"batch_size: expected positive integers a|b, got {size!r}")
    if not epoch.value.strip().isdigit():
        raise ConfigError(config.path, epoch.line, f"epoch: expected a positive integer, got {epoch.value!r}")
    fp_items = tuple(_precision(v.strip()) for v in fp.value.split("|") if v.strip())
    profile = entries[3] if len(entries) > 3 else None
    flags_entry = entries[4] if len(entries) > 4 else None
    return BenchmarkParams(
        batch_sizes=sizes,
        fp_items=fp_items or ("fp32",),
        epoch=epoch.value.strip(),
        profile_key=profile.key if profile else "",
        profile_value=profile.value if profile else "null",
        flags=_flags(config, flags_entry),
        line=batch.line,
    )


def _precision(item: str) -> str:
    return "fp16" if item in ("amp", "fp16") else item


def _flags(config: TipcConfig, entry: Entry | None) -> tuple[tuple[str, str], ...]:
    if entry is None or entry.value in ("", "null"):
        return ()
    out: list[tuple[str, str]] = []
    for item in entry.value.split(";"):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
            raise ConfigError(config.path, entry.line, f"flags: expected NAME=value;NAME=value, got {item!r}")
        out.append((name.strip(), value.strip()))
    return tuple(out)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RowChoice:
    """TIPC's third argument, ``<model type>_bs<B>_<fp>_<run mode>_<devices>``: one row instead of them all."""

    batch_size: str
    fp_item: str
    run_mode: str
    device_num: str


def parse_row(text: str) -> RowChoice:
    """``dynamic_bs8_fp32_DP_N1C1`` -> batch 8, fp32, DP, N1C1 (a ValueError says what was expected)."""
    parts = text.split("_")
    if len(parts) != 5 or not re.fullmatch(r"bs\d+", parts[1]) or not re.fullmatch(r"CPU|N\d+C\d+", parts[4]):
        shape = "<model type>_bs<B>_<fp32|fp16|amp>_<run mode>_<CPU|NxCy>"
        msg = f"expected {shape} such as dynamic_bs8_fp32_DP_N1C1, got {text!r}"
        raise ValueError(msg)
    return RowChoice(batch_size=parts[1][2:], fp_item=_precision(parts[2]), run_mode=parts[3], device_num=parts[4])


def choose_row(params: BenchmarkParams, row: RowChoice) -> BenchmarkParams:
    """The params narrowed to one row. As TIPC does, the epoch count is multiplied by machines x cards of the row."""
    epoch = int(params.epoch)
    match = re.fullmatch(r"N(\d+)C(\d+)", row.device_num)
    if match is not None:
        epoch *= int(match.group(1)) * int(match.group(2))
    return dataclasses.replace(params, batch_sizes=(row.batch_size,), fp_items=(row.fp_item,), epoch=str(epoch))


def _device_ids(device_num: str) -> str:
    """``N1C4`` -> ``0,1,2,3`` (cards of one machine); ``CPU`` -> ``-1``."""
    if device_num == "CPU":
        return "-1"
    match = re.fullmatch(r"N(\d+)C(\d+)", device_num)
    if match is None:
        msg = f"device rows are CPU or N<machines>C<cards>, got {device_num!r}"
        raise ValueError(msg)
    machines, cards = int(match.group(1)), int(match.group(2))
    per_machine = max(cards // machines, 1)
    return ",".join(str(i) for i in range(per_machine))


def _rewrite(config: TipcConfig, values: Mapping[int, str]) -> TipcConfig:
    """The config with some logical lines' values replaced (key and line numbers kept, so errors still point home)."""
    entries = tuple(
        dataclasses.replace(e, text=f"{e.key}:{values[e.index]}") if e.index in values else e for e in config.entries
    )
    return dataclasses.replace(config, entries=entries)


def plan_runs(
    config: TipcConfig,
    params: BenchmarkParams,
    options: PlanOptions,
    *,
    devices: Sequence[str] = DEVICE_ROWS,
    run_mode: str = "DP",
    log_dir: str = "test_tipc/output/benchmark_train/train_log",
) -> tuple[BenchmarkRun, ...]:
    """Batch size x precision x device rows, each planned as a lite run with the benchmark's epoch and batch size."""
    lines = _LINES.get(config.layout)
    if lines is None:
        raise ConfigError(config.path, 0, f"the {config.layout} layout has no training to benchmark")
    runs: list[BenchmarkRun] = []
    for batch in params.batch_sizes:
        for fp_item in params.fp_items:
            for device in devices:
                values = {
                    lines["gpu_list"]: _device_ids(device),
                    lines["epoch"]: f"{_PLAN_MODE}={params.epoch}",
                    lines["batch_size"]: f"{_PLAN_MODE}={batch}",
                }
                skip = ""
                if "precision" in lines:
                    values[lines["precision"]] = "amp" if fp_item == "fp16" else fp_item
                elif fp_item != "fp32":
                    skip = f"{fp_item}: the {config.layout} layout has no precision line to set"
                plan = build_plan(_rewrite(config, values), _PLAN_MODE, options)
                name = f"{plan.model_name}_bs{batch}_{fp_item}_{run_mode}_{device}"
                profile = params.profile_value not in ("", "null") and device == "N1C1"
                trains = [s for c in plan.chains for s in c.steps if s.kind is StepKind.TRAIN]
                steps = tuple(
                    dataclasses.replace(
                        s,
                        name=s.name if len(trains) == 1 else f"{s.name}_{i}",
                        needs=(),
                        command=dataclasses.replace(
                            s.command,
                            env=(*s.command.env, *params.flags),
                            # One log per row (TIPC's <model>_bs<B>_<fp>_<mode>_<devices>_log), not per chain id.
                            log_path=f"{log_dir}/{name}{'' if len(trains) == 1 else f'_{i}'}_log",
                        ),
                    )
                    for i, s in enumerate(trains, start=1)
                )
                chain = Chain(id=name, model=plan.model_name, mode="benchmark_train", steps=steps)
                profiling = tuple(
                    dataclasses.replace(
                        s,
                        name=f"{s.name}_profiling",
                        command=dataclasses.replace(
                            s.command,
                            argv=(*s.command.argv, f"{params.profile_key}={params.profile_value}"),
                            log_path=s.command.log_path.removesuffix("_log") + "_profiling",
                        ),
                    )
                    for s in (steps if profile else ())
                )
                runs.append(
                    BenchmarkRun(
                        name=name,
                        model_name=plan.model_name,
                        batch_size=int(batch),
                        fp_item=fp_item,
                        run_mode=run_mode,
                        device_num=device,
                        chain=chain,
                        skip_reason=skip,
                        profiling=profiling,
                    )
                )
    return tuple(runs)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TrainNumbers:
    ips: float | None  # mean of the ips windows after the first SKIP_STEPS
    ips_samples: int
    loss: float | None  # the last loss the log shows (TIPC's convergence value)
    memory: tuple[tuple[str, float], ...]


def parse_train_log(text: str, *, skip_steps: int = SKIP_STEPS) -> TrainNumbers:
    """ips (samples/s), last loss and GPU memory lines from a training log, as TIPC's log analysis reads them."""
    values = [float(v) for v in _IPS.findall(text)]
    kept = values[skip_steps:] if len(values) > skip_steps else values
    losses = [v for v in _LOSS.findall(text) if _is_number(v)]
    memory = tuple(
        (key, max(float(v) for v in pattern.findall(text))) for key, pattern in _MEM.items() if pattern.search(text)
    )
    return TrainNumbers(
        ips=sum(kept) / len(kept) if kept else None,
        ips_samples=len(kept),
        loss=float(losses[-1]) if losses else None,
        memory=memory,
    )


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    ok: bool
    message: str  # "" when there is nothing to say


def gate(record: Mapping[str, object], baseline: Mapping[str, Mapping[str, object]], tolerance: float) -> Verdict:
    """Compare a result's ips with the baseline's: slower beyond ``tolerance`` fails, faster beyond it is reported."""
    key = f"{record['model_name']}_{record['device_num']}"
    base = baseline.get(key)
    ips = record.get("ips")
    if base is None or not isinstance(base.get("ips"), (int, float)):
        return Verdict(ok=True, message=f"{key}: no baseline ips to compare with")
    if not isinstance(ips, (int, float)):
        return Verdict(ok=False, message=f"{key}: no ips in the training log (baseline {base['ips']} samples/s)")
    reference = float(base["ips"])  # type: ignore[arg-type]
    change = (float(ips) - reference) / reference if reference else 0.0
    numbers = f"{float(ips):.2f} vs baseline {reference:.2f} samples/s ({change:+.1%}, tolerance {tolerance:.0%})"
    if change < -tolerance:
        return Verdict(ok=False, message=f"{key}: slower: {numbers}")
    if change > tolerance:
        return Verdict(ok=True, message=f"{key}: faster than the baseline, unexplained: {numbers}; update it if meant")
    return Verdict(ok=True, message="")


def load_baseline(path: Path) -> dict[str, dict[str, object]]:
    """A baseline file: a JSON list of result records (what ``--write-baseline`` writes), keyed by model and devices."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), 0, f"cannot read baseline: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), exc.lineno, f"baseline is not JSON: {exc.msg}") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) and "model_name" in r for r in data):
        raise ConfigError(str(path), 1, "baseline: expected a JSON list of benchmark result records")
    return {f"{r['model_name']}_{r.get('device_num', '')}": r for r in data}


def result_record(
    run: BenchmarkRun,
    result: StepResult,
    numbers: TrainNumbers | None,
    *,
    run_time_s: float,
    max_rss_mb: float | None,
    frame_version: str,
) -> dict[str, object]:
    """One result in TIPC's benchmark fields (model_name, batch_size, fp_item, run_mode, ips, ...), plus ours."""
    record: dict[str, object] = {
        "model_branch": "",
        "model_commit": "",
        "model_name": f"{run.model_name}_bs{run.batch_size}_{run.fp_item}_{run.run_mode}",
        "batch_size": run.batch_size,
        "fp_item": run.fp_item,
        "run_mode": run.run_mode,
        "convergence_value": numbers.loss if numbers else None,
        "convergence_key": "loss:",
        "ips": round(numbers.ips, 3) if numbers and numbers.ips is not None else None,
        "speed_unit": "samples/s",
        "device_num": run.device_num,
        "model_run_time": round(run_time_s, 3),
        "frame_commit": "",
        "frame_version": frame_version,
        "status": str(result.status),
        "reason": result.reason,
        "log_path": result.log_path,
    }
    for key, value in numbers.memory if numbers else ():
        record[key] = value
    if max_rss_mb is not None:
        record["max_rss_mb"] = round(max_rss_mb, 1)
    return record


def children_max_rss_mb() -> float:
    """High-water resident memory of finished child processes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def execute(
    runs: Sequence[BenchmarkRun],
    *,
    root: Path,
    hardware: Hardware,
    run_step: Callable[[Step, Chain], StepResult],
    frame_version: str,
    on_record: Callable[[BenchmarkRun, dict[str, object]], None],
) -> None:
    """Run every row's training steps; GPU rows on a host without one are skipped with the reason."""
    for run in runs:
        if not run.skip_reason:
            for step in run.profiling:
                run_step(step, run.chain)  # its log is for the profiler's output; the numbers come from the next run
        for step in run.chain.steps:
            if run.skip_reason:
                result = StepResult(
                    chain_id=run.chain.id, step_name=step.name, kind=str(step.kind), status=StepStatus.SKIPPED,
                    command=step.command.display(), log_path=step.command.log_path, reason=run.skip_reason,
                )
                on_record(run, result_record(run, result, None, run_time_s=0.0, max_rss_mb=None,
                                             frame_version=frame_version))
                continue
            missing = hardware.missing(step.requires)
            before = children_max_rss_mb()
            started = time.monotonic()
            result = run_step(step, run.chain)
            elapsed = time.monotonic() - started
            numbers = None
            if missing is None and result.status is not StepStatus.SKIPPED:
                try:
                    log_text = (root / step.command.log_path).read_text(encoding="utf-8", errors="replace")
                    numbers = parse_train_log(log_text)
                except OSError:
                    numbers = None
            after = children_max_rss_mb()
            # The high-water mark only says something about this run when this run raised it.
            rss = after if after > before else None
            on_record(run, result_record(run, result, numbers, run_time_s=elapsed, max_rss_mb=rss,
                                         frame_version=frame_version))
