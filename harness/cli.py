"""The ``tipc`` command line (also ``python -m harness``): plan, run, lint and prepare TIPC configs."""

from __future__ import annotations

import argparse
import enum
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from typing import TYPE_CHECKING

from harness import __version__
from harness.config import load_config
from harness.errors import ConfigError, HarnessError
from harness.flavors import AUTO, FLAVORS
from harness.logger import setup_logging
from harness.plan import MODES, PlanOptions, build_plan
from harness.steps import Chain, Plan, Step, StepKind

if TYPE_CHECKING:
    from harness.status import StepResult

# Start-up cost matters (`tipc plan` should answer in a blink): modules that only running, preparing or
# rewriting goldens need (runner, execute, hardware, status, golden, prepare) are imported by those handlers.

__all__ = ["ExitCode", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # some step failed, timed out or could not start
    USAGE = 2  # bad command line
    CONFIG_ERROR = 2  # bad config (alias of USAGE: both mean "fix your input")
    INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
    TERMINATED = 143  # SIGTERM (a CI job cancelled), as a shell reports it


class _Terminated(BaseException):
    """Raised from the SIGTERM handler. A BaseException, so no ``except Exception`` boundary turns it into a
    step ERROR, and the runner kills the running step's process group on the way out."""


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]), run the subcommand and return its exit code."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = _build_parser(full=_first_word(arguments) not in _OWN_COMMANDS)
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # --help exits 0, a usage error 2; return it rather than leave the process
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    setup_logging(verbosity=getattr(args, "verbose", 0))
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        print("tipc: error: choose a subcommand", file=sys.stderr)
        return ExitCode.USAGE
    try:
        with _sigterm_unwinds():
            return int(handler(args))
    except KeyboardInterrupt:
        print("tipc: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except _Terminated:
        print("tipc: terminated", file=sys.stderr)
        return ExitCode.TERMINATED
    except HarnessError as exc:  # ConfigError renders as "path:line: message"; bad input never shows a traceback
        print(str(exc), file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    except BrokenPipeError:  # `tipc plan ... | head`: the reader left; nothing more to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (stop the interpreter's flush at exit from failing)
        return ExitCode.OK


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into an exception while a subcommand runs.

    Steps run in sessions of their own (so Ctrl-C and timeouts can stop whole trees), which also means nobody
    else stops them: if we died from SIGTERM's default action, a cancelled CI job would leave training running.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (main() called from a worker thread): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


# Subcommands defined in this module. For these the report and matrix modules (their subcommands' definitions and
# what they import) are not loaded at all; any other first word, --help included, gets the full parser.
_OWN_COMMANDS = frozenset({"plan", "run", "lint", "prepare", "update-goldens", "affected", "benchmark"})


def _first_word(argv: Sequence[str]) -> str | None:
    for word in argv:
        if not word.startswith("-"):
            return word
        if word in ("-h", "--help", "--version"):
            return None
    return None


def build_parser() -> argparse.ArgumentParser:
    """The whole ``tipc`` parser, every subcommand included."""
    return _build_parser(full=True)


def _build_parser(*, full: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tipc",
        description="Run PaddlePaddle TIPC train -> quantize -> export -> inference chains from TIPC configs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    planning = argparse.ArgumentParser(add_help=False)
    planning.add_argument("config", help="TIPC config file (train_infer_python .txt)")
    planning.add_argument("mode", choices=MODES, metavar="MODE", help=f"one of: {', '.join(MODES)}")
    planning.add_argument(
        "--flavor",
        choices=(AUTO, *FLAVORS),
        default=AUTO,
        help="repository conventions to follow (default: auto-detect from the config)",
    )
    planning.add_argument("--quirks", action="store_true", help="reproduce the reference scripts' known bugs too")
    planning.add_argument("--root", default=None, help="run root: the repository the config belongs to (default: .)")

    sub = parser.add_subparsers(title="subcommands", metavar="COMMAND")

    p_plan = sub.add_parser("plan", parents=[common, planning], help="show what a run would execute")
    p_plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    p_plan.set_defaults(handler=_cmd_plan)

    p_run = sub.add_parser("run", parents=[common, planning], help="plan and execute; exit 1 if any step failed")
    p_run.add_argument(
        "gpu_ids",
        nargs="?",
        default=None,
        metavar="GPU_IDS",
        help="set CUDA_VISIBLE_DEVICES for the run (the reference script's optional third argument)",
    )
    p_run.add_argument("--timeout", type=_positive_seconds, default=None, metavar="S", help="per-command timeout")
    p_run.add_argument(
        "--only",
        action="extend",
        nargs="+",
        default=[],
        choices=[str(kind) for kind in StepKind],
        metavar="KIND",
        help="run only these step kinds; prerequisites left out count as done by an earlier run",
    )
    p_run.add_argument("--python", default=None, metavar="PATH", help="interpreter to use instead of the config's")
    p_run.set_defaults(handler=_cmd_run)

    p_lint = sub.add_parser("lint", parents=[common], help="check configs; report every error as path:line: message")
    p_lint.add_argument("configs", nargs="+", metavar="CONFIG")
    p_lint.set_defaults(handler=_cmd_lint)

    p_prepare = sub.add_parser("prepare", parents=[common, planning], help="build the data a config's model needs")
    p_prepare.add_argument("--timeout", type=_positive_seconds, default=None, metavar="S")
    p_prepare.add_argument("--python", default=None, metavar="PATH", help="interpreter for the preparation script")
    p_prepare.set_defaults(handler=_cmd_prepare)

    p_goldens = sub.add_parser(
        "update-goldens", parents=[common, planning], help="rewrite a config's golden results from its last run's logs"
    )
    p_goldens.set_defaults(handler=_cmd_update_goldens)

    p_affected = sub.add_parser(
        "affected", parents=[common], help="list the config x mode cases whose inputs changed since a git revision"
    )
    p_affected.add_argument("configs", nargs="*", metavar="CONFIG", help="default: test_tipc/configs/*/*.txt")
    p_affected.add_argument("--since", required=True, metavar="REV", help="git revision to compare the work tree with")
    p_affected.add_argument("--mode", action="append", choices=MODES, metavar="MODE", help="repeatable (default: all)")
    p_affected.add_argument("--root", default=None, help="repository root (default: .)")
    p_affected.add_argument("--json", action="store_true", help="print the selection as JSON")
    p_affected.set_defaults(handler=_cmd_affected)

    p_bench = sub.add_parser(
        "benchmark", parents=[common], help="TIPC benchmark_train: time training from train_benchmark_params, gate"
    )
    p_bench.add_argument("config", help="TIPC config with a train_benchmark_params section")
    p_bench.add_argument("mode", nargs="?", default="benchmark_train", choices=("benchmark_train",), metavar="MODE")
    p_bench.add_argument(
        "row", nargs="?", default=None, metavar="PARAMS", help="one row (TIPC's third argument): dynamic_bs8_fp32_DP_N1C1"
    )
    p_bench.add_argument("--root", default=None, help="run root (default: .)")
    p_bench.add_argument("--devices", default="CPU,N1C1,N1C4", help="rows: CPU and/or N<machines>C<cards>")
    p_bench.add_argument("--baseline", default=None, metavar="FILE", help="JSON list of earlier results to gate on")
    p_bench.add_argument("--tolerance", type=float, default=0.25, help="ips change the gate allows (default 0.25)")
    p_bench.add_argument("--write-baseline", default=None, metavar="FILE", help="write this run's results as one")
    p_bench.add_argument("--timeout", type=_positive_seconds, default=None, metavar="S")
    p_bench.add_argument("--python", default=None, metavar="PATH", help="interpreter to use instead of the config's")
    p_bench.set_defaults(handler=_cmd_benchmark)

    if full:
        from harness import matrix, reports  # noqa: PLC0415  (see _OWN_COMMANDS)

        reports.register_cli(sub)
        matrix.register_cli(sub)
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        msg = f"expected a positive number of seconds, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _root(args: argparse.Namespace) -> Path:
    return Path(args.root) if args.root else Path.cwd()


def _plan(args: argparse.Namespace) -> Plan:
    config = load_config(args.config)
    options = PlanOptions(flavor=args.flavor, quirks=args.quirks, repo_root=str(_root(args)))
    return build_plan(config, args.mode, options)


# --- plan ----------------------------------------------------------------------------------------------------------


def _cmd_plan(args: argparse.Namespace) -> int:
    plan = _plan(args)
    if args.json:
        print(json.dumps(plan.to_json(), indent=2))
    else:
        print(_describe_plan(plan))
    return ExitCode.OK


def _describe_plan(plan: Plan) -> str:
    lines = [
        f"config:  {plan.config_path}",
        f"model:   {plan.model_name}",
        f"mode:    {plan.mode}",
        f"flavor:  {plan.flavor}{' (with quirks)' if plan.quirks else ''}",
        f"results: {plan.results_log}",
        *(f"note:    {note}" for note in plan.notes),
    ]
    for chain in plan.chains:
        lines += ["", f"chain {chain.id}"]
        for step in chain.steps:
            lines += _describe_step(step)
    if not plan.chains:
        lines += ["", "nothing to run for this mode"]
    return "\n".join(lines)


def _describe_step(step: Step) -> list[str]:
    where = f"  (line {step.line})" if step.line else ""
    lines = [
        f"  {step.name} [{step.kind}]{where}",
        f"    $ {step.command.display()}",
        f"    log: {step.command.log_path}",
    ]
    if step.needs:
        lines.append(f"    needs: {', '.join(step.needs)}")
    if step.requires:
        lines.append(f"    requires: {', '.join(str(r) for r in step.requires)}")
    return lines


# --- run -----------------------------------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.execute import run_plan, selected  # noqa: PLC0415  (on use, see the imports above)
    from harness.hardware import detect_hardware  # noqa: PLC0415
    from harness.reports import SIDECAR, append_record, command_failed, step_record  # noqa: PLC0415
    from harness.status import ResultsLog, run_succeeded  # noqa: PLC0415

    root = _root(args)
    plan = _plan(args)
    config_name = _config_name(args.config, root)
    with _cuda_visible_devices(args.gpu_ids):
        hardware = detect_hardware()
        print(f"tipc run: {plan.model_name} {plan.mode} ({plan.flavor}); {hardware.describe()}; root {root}")
        for note in plan.notes:
            print(f"note: {note}")
        if args.only:
            left_out = sum(1 for step in plan.steps if not selected(step, args.only))
            print(f"--only {' '.join(args.only)}: {left_out} other step(s) not run")
        results: list[StepResult] = []
        with ResultsLog(root / plan.results_log, model_name=plan.model_name) as results_log:

            def on_start(chain: Chain, step: Step) -> None:
                print(f"{'RUN':<8} {chain.id}::{step.name}", flush=True)

            def on_result(result: StepResult) -> None:
                results.append(result)
                results_log.write(result)
                chain = next(c for c in plan.chains if c.id == result.chain_id)
                record = step_record(config=config_name, plan=plan, chain=chain, step=chain.step(result.step_name),
                                     result=result, failure=command_failed(result, root=root))
                append_record(root / plan.output_dir / SIDECAR, record)
                why = f"  ({result.reason})" if result.reason else ""
                print(f"{str(result.status).upper():<8} {result.chain_id}::{result.step_name}{why}", flush=True)

            try:
                run_plan(
                    plan,
                    root=root,
                    hardware=hardware,
                    only_kinds=tuple(args.only),
                    python=args.python,
                    timeout_s=args.timeout,
                    on_result=on_result,
                    on_start=on_start,
                )
            finally:  # also on Ctrl-C or SIGTERM: show what finished before main() picks the exit code
                _print_summary(results, root / plan.results_log)
    return ExitCode.OK if run_succeeded(results) else ExitCode.FAILED


def _config_name(config: str, root: Path) -> str:
    """The config as reports name it: relative to the run root when it lies below it."""
    path = Path(config).resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _print_summary(results: Sequence[StepResult], results_log: Path) -> None:
    from harness.status import summary_table  # noqa: PLC0415

    print()
    print(summary_table(results))
    print(f"results: {results_log}")


@contextmanager
def _cuda_visible_devices(gpu_ids: str | None) -> Iterator[None]:
    """Set CUDA_VISIBLE_DEVICES for the run (steps inherit it), as the reference script's ``export`` does."""
    if gpu_ids is None:
        yield
        return
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu_ids
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved


# --- lint ----------------------------------------------------------------------------------------------------------


def _cmd_lint(args: argparse.Namespace) -> int:
    errors: list[str] = []
    options = PlanOptions(flavor=AUTO, quirks=False, repo_root=str(Path.cwd()))
    for path in args.configs:
        try:
            config = load_config(path)
        except ConfigError as exc:
            errors.append(exc.render())
            continue
        # One error per problem: a bad line breaks every mode the same way, so repeat lines are dropped.
        for mode in MODES:
            try:
                build_plan(config, mode, options)
            except ConfigError as exc:
                if exc.render() not in errors:
                    errors.append(exc.render())
    for line in errors:
        print(line)
    print(f"tipc lint: {len(args.configs)} config(s), {len(errors)} error(s)", file=sys.stderr)
    return ExitCode.CONFIG_ERROR if errors else ExitCode.OK


# --- affected ------------------------------------------------------------------------------------------------------


def _cmd_affected(args: argparse.Namespace) -> int:
    from harness import affected  # noqa: PLC0415  (on use, see the imports above)

    root = _root(args).resolve()
    configs = tuple(_config_name(c, root) for c in args.configs) or affected.default_configs(root)
    modes = tuple(dict.fromkeys(args.mode or MODES))
    changed = affected.changed_files(root, args.since)
    cases, problems = affected.plan_cases(root, configs, modes, PlanOptions(repo_root=str(root)))
    selection = affected.select_cases(cases, changed)
    if args.json:
        print(json.dumps({**selection.to_json(), "changed": list(changed), "config_errors": problems}, indent=2))
        return ExitCode.OK
    for line in problems:
        print(f"note: {line} (the case depends on its config only)", file=sys.stderr)
    for reason in selection.everything:
        print(f"everything: {reason}")
    for config, mode in selection.cases:
        why = ", ".join(selection.because.get((config, mode), ()))
        print(f"{config} {mode}" + (f"  ({why})" if why else ""))
    print(
        f"tipc affected: {len(changed)} changed file(s) since {args.since}; "
        f"{len(selection.cases)} of {len(cases)} case(s) selected; {len(selection.unrelated)} change(s) touch no case",
        file=sys.stderr,
    )
    return ExitCode.OK


# --- benchmark -----------------------------------------------------------------------------------------------------


def _cmd_benchmark(args: argparse.Namespace) -> int:
    import importlib.metadata  # noqa: PLC0415  (on use, see the imports above)

    from harness import benchmark_train as bench  # noqa: PLC0415
    from harness.execute import run_step  # noqa: PLC0415
    from harness.hardware import detect_hardware  # noqa: PLC0415

    root = _root(args)
    config = load_config(args.config)
    params = bench.read_params(config)
    devices = tuple(d.strip() for d in args.devices.split(",") if d.strip())
    run_mode = "DP"
    if args.row is not None:
        try:
            row = bench.parse_row(args.row)
        except ValueError as exc:
            print(f"tipc benchmark: PARAMS: {exc}", file=sys.stderr)
            return ExitCode.USAGE
        params = bench.choose_row(params, row)
        devices, run_mode = (row.device_num,), row.run_mode
    for device in devices:
        if device != "CPU" and not re.fullmatch(r"N\d+C\d+", device):
            print(f"tipc benchmark: --devices: expected CPU or N<machines>C<cards>, got {device!r}", file=sys.stderr)
            return ExitCode.USAGE
    baseline = bench.load_baseline(Path(args.baseline)) if args.baseline else {}
    options = PlanOptions(repo_root=str(root), output_root="test_tipc/output/benchmark_train")
    save = Path(os.environ.get("BENCHMARK_LOG_DIR") or root / "test_tipc" / "output" / "benchmark_train")
    log_dir = _config_name(str(save / "train_log"), root)
    runs = bench.plan_runs(config, params, options, devices=devices, run_mode=run_mode, log_dir=log_dir)
    hardware = detect_hardware()
    try:
        frame_version = importlib.metadata.version("paddlepaddle")
    except importlib.metadata.PackageNotFoundError:
        frame_version = ""
    print(f"tipc benchmark: {len(runs)} row(s) of {args.config}; {hardware.describe()}")
    records: list[dict[str, object]] = []
    failed = False

    def on_record(run: bench.BenchmarkRun, record: dict[str, object]) -> None:
        nonlocal failed
        records.append(record)
        index = save / "index"
        index.mkdir(parents=True, exist_ok=True)
        (index / f"{run.name}_speed").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        status = str(record["status"])
        verdict = bench.gate(record, baseline, args.tolerance) if status == "passed" and baseline else None
        if status in ("failed", "timeout", "error") or (verdict is not None and not verdict.ok):
            failed = True
        ips = record["ips"]
        shown = f"ips {ips} samples/s" if ips is not None else (str(record["reason"]) or "no ips")
        print(f"{status.upper():<8} {run.name}: {shown}", flush=True)
        if verdict is not None and verdict.message:
            print(f"{'GATE' if verdict.ok else 'SLOWER'}   {verdict.message}", flush=True)

    bench.execute(
        runs,
        root=root,
        hardware=hardware,
        run_step=lambda step, chain: run_step(
            step, chain, root=root, hardware=hardware, prior={}, python=args.python, timeout_s=args.timeout
        ),
        frame_version=frame_version,
        on_record=on_record,
    )
    if args.write_baseline:
        kept = [r for r in records if r["status"] == "passed"]
        Path(args.write_baseline).write_text(json.dumps(kept, indent=2) + "\n", encoding="utf-8")
        print(f"baseline: {len(kept)} result(s) written to {args.write_baseline}")
    print(f"results: {save / 'index'}")
    return ExitCode.FAILED if failed else ExitCode.OK


# --- prepare -------------------------------------------------------------------------------------------------------


def _cmd_update_goldens(args: argparse.Namespace) -> int:
    from harness.golden import update_goldens  # noqa: PLC0415

    root = _root(args)
    plan = _plan(args)
    messages = update_goldens(plan, root=root)
    if not messages:
        print(f"tipc update-goldens: {args.config} has no compare steps in {plan.mode} (no golden_dir)")
    for message in messages:
        print(message)
    return ExitCode.FAILED if any("disagree" in m or "could not" in m for m in messages) else ExitCode.OK


def _cmd_prepare(args: argparse.Namespace) -> int:
    from harness.prepare import lookup, prepare_command  # noqa: PLC0415
    from harness.runner import run_command  # noqa: PLC0415

    root = _root(args)
    plan = _plan(args)  # validates config and mode, and names the model and its output folder
    entry = lookup(plan.model_name)
    if entry is None or not entry.applies_to(plan.mode):
        print(f"tipc prepare: {plan.model_name} ({plan.mode}) needs no data preparation")
        return ExitCode.OK
    command = prepare_command(entry, root=root, log_path=f"{plan.output_dir}/prepare.log")
    if command is None:
        print(
            f"tipc prepare: {plan.model_name}: preparation script {entry.script} not found under {root}",
            file=sys.stderr,
        )
        return ExitCode.FAILED
    print(f"tipc prepare: {plan.model_name} ({plan.mode}): {command.display()}", flush=True)
    outcome = run_command(command, root=root, python=args.python, timeout_s=args.timeout)
    why = f" ({outcome.reason})" if outcome.reason else ""
    print(f"{str(outcome.status).upper()}{why} in {outcome.duration_s:.1f} s; log: {root / command.log_path}")
    return ExitCode.OK if outcome else ExitCode.FAILED
