"""The ``tipc`` command line (also ``python -m harness``): plan, run, lint and prepare TIPC configs."""

from __future__ import annotations

import argparse
import contextlib
import enum
import errno
import fcntl
import json
import os
import shutil
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from harness import __version__
from harness.command import DEFAULT_TIMEOUT_S
from harness.config import Layout, load_config
from harness.config_kinds import ConfigKind, config_kind, describe_unhandled, is_handled
from harness.containment import resolve_inside
from harness.errors import ConfigError, HarnessError
from harness.flavors import AUTO, FLAVORS
from harness.logger import setup_logging
from harness.plan import MODES, PlanOptions, build_plan
from harness.status import ResultsLog, StepResult, run_succeeded
from harness.steps import Chain, Plan, Step, StepKind
from harness.values import positive_seconds

# Start-up cost matters (`tipc plan` should answer in a blink): modules only running, preparing, reporting or
# rewriting goldens need (runner, execute, hardware, reports, progress, history, golden, prepare) are imported by
# the handlers that use them.

if TYPE_CHECKING:
    from rich.console import Console

    from harness.reports import CaseRecord

__all__ = ["ExitCode", "build_parser", "main", "positive_seconds"]

Handler = Callable[[argparse.Namespace], int]


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # some step failed, timed out or could not start
    USAGE = 2  # bad command line
    CONFIG_ERROR = 2  # bad config (alias of USAGE: both mean "fix your input")
    BUSY = 3  # another run holds the output folder
    HANGUP = 129  # SIGHUP (the terminal went away), as a shell reports it
    INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
    TERMINATED = 143  # SIGTERM (a CI job cancelled), as a shell reports it


# Signals that stop a run, with the exit code and the word main() says for each.
_STOP_SIGNALS: dict[signal.Signals, tuple[ExitCode, str]] = {
    signal.SIGINT: (ExitCode.INTERRUPTED, "interrupted"),
    signal.SIGTERM: (ExitCode.TERMINATED, "terminated"),
    signal.SIGHUP: (ExitCode.HANGUP, "hung up"),
}


class _Stopped(BaseException):
    """Raised from the signal handler, once per run. A BaseException, so no ``except Exception`` boundary turns
    it into a step ERROR, and the runner kills the running step's process group on the way out."""

    def __init__(self, signum: signal.Signals) -> None:
        super().__init__(signum.name)
        self.signum = signum


class _Busy(Exception):
    """Another run holds the lock of the output folder."""


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
        with _signals_unwind():
            return int(handler(args))
    except KeyboardInterrupt:  # SIGINT before our handler was in place
        _say("tipc: interrupted")
        return ExitCode.INTERRUPTED
    except _Stopped as stop:
        code, word = _STOP_SIGNALS[stop.signum]
        _say(f"tipc: {word} ({stop.signum.name})")
        return code
    except _Busy as exc:
        _say(f"tipc: {exc}")
        return ExitCode.BUSY
    except HarnessError as exc:  # ConfigError renders as "path:line: message"; bad input never shows a traceback
        print(str(exc), file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (see below)
            return ExitCode.OK
        # A full disk or an unwritable output folder: one line naming the path, no traceback.
        _say(f"tipc: {_os_error(exc)}")
        return ExitCode.FAILED


def _say(text: str) -> None:
    """A line on stderr that never raises: after SIGHUP the terminal may be gone."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


def _os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


@contextmanager
def _signals_unwind() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into one exception while a subcommand runs.

    Steps run in sessions of their own (so Ctrl-C and timeouts can stop whole trees), which also means nobody
    else stops them: if we died from a signal's default action, a cancelled CI job (SIGTERM) or a closed terminal
    (SIGHUP) would leave training running. Only the first signal raises: later ones, while the step's process
    group gets its grace period and the records are written, are noted and otherwise ignored, so cleanup is never
    cut short.
    """
    stopping: list[signal.Signals] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        stopping.append(sig)
        if len(stopping) == 1:
            raise _Stopped(sig)
        _say(f"tipc: {sig.name} again; still stopping the running step, then writing the records")

    previous: dict[signal.Signals, object] = {}
    try:
        for sig in _STOP_SIGNALS:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (main() called from a worker thread): leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)  # type: ignore[arg-type]


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
    p_run.add_argument(
        "--timeout",
        type=positive_seconds,
        default=None,
        metavar="S",
        help=f"per-command timeout in seconds, > 0 (default: {DEFAULT_TIMEOUT_S:g}; inf: none)",
    )
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
    p_run.add_argument("--reruns", type=int, default=0, metavar="N",
                       help="re-run a failed step up to N times; a pass on a re-run is reported as flaky")
    p_run.add_argument("--history", default=None, metavar="URL",
                       help="record the run in a history database: a SQLite file or a SQLAlchemy URL")
    p_run.set_defaults(handler=_cmd_run)

    p_lint = sub.add_parser("lint", parents=[common], help="check configs; report every error as path:line: message")
    p_lint.add_argument("configs", nargs="+", metavar="CONFIG")
    p_lint.set_defaults(handler=_cmd_lint)

    p_prepare = sub.add_parser("prepare", parents=[common, planning], help="build the data a config's model needs")
    p_prepare.add_argument(
        "--timeout", type=positive_seconds, default=None, metavar="S", help=f"timeout (default: {DEFAULT_TIMEOUT_S:g})"
    )
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
    p_bench.add_argument("--timeout", type=positive_seconds, default=None, metavar="S")
    p_bench.add_argument("--python", default=None, metavar="PATH", help="interpreter to use instead of the config's")
    p_bench.set_defaults(handler=_cmd_benchmark)

    if full:
        from harness import history, matrix, parity, reports  # noqa: PLC0415  (see _OWN_COMMANDS)

        reports.register_cli(sub)
        matrix.register_cli(sub)
        parity.register_cli(sub)
        history.register_cli(sub)
    return parser


