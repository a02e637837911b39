"""Run one Command without a shell: resolved interpreter, env overrides, log file, process-group timeout."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from harness.command import Command
from harness.containment import OutsideOutput, resolve_inside
from harness.logger import logger
from harness.status import StepStatus

__all__ = ["KILL_GRACE_S", "RunOutcome", "child_environment", "interrupt_on_signals", "is_interpreter", "run_command"]

# How long a timed-out process group gets between SIGTERM and SIGKILL to flush its logs and exit.
KILL_GRACE_S = 5.0

# argv[0] values that name a Python interpreter (``python``, ``python3``, ``python3.7``, ``/usr/bin/python3``).
# Only these are swapped for a fallback when missing; any other missing executable is an ERROR.
_INTERPRETER = re.compile(r"python(\d+(\.\d+)*)?")
_MAX_POLL_MS = 3_600_000.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    """How one command ended. ``reason`` is empty only when it passed."""

    status: StepStatus
    returncode: int | None
    duration_s: float
    reason: str = ""

    def __bool__(self) -> bool:
        return self.status is StepStatus.PASSED


def is_interpreter(program: str) -> bool:
    """True when ``program`` names a Python interpreter, by its base name."""
    return _INTERPRETER.fullmatch(os.path.basename(program)) is not None


def child_environment(
    overrides: tuple[tuple[str, str | None], ...], base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a step's process gets: ``base`` (os.environ), our interpreter's folder first on PATH, then
    the command's overrides, where None removes a variable."""
    env = dict(os.environ if base is None else base)
    # TIPC configs name the interpreter as `python`/`python3`. When the harness runs from a virtualenv that was
    # not activated (`.venv/bin/tipc`, `.venv/bin/python -m harness`), PATH still leads to a system Python that
    # lacks paddle; putting the running interpreter's folder first makes those names resolve to the venv's one.
    # An explicit PATH override in the command still wins, because overrides are applied afterwards.
    bindir = os.path.dirname(sys.executable)
    path = env.get("PATH", os.defpath)
    if bindir and path.split(os.pathsep)[0] != bindir:
        env["PATH"] = os.pathsep.join([bindir, path]) if path else bindir
    for key, value in overrides:
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_command(
    command: Command,
    *,
    root: str | os.PathLike[str],
    python: str | None = None,
    timeout_s: float | None = None,
    grace_s: float = KILL_GRACE_S,
    notes: tuple[str, ...] = (),
    inside: str | None = None,
) -> RunOutcome:
    """Run ``command`` with paths resolved against ``root``; everything it prints goes to its log file.

    ``python`` replaces an interpreter argv[0] (the ``--python`` option); ``timeout_s`` replaces the command's own
    timeout. ``notes`` are extra lines for the log header. The log always starts with a header (command, cwd, env
    overrides, start time) and ends with a line saying how the command ended, so a failure keeps its context.
    Only an interruption (KeyboardInterrupt, or a BaseException raised by a signal handler) propagates, after the
    process group is killed; every other problem is an outcome. ``inside`` (the run's output folder, relative to
    ``root``) makes the log path checked on disk to lie in it before anything is created or removed.
    """
    root_path = Path(root)
    log_path = root_path / command.log_path
    cwd = root_path / command.cwd
    timeout = command.timeout_s if timeout_s is None else timeout_s
    started = time.monotonic()
    try:
        if inside is not None:
            resolve_inside(root_path, inside, command.log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if inside is not None:  # again once the folders exist: nothing on the way may lead elsewhere
            resolve_inside(root_path, inside, command.log_path)
        # Replace the old log rather than truncate it: on ext4, truncating a file that holds data makes close()
        # force its blocks to disk (auto_da_alloc), a few milliseconds on every re-run of a step.
        log_path.unlink(missing_ok=True)
        # O_NOFOLLOW: a link planted where the log goes is never written through (unlink removed any old one).
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        log = os.fdopen(fd, "wb")
    except OutsideOutput as exc:
        reason = f"refused: {exc}"
        logger.debug("%s", reason)
        return RunOutcome(status=StepStatus.ERROR, returncode=None, duration_s=0.0, reason=reason)
    except OSError as exc:
        reason = f"cannot open log file {log_path}: {exc.strerror or exc}"
        logger.debug("%s", reason)  # the outcome carries the reason; callers report it once
        return RunOutcome(status=StepStatus.ERROR, returncode=None, duration_s=0.0, reason=reason)
    with _closing_quietly(log):
        env = child_environment(command.env)
        argv, resolution = _resolve_argv(command.argv, env=env, cwd=cwd, python=python)
        try:
            _write(log, _header(command, cwd=cwd, argv=argv, timeout=timeout, notes=(*resolution, *notes)))
        except OSError as exc:  # a full disk: the step's output would be lost, so it is not started
            reason = f"cannot write log file {log_path}: {exc.strerror or exc}"
            logger.debug("%s", reason)
            return RunOutcome(status=StepStatus.ERROR, returncode=None, duration_s=0.0, reason=reason)
        if not cwd.is_dir():
            return _error(log, started, f"working directory does not exist: {cwd}")
        if argv is None:
            return _error(log, started, f"executable not found: {command.argv[0] if command.argv else '(empty argv)'}")
        logger.debug("running %s (log %s)", command.display(), log_path)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session, hence its own process group: a timeout or Ctrl-C can then stop the whole tree
                # (paddle's launcher and DataLoader workers) with one killpg, and our terminal's SIGINT is ours.
                start_new_session=True,
            )
        except OSError as exc:
            return _error(log, started, f"cannot start {argv[0]}: {exc.strerror or exc}")
        try:
            exited = _wait_for_exit(proc, timeout)
            if not exited:
                _kill_group(proc, grace_s)
            returncode = proc.wait()
        except BaseException:
            # Ctrl-C, SIGTERM or SIGHUP while waiting: never leave the step's process tree running behind us,
            # even if another signal arrives during the grace period (it only skips the rest of the grace).
            _kill_group_surely(proc, grace_s)
            _write_quietly(log, "\n# interrupted; process group killed\n")
            raise
        duration = time.monotonic() - started
        # The step's own processes are gone, but a background child it started may still run in its group.
        left = _reap_group(proc.pid, grace_s)
        if left:
            _write_quietly(log, f"\n# {left} background process(es) left in the step's process group; group killed\n")
        if not exited:
            reason = f"timed out after {_seconds(timeout)} s"
            _write_quietly(log, f"\n# {reason}; process group killed\n")
            return RunOutcome(status=StepStatus.TIMEOUT, returncode=returncode, duration_s=duration, reason=reason)
        # From here the outcome is the step's own: a log that can no longer be written (full disk) never changes it.
        if returncode == 0:
            _write_quietly(log, f"\n# exit code 0 after {duration:.2f} s\n")
            return RunOutcome(status=StepStatus.PASSED, returncode=0, duration_s=duration)
        reason = _exit_reason(returncode)
        _write_quietly(log, f"\n# {reason} after {duration:.2f} s\n")
        return RunOutcome(status=StepStatus.FAILED, returncode=returncode, duration_s=duration, reason=reason)


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """While a step runs under a front that has no handlers of its own (the pytest plugin): the first SIGTERM or
    SIGHUP raises KeyboardInterrupt, so the runner stops the step's process tree before the process exits; later
    ones are ignored until that is done. Outside the main thread, signals are left alone."""
    seen: list[int] = []

    def handler(signum: int, frame: object) -> None:
        seen.append(signum)
        if len(seen) == 1:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    previous: dict[signal.Signals, object] = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread
        for sig, old in previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)  # type: ignore[arg-type]


