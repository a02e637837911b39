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
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from harness import __version__, matrix, reports
from harness.config import load_config
from harness.containment import resolve_inside
from harness.errors import ConfigError, HarnessError
from harness.command import DEFAULT_TIMEOUT_S
from harness.execute import interrupted_result, not_run_results, run_plan, selected
from harness.flavors import AUTO, FLAVORS
from harness.golden import update_goldens
from harness.hardware import detect_hardware
from harness.logger import setup_logging
from harness.plan import MODES, PlanOptions, build_plan
from harness.prepare import lookup, prepare_command
from harness.reports import SIDECAR, append_record, command_failed, step_record
from harness.runner import child_environment, is_interpreter, run_command
from harness.values import positive_seconds
from harness.status import ResultsLog, StepResult, run_interrupted, run_succeeded, summary_table
from harness.steps import Chain, Plan, Step, StepKind

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
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
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


def build_parser() -> argparse.ArgumentParser:
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

    reports.register_cli(sub)
    matrix.register_cli(sub)
    return parser


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
    root = _root(args)
    plan = _plan(args)
    config_name = _config_name(args.config, root)
    with _cuda_visible_devices(args.gpu_ids), _run_lock(root, plan):
        hardware = detect_hardware()
        print(f"tipc run: {plan.model_name} {plan.mode} ({plan.flavor}); {hardware.describe()}; root {root}")
        for note in plan.notes:
            print(f"note: {note}")
        for note in _interpreter_notes(plan, args.python):
            print(f"note: {note}", flush=True)
        if args.only:
            left_out = sum(1 for step in plan.steps if not selected(step, args.only))
            print(f"--only {' '.join(args.only)}: {left_out} other step(s) not run")
        results: list[StepResult] = []
        running: dict[str, tuple[Chain, Step, float]] = {}
        with _Records(root, plan, config_name) as records:

            def on_start(chain: Chain, step: Step) -> None:
                running["step"] = (chain, step, time.monotonic())
                print(f"{'RUN':<8} {chain.id}::{step.name}", flush=True)

            def on_result(result: StepResult) -> None:
                running.pop("step", None)
                results.append(result)
                records.write(result)
                why = f"  ({result.reason})" if result.reason else ""
                with contextlib.suppress(OSError):  # after SIGHUP stdout may be gone; the records still count
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
                with contextlib.suppress(OSError):
                    _print_summary(results, root / plan.results_log)
    if records.trouble:
        return ExitCode.FAILED
    return ExitCode.OK if run_succeeded(results) else ExitCode.FAILED


class _Records:
    """Writes each step's results_python.log line and results.jsonl record; a full disk loses records, not the run.

    The first write that fails is said once on stderr, naming the file; the run goes on (its steps may still
    pass or fail on their own) and exits non-zero. Both files are checked to lie in the output folder first.
    """

    def __init__(self, root: Path, plan: Plan, config_name: str) -> None:
        self.root = root
        self.plan = plan
        self.config_name = config_name
        self.sidecar = root / plan.output_dir / SIDECAR
        self.log = ResultsLog(root / plan.results_log, model_name=plan.model_name)
        self.trouble: list[str] = []

    def __enter__(self) -> _Records:
        for path in (self.plan.results_log, f"{self.plan.output_dir}/{SIDECAR}"):
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
        try:
            self.log.write(result)
        except OSError as exc:
            self._trouble(self.log.path, exc)
        chain = next(c for c in self.plan.chains if c.id == result.chain_id)
        record = step_record(config=self.config_name, plan=self.plan, chain=chain, step=chain.step(result.step_name),
                             result=result, failure=command_failed(result, root=self.root))
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


def _print_summary(results: Sequence[StepResult], results_log: Path) -> None:
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


# --- prepare -------------------------------------------------------------------------------------------------------


def _cmd_update_goldens(args: argparse.Namespace) -> int:
    root = _root(args)
    plan = _plan(args)
    messages = update_goldens(plan, root=root)
    if not messages:
        print(f"tipc update-goldens: {args.config} has no compare steps in {plan.mode} (no golden_dir)")
    for message in messages:
        print(message)
    return ExitCode.FAILED if any("disagree" in m or "could not" in m for m in messages) else ExitCode.OK


def _cmd_prepare(args: argparse.Namespace) -> int:
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
    outcome = run_command(command, root=root, python=args.python, timeout_s=args.timeout, inside=plan.output_dir)
    why = f" ({outcome.reason})" if outcome.reason else ""
    print(f"{str(outcome.status).upper()}{why} in {outcome.duration_s:.1f} s; log: {root / command.log_path}")
    return ExitCode.OK if outcome else ExitCode.FAILED