def _root(args: argparse.Namespace) -> Path:
    if args.root:
        return Path(args.root)
    cwd = Path.cwd()
    if (cwd / "test_tipc" / "configs").is_dir():
        return cwd
    # Run from elsewhere (e.g. from test_tipc/): the repository is the one the config lies in, not the cwd, so
    # outputs do not land in a stray test_tipc/output (or test_tipc/test_tipc/output) below the cwd.
    config = Path(getattr(args, "config", "") or ".").resolve()
    for parent in config.parents:
        if parent.name == "configs" and parent.parent.name == "test_tipc":
            return parent.parent.parent
    return cwd


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
    from harness import history, progress  # noqa: PLC0415  (on use, see the imports above)
    from harness.environment import ENVIRONMENT_FILE, collect_environment, write_environment  # noqa: PLC0415
    from harness.execute import interrupted_result, not_run_results, run_plan, selected  # noqa: PLC0415
    from harness.hardware import detect_hardware  # noqa: PLC0415

    root = _root(args)
    plan = _plan(args)
    config_name = _config_name(args.config, root)
    environment = collect_environment(root)
    with _cuda_visible_devices(args.gpu_ids), _run_lock(root, plan):
        hardware = detect_hardware()
        print(f"tipc run: {plan.model_name} {plan.mode} ({plan.flavor}); {hardware.describe()}; root {root}")
        warning = progress.root_warning(root, plan.output_dir)
        if warning:
            print(warning, file=sys.stderr)
        elif args.root is None and root != Path.cwd():
            print(f"note: run root {root} (the config's repository); output goes to {root / plan.output_dir}")
        for note in plan.notes:
            print(f"note: {note}")
        for note in _interpreter_notes(plan, args.python):
            print(f"note: {note}", flush=True)
        if args.only:
            left_out = sum(1 for step in plan.steps if not selected(step, args.only))
            print(f"--only {' '.join(args.only)}: {left_out} other step(s) not run")
        with contextlib.suppress(OSError):  # reports show "not recorded" without it; a full disk must not stop the run
            write_environment(root / plan.output_dir / ENVIRONMENT_FILE, environment)
        results: list[StepResult] = []
        running: dict[str, tuple[Chain, Step, float]] = {}
        hints: dict[str, str] = {}
        with _Records(root, plan, config_name) as records, progress.Progress(root=root) as display:

            def on_start(chain: Chain, step: Step) -> None:
                running["step"] = (chain, step, time.monotonic())
                display.start(f"{chain.id}::{step.name}", step.command.log_path)

            def on_result(result: StepResult) -> None:
                running.pop("step", None)
                results.append(result)
                records.write(result)
                hint = progress.missing_data_hint(result, root=root, config=args.config, mode=plan.mode)
                if hint:
                    hints[f"{result.chain_id}::{result.step_name}"] = hint
                with contextlib.suppress(OSError):  # after SIGHUP stdout may be gone; the records still count
                    display.finish(result, hint=hint)

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
                    reruns=max(0, args.reruns),
                )
            except (_Stopped, KeyboardInterrupt) as stop:
                # The step's process group is gone (the runner saw to it); now leave a true record of the run.
                name = stop.signum.name if isinstance(stop, _Stopped) else "SIGINT"
                if "step" in running:
                    chain, step, started = running["step"]
                    on_result(interrupted_result(step, chain, signal_name=name, duration_s=time.monotonic() - started))
                done = {(r.chain_id, r.step_name) for r in results}
                for result in not_run_results(plan, done=done, only_kinds=tuple(args.only), signal_name=name):
                    on_result(result)
                raise
            finally:  # also on a signal: show what finished before main() picks the exit code
                display.close()
                with contextlib.suppress(OSError):
                    _print_summary(results, root / plan.results_log, console=display.console, root=root, hints=hints)
        if args.history:
            with history.History(args.history) as db:
                run_id = db.record_run(records.cases, environment=environment, source="cli", log_root=root)
            print(f"history: recorded run {run_id} ({len(records.cases)} steps)")
    if records.trouble:
        return ExitCode.FAILED
    return ExitCode.OK if run_succeeded(results) else ExitCode.FAILED