def _wait_for_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """True when the process exits within ``timeout`` (it is not reaped here)."""
    # Popen.wait(timeout) polls with sleeps that grow to 50 ms, which adds tens of milliseconds to every short
    # command. A pidfd becomes readable the moment the process exits, so poll() returns at once.
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux, or a kernel older than 5.3: fall back to polling
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()  # poll, not select: select() cannot watch descriptors numbered 1024 or more
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while (remaining_ms := (deadline - time.monotonic()) * 1000) > 0:
            # poll() takes a C int of milliseconds: wait in slices so day-long (or infinite) timeouts work too.
            if poller.poll(math.ceil(min(remaining_ms, _MAX_POLL_MS))):
                return True
        return False
    finally:
        os.close(pidfd)


def _resolve_argv(
    argv: tuple[str, ...], *, env: Mapping[str, str], cwd: Path, python: str | None
) -> tuple[list[str] | None, tuple[str, ...]]:
    """argv with argv[0] resolved to a path (None if it cannot be), plus header lines explaining any substitution."""
    if not argv:
        return None, ()
    program, rest = argv[0], list(argv[1:])
    search_path = env.get("PATH", os.defpath)
    if is_interpreter(program):
        if python is not None:
            chosen = shutil.which(python, path=search_path) or python
            return [chosen, *rest], (f"interpreter: --python {python} replaces config interpreter {program}",)
        found = _which(program, search_path, cwd)
        if found is not None:
            return [found, *rest], ()
        return [sys.executable, *rest], (
            f"interpreter: config interpreter {program} not found; using {sys.executable}",
        )
    found = _which(program, search_path, cwd)
    return (None if found is None else [found, *rest]), ()


