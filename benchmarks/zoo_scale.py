"""Zoo scale: start-up, lint, plan per config x mode, grid growth and pytest collection over a folder of configs."""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.config import TipcConfig, load_config, parse_config_text
from harness.errors import ConfigError
from harness.plan import MODES, PlanOptions, build_plan

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "tipc-conformance"
GRID_CONFIG = REPO / "test_tipc" / "configs" / "mobilenet_v3_small" / "train_infer_python.txt"
GOALS = {
    "plan_ms_per_case": 1.0,
    "startup_ms": 250.0,
    "lint_1000_configs_s": 3.0 * 1000 / 521,  # the 521 configs in 3 s, scaled per config
    "collect_500x2_s": 10.0,
}


def _configs(folders: Sequence[Path]) -> list[tuple[Path, TipcConfig]]:
    """Every .txt under the folders that parses as a TIPC train/infer config (ptq and others are kept too)."""
    out: list[tuple[Path, TipcConfig]] = []
    for folder in folders:
        for path in sorted(folder.rglob("*.txt")):
            try:
                out.append((path, load_config(path)))
            except ConfigError:
                continue  # not a config (reference command lists, notes)
    return out


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall(argv: Sequence[str], *, repeat: int = 5, cwd: Path = REPO) -> tuple[float, float]:
    """Median wall and CPU time of a command in ms (a fresh interpreter each time: start-up is what is measured).

    CPU time (user + system of the child) is printed too: on a shared machine wall time mostly measures the load.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        cpu0 = _children_cpu_s()
        started = time.perf_counter()
        subprocess.run(list(argv), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        walls.append((time.perf_counter() - started) * 1000.0)
        cpus.append((_children_cpu_s() - cpu0) * 1000.0)
    return statistics.median(walls), statistics.median(cpus)


def startup(python: str, config: Path) -> dict[str, tuple[float, float]]:
    return {
        "import_harness_cli_ms": _wall([python, "-c", "import harness.cli"]),
        "tipc_plan_ms": _wall([python, "-m", "harness", "plan", str(config), "lite_train_lite_infer"]),
        "tipc_lint_one_ms": _wall([python, "-m", "harness", "lint", str(config)]),
        "python_bare_ms": _wall([python, "-c", "pass"]),
    }


def plan_costs(configs: Sequence[tuple[Path, TipcConfig]], root: Path) -> list[tuple[str, str, float, int]]:
    """(config, mode, CPU ms, steps) for every config x mode that plans (config errors are skipped, not timed).

    Process CPU time, not wall time: planning is single-threaded and CPU-bound, and this machine is shared.
    """
    options = PlanOptions(repo_root=str(root))
    rows: list[tuple[str, str, float, int]] = []
    for path, config in configs:
        for mode in MODES:
            started = time.process_time()
            try:
                plan = build_plan(config, mode, options)
            except ConfigError:
                continue
            rows.append((str(path), mode, (time.process_time() - started) * 1000.0, len(plan.steps)))
    return rows


def lint_wall(python: str, paths: Sequence[Path]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [python, "-m", "harness", "lint", *map(str, paths)], cwd=REPO, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, check=False,
    )
    return time.perf_counter() - started


def grid_config(batches: int) -> TipcConfig:
    """The MobileNetV3 config with an inference batch-size list of ``batches`` values (a grid that size x 2 x 2)."""
    text = GRID_CONFIG.read_text(encoding="utf-8")
    # The inference section's batch line is the second "--batch-size:" line; widen that one only.
    lines = text.splitlines()
    index = [i for i, line in enumerate(lines) if line.startswith("--batch-size:")][-1]
    lines[index] = "--batch-size:" + "|".join(str(b) for b in range(1, batches + 1))
    return parse_config_text(str(GRID_CONFIG), "\n".join(lines) + "\n")


def growth(targets: Sequence[int]) -> list[tuple[int, int, float]]:
    """(target steps, planned steps, CPU seconds) for grids of about ``targets`` steps."""
    options = PlanOptions(repo_root=str(REPO))
    per_batch = len(build_plan(grid_config(10), "whole_infer", options).steps) / 10
    rows = []
    for target in targets:
        batches = max(1, round(target / per_batch))
        config = grid_config(batches)
        started = time.process_time()
        plan = build_plan(config, "whole_infer", options)
        rows.append((target, len(plan.steps), time.process_time() - started))
    return rows


def collection(
    python: str, configs: Sequence[Path], *, count: int, modes: Sequence[str]
) -> dict[str, tuple[float, float, str]]:
    """Wall time of `pytest --collect-only` over ``count`` configs (the corpus repeated) in a throwaway run root."""
    out: dict[str, tuple[float, float, str]] = {}  # name -> (wall s, cpu s, pytest's last line)
    with tempfile.TemporaryDirectory(prefix="zoo-") as tmp:
        root = Path(tmp)
        for i in range(count):
            source = configs[i % len(configs)]
            target = root / "test_tipc" / "configs" / f"m{i:04d}_{re.sub(r'[^A-Za-z0-9_]', '_', source.parent.name)}"
            target.mkdir(parents=True)
            shutil.copy(source, target / source.name)
        (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        base = [python, "-m", "pytest", "-p", "harness.pytest_plugin", "--collect-only", "-q", "--rootdir", str(root)]
        for mode in modes:
            base += ["--tipc-mode", mode]
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "TIPC_GPU_COUNT": "0"}

        def timed(name: str, extra: Sequence[str]) -> None:
            cpu0 = _children_cpu_s()
            started = time.perf_counter()
            done = subprocess.run([*base, *extra], cwd=root, env=env, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - started
            tail = done.stdout.strip().splitlines()[-1:] or ["(no output)"]
            out[name] = (wall, _children_cpu_s() - cpu0, tail[0])

        timed("default_s", [])
        timed("default_k_s", ["-k", "not m0000"])
        timed("default_xdist2_s", ["-p", "xdist.plugin", "-n", "2"])
        timed("cold_cache_s", ["--tipc-plan-cache"])
        timed("warm_cache_s", ["--tipc-plan-cache"])
        timed("warm_cache_xdist2_s", ["--tipc-plan-cache", "-p", "xdist.plugin", "-n", "2"])
    return out


def _summary(values: Sequence[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"mean {statistics.fmean(ordered):.2f}  median {statistics.median(ordered):.2f}  p95 {p95:.2f}  "
        f"max {ordered[-1]:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folders", nargs="*", type=Path, help=f"config folders (default: {DEFAULT_CORPUS})")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--grid", default="2000,5000,10000,20000", help="grid sizes in steps, comma-separated")
    parser.add_argument("--collect", type=int, default=500, help="configs in the collection run (corpus repeated)")
    parser.add_argument("--skip", action="append", default=[], choices=("startup", "lint", "plan", "grid", "collect"))
    parser.add_argument("--per-case", action="store_true", help="print every config x mode's cost")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    folders = args.folders or [DEFAULT_CORPUS]
    configs = _configs(folders)
    report: dict[str, object] = {"configs": len(configs), "folders": [str(f) for f in folders], "goals": GOALS}
    print(f"zoo_scale: {len(configs)} configs under {', '.join(map(str, folders))}")
    step: Callable[[str], bool] = lambda name: name not in args.skip  # noqa: E731

    if step("startup"):
        numbers = startup(args.python, GRID_CONFIG)
        report["startup"] = numbers
        for key, (wall, cpu) in numbers.items():
            print(f"startup  {key:<24} wall {wall:8.1f} ms  cpu {cpu:7.1f} ms   (goal <= {GOALS['startup_ms']:.0f} ms)")
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            print("startup  note: PYTHONDONTWRITEBYTECODE is set, so the harness is compiled again on every start")
    if step("lint"):
        seconds = lint_wall(args.python, [p for p, _ in configs])
        report["lint_s"] = seconds
        per = seconds / len(configs) * 1000
        print(f"lint     {len(configs)} configs in one `tipc lint`: {seconds:.2f} s ({per:.1f} ms/config)")
    if step("plan"):
        rows = plan_costs(configs, REPO)
        report["plan"] = [{"config": c, "mode": m, "ms": ms, "steps": n} for c, m, ms, n in rows]
        costs = [ms for _, _, ms, _ in rows]
        print(f"plan     {len(rows)} config x mode cases, CPU ms per case: {_summary(costs)}   "
              f"(goal mean <= {GOALS['plan_ms_per_case']} ms)")
        for mode in MODES:
            of_mode = [ms for _, m, ms, _ in rows if m == mode]
            if of_mode:
                print(f"           {mode:<26} {_summary(of_mode)}")
        slowest = sorted(rows, key=lambda r: -r[2])[:5]
        for config, mode, ms, n in slowest:
            print(f"           slowest: {ms:7.2f} ms  {n:4d} steps  {mode}  {config}")
        if args.per_case:
            for config, mode, ms, n in rows:
                print(f"  {ms:8.3f} ms  {n:5d} steps  {mode:<26} {config}")
    if step("grid"):
        targets = [int(t) for t in args.grid.split(",") if t.strip()]
        curve = growth(targets)
        report["grid"] = [{"target": t, "steps": n, "s": s} for t, n, s in curve]
        for target, steps, seconds in curve:
            per_step = seconds / steps * 1e6
            print(f"grid     ~{target:>6} steps: {steps:6d} planned in {seconds:7.3f} s CPU ({per_step:6.1f} us/step)")
        if len(curve) >= 2:
            (_, n0, s0), (_, n1, s1) = curve[0], curve[-1]
            linear = s0 * n1 / n0
            print(f"grid     largest vs linear extrapolation of the smallest: {s1:.3f} s vs {linear:.3f} s "
                  f"= {s1 / linear:.2f}x   (goal <= 2x)")
    if step("collect"):
        modes = ("lite_train_lite_infer", "whole_infer")
        collected = collection(args.python, [p for p, _ in configs], count=args.collect, modes=modes)
        report["collect"] = collected
        for key, (wall, cpu, last) in collected.items():
            print(f"collect  {args.collect} configs x {len(modes)} modes, {key:<20} wall {wall:7.2f} s  "
                  f"cpu {cpu:7.2f} s   ({last})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