class _Records:
    """Writes each step's results_python.log line and results.jsonl record; a full disk loses records, not the run.

    The first write that fails is said once on stderr, naming the file; the run goes on (its steps may still
    pass or fail on their own) and exits non-zero. Both files are checked to lie in the output folder first.
    """

    def __init__(self, root: Path, plan: Plan, config_name: str) -> None:
        from harness.reports import SIDECAR  # noqa: PLC0415  (on use, see the imports above)

        self.root = root
        self.plan = plan
        self.config_name = config_name
        self.sidecar = root / plan.output_dir / SIDECAR
        # Each run starts a fresh results_python.log; the previous one is kept beside it (<name>.prev).
        self.log = ResultsLog(root / plan.results_log, model_name=plan.model_name, run_id=uuid.uuid4().hex)
        self.trouble: list[str] = []
        self.cases: list[CaseRecord] = []  # what --history records

    def __enter__(self) -> _Records:
        for path in (self.plan.results_log, f"{self.plan.output_dir}/{self.sidecar.name}"):
            resolve_inside(self.root, self.plan.output_dir, path)
        try:
            self.log.open()
        except OSError as exc:
            self._trouble(self.log.path, exc)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):
            self.log.close()

    def write(self, result: StepResult) -> None:
        from harness.reports import append_record, command_failed, step_record  # noqa: PLC0415

        chain = next(c for c in self.plan.chains if c.id == result.chain_id)
        step = chain.step(result.step_name)
        try:
            self.log.write(result, reference_line=step.command.reference_line)
        except OSError as exc:
            self._trouble(self.log.path, exc)
        record = step_record(config=self.config_name, plan=self.plan, chain=chain, step=step,
                             result=result, failure=command_failed(result, root=self.root))
        self.cases.append(record)
        try:
            append_record(self.sidecar, record)
        except OSError as exc:
            self._trouble(self.sidecar, exc)

    def _trouble(self, path: Path, exc: OSError) -> None:
        line = f"tipc: cannot write {path}: {exc.strerror or exc}; step records from here on are missing there"
        if not any(line == seen for seen in self.trouble):
            self.trouble.append(line)
            _say(line)