def _which(program: str, search_path: str, cwd: Path) -> str | None:
    # A relative path with a slash is relative to the step's cwd (as exec in that cwd would see it), not to ours.
    if os.sep in program and not os.path.isabs(program):
        program = str(cwd / program)
    return shutil.which(program, path=search_path)


def _header(command: Command, *, cwd: Path, argv: list[str] | None, timeout: float, notes: tuple[str, ...]) -> str:
    overrides = ", ".join(f"{k}={shlex.quote(v)}" if v is not None else f"unset {k}" for k, v in command.env)
    lines = [
        f"# command: {command.display()}",
        f"# cwd: {cwd}",
        f"# env overrides: {overrides or '(none)'}",
        f"# executable: {argv[0] if argv else '(not found)'}",
        *(f"# {note}" for note in notes),
        f"# timeout: {_seconds(timeout)} s",
        f"# started: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        "# " + "-" * 70,
    ]
    return "\n".join(lines) + "\n"


def _write(log: BinaryIO, text: str) -> None:
    # Flush at once: the child shares this file description, so anything left in our buffer would land after
    # (or in the middle of) the child's own output.
    log.write(text.encode("utf-8", "replace"))
    log.flush()


def _write_quietly(log: BinaryIO, text: str) -> None:
    """``_write`` where a failure (a full disk) must not replace the outcome being recorded."""
    with contextlib.suppress(OSError):
        _write(log, text)


@contextlib.contextmanager
def _closing_quietly(log: BinaryIO) -> Iterator[BinaryIO]:
    # close() flushes; on a full disk that can fail after the step's outcome is known, which must still count.
    try:
        yield log
    finally:
        with contextlib.suppress(OSError):
            log.close()


def _error(log: BinaryIO, started: float, reason: str) -> RunOutcome:
    _write_quietly(log, f"# error: {reason}\n")
    logger.debug("%s", reason)  # the outcome carries the reason; callers report it once
    return RunOutcome(status=StepStatus.ERROR, returncode=None, duration_s=time.monotonic() - started, reason=reason)


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the process group, give it ``grace_s`` to exit, then SIGKILL whatever is left of it."""
    pgid = proc.pid  # start_new_session made the child a group leader, so its pid is the group id
    _signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    # Always follow with SIGKILL: the leader may have exited on SIGTERM while its children ignored it.
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()


def _kill_group_surely(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """``_kill_group`` that completes even when more signals arrive: each one only skips to SIGKILL."""
    try:
        _kill_group(proc, grace_s)
    except BaseException:
        while True:
            try:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
                _reap_group(proc.pid, 0.0)
                break
            except BaseException:  # noqa: S112  (yet another signal: the group is not gone yet, so try again)
                continue
        raise


def _reap_group(pgid: int, grace_s: float) -> int:
    """Stop what is left of a finished step's process group; return how many processes were left.

    The leader has been reaped, so its orphans now belong to init; they are found in /proc by their group id.
    SIGTERM first, SIGKILL for those still there after ``grace_s``.
    """
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return 0  # the usual case: nothing of the step is left, and this cost one system call
    left = _group_members(pgid)
    if not left:
        return 0
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(left)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``; zombies wait for their parent and run nothing."""
    members: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: ask the kernel whether the group still exists at all
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may itself contain spaces or parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and fields[0] != b"Z" and fields[2] == str(pgid).encode():
            members.append(int(name))
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already gone
        os.killpg(pgid, sig)


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit code {returncode}"


def _seconds(value: float) -> str:
    return f"{value:g}"