@contextmanager
def _run_lock(root: Path, plan: Plan) -> Iterator[None]:
    """Hold the output folder's run lock; a second run of the same folder is refused at once, naming the holder.

    Two runs writing one folder would overwrite each other's step logs, leaving results lines that point to
    another run's output. The lock is an flock, so it is released when its holder exits, however it exits.
    """
    lock_dir = root / plan.output_dir / ".locks"
    resolve_inside(root, plan.output_dir, f"{plan.output_dir}/.locks/run.lock")
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            msg = (
                f"another run is writing {root / plan.output_dir} (pid {holder}); "
                "wait for it to finish, or run in another --root"
            )
            raise _Busy(msg) from None
        with contextlib.suppress(OSError):  # the holder's pid is for the message only; a full disk may refuse it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _interpreter_notes(plan: Plan, python: str | None) -> list[str]:
    from harness.runner import child_environment, is_interpreter  # noqa: PLC0415  (on use)

    """Say on the terminal when the config's interpreter is missing and another one runs the steps instead."""
    env = child_environment(())
    search = env.get("PATH", os.defpath)
    if python is not None:
        if shutil.which(python, path=search) is None:
            return [f"--python {python} not found: steps that use it will fail to start"]
        return []
    notes = []
    for program in dict.fromkeys(step.command.argv[0] for step in plan.steps if step.command.argv):
        if is_interpreter(program) and shutil.which(program, path=search) is None:
            notes.append(
                f"interpreter {program!r} from the config's python: line is not found; steps run with "
                f"{sys.executable} instead (use --python to choose)"
            )
    return notes


def _config_name(config: str, root: Path) -> str:
    """The config as reports name it: relative to the run root when it lies below it."""
    path = Path(config).resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _print_summary(results: Sequence[StepResult], results_log: Path, *, console: Console, root: Path,
                   hints: dict[str, str]) -> None:
    from harness import progress  # noqa: PLC0415  (on use: rich)

    print(flush=True)
    progress.summary(results, console, root=root)
    for line in progress.failure_report(results, root=root, hints=hints):
        print(line)
    print(f"results: {results_log}", flush=True)


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
    skipped: dict[ConfigKind, list[str]] = {}
    options = PlanOptions(flavor=AUTO, quirks=False, repo_root=str(Path.cwd()))
    for path in args.configs:
        kind = config_kind(path)
        if not is_handled(kind) and kind is not ConfigKind.OTHER:
            skipped.setdefault(kind, []).append(path)  # another script's input: not ours to judge
            continue
        try:
            config = load_config(path)
        except ConfigError as exc:
            errors.append(exc.render())
            continue
        if config.layout is Layout.PTQ:
            skipped.setdefault(ConfigKind.PTQ, []).append(path)
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
    not_handled = describe_unhandled(skipped)
    if not_handled:
        print(f"tipc lint: skipped {not_handled}", file=sys.stderr)
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
    from harness.prepare import REPOSITORY_SCRIPT, lookup, network_failures, plan_preparation  # noqa: PLC0415
    from harness.runner import run_command  # noqa: PLC0415

    root = _root(args)
    plan = _plan(args)  # validates config and mode, and names the model and its output folder
    log_path = f"{plan.output_dir}/prepare.log"
    preparation = plan_preparation(args.config, plan.mode, root=root, log_path=log_path)
    if preparation is None:
        entry = lookup(args.config, root)
        if entry is not None and entry.applies_to(plan.mode):
            print(f"tipc prepare: {plan.model_name}: preparation script {entry.script} not found under {root}",
                  file=sys.stderr)
            return ExitCode.FAILED
        print(f"tipc prepare: {plan.model_name} ({plan.mode}) needs no data preparation "
              f"(no {REPOSITORY_SCRIPT} under {root}, and not one of this project's configs)")
        return ExitCode.OK
    command = preparation.command
    print(f"tipc prepare: {plan.model_name} ({plan.mode}), {preparation.why}: {command.display()}", flush=True)
    outcome = run_command(command, root=root, python=args.python, timeout_s=args.timeout, inside=plan.output_dir)
    log = root / command.log_path
    why = outcome.reason or f"exit code {outcome.returncode}"
    print(f"{str(outcome.status).upper()} ({why}) in {outcome.duration_s:.1f} s; log: {log}")
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    # A script without `set -e` goes on past a failed download; say so even when it exits 0.
    for line in network_failures(text):
        print(f"tipc prepare: download or package-index failure in the log: {line}", file=sys.stderr)
    return ExitCode.OK if outcome else ExitCode.FAILED
