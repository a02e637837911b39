"""pytest front end: TIPC configs collected as file -> mode -> chain -> step items, run by the harness runner."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Final

import pytest

from harness import prepare
from harness.command import DEFAULT_TIMEOUT_S
from harness.config import TipcConfig, load_config
from harness.containment import own_output_roots
from harness.errors import CommandFailed, ConfigError
from harness.execute import run_step
from harness.hardware import Hardware, detect_hardware
from harness.plan import MODES, PlanOptions, build_plan
from harness.reports import (
    SIDECAR,
    append_record,
    command_failed,
    failure_text,
    step_record,
    step_trainer,
)
from harness.runner import interrupt_on_signals, run_command
from harness.status import ResultsLog, StepResult, StepStatus
from harness.steps import Chain, Plan, Step, StepKind
from harness.values import positive_seconds

__all__ = [
    "MARKERS",
    "ChainNode",
    "ModeNode",
    "StepItem",
    "TipcFile",
    "TipcSession",
    "shard_chains",
]

DEFAULT_MODE: Final = "lite_train_lite_infer"
DEFAULT_GLOB: Final = "*.txt"

# Markers an item may carry; all are declared in pytest_configure so `-m` works under --strict-markers.
MARKERS: Final[dict[str, str]] = {
    "tipc": "a step of a TIPC chain (every item the harness plugin collects)",
    **{str(kind): f"a TIPC {kind} step" for kind in StepKind},
    "norm_train": "a chain whose trainer is norm_train",
    "pact_train": "a chain whose trainer is pact_train",
    "fpgm_train": "a chain whose trainer is fpgm_train",
    "amp_train": "a chain whose trainer is amp_train",
    "distill_train": "a chain whose trainer is distill_train",
    "to_static_train": "a chain whose trainer is to_static_train",
    "pact": "a quantization-aware (PACT) chain",
    "amp": "a mixed-precision (AMP) chain",
    "gpu": "needs a CUDA device (skipped with the reason when there is none)",
    "multi_gpu": "needs two or more CUDA devices",
    "multi_node": "needs several machines (always skipped on one host)",
    "tensorrt": "needs Paddle Inference with TensorRT",
    "cpu": "a CPU inference step",
    "fp32": "inference in fp32",
    "fp16": "inference in fp16",
    "int8": "inference in int8",
    "onnx": "a paddle2onnx step",
}

# Relative cost of one step, by kind and by mode, used only to balance --tipc-shard; the numbers need to be
# right in order, not in value (a whole training run dwarfs everything else).
_KIND_WEIGHT: Final[dict[str, float]] = {"train": 10.0, "eval": 3.0, "export": 2.0, "kl_quant": 5.0, "infer": 2.0}
_MODE_WEIGHT: Final[dict[str, float]] = {"whole_train_whole_infer": 20.0, "lite_train_whole_infer": 2.0}

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_SPLITTING_DIST: Final = frozenset({"load", "worksteal"})


# --------------------------------------------------------------------------- session state


@dataclasses.dataclass(slots=True, kw_only=True)
class TipcSession:
    """Everything the plugin keeps for one pytest run (in ``config.stash``, never in module globals)."""

    root: Path
    modes: tuple[str, ...]
    flavor: str
    quirks: bool
    timeout_s: float | None
    python: str | None
    shard: tuple[int, int] | None
    glob: str
    run_id: str  # shared by every xdist worker of one run: data preparation happens once per run
    _hardware: Hardware | None = None
    _logs: dict[str, ResultsLog] = dataclasses.field(default_factory=dict)
    _prepared: dict[str, StepResult | None] = dataclasses.field(default_factory=dict)
    _roots: dict[str, str] | None = None

    @property
    def hardware(self) -> Hardware:
        # Probed on first use, so --collect-only never runs nvidia-smi.
        if self._hardware is None:
            self._hardware = detect_hardware()
        return self._hardware

    def plan_options(self, config_path: Path | None = None) -> PlanOptions:
        options = PlanOptions(flavor=self.flavor, quirks=self.quirks, repo_root=str(self.root))
        if self.timeout_s is not None:
            options = dataclasses.replace(options, timeout_s=self.timeout_s)
        if config_path is not None:  # configs sharing a model_name each get their own output folder
            options = dataclasses.replace(options, output_root=self.output_root(config_path, options.output_root))
        return options

    def output_root(self, config_path: Path, default: str) -> str:
        if self._roots is None:
            self._roots = own_output_roots(_model_names(self.root / "test_tipc" / "configs", self.glob), default=default)
        key = config_path.parent.name + "/" + config_path.name
        return self._roots.get(key, default) if config_path.parent.parent.name == "configs" else default

    def results_log(self, plan: Plan) -> ResultsLog:
        log = self._logs.get(plan.results_log)
        if log is None:
            log = ResultsLog(self.root / plan.results_log, model_name=plan.model_name)
            self._logs[plan.results_log] = log
        return log

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def ensure_prepared(self, plan: Plan) -> StepResult | None:
        """Run the model's data preparation once per run (across xdist workers); its result if it did not pass."""
        model = plan.model_name
        if model in self._prepared:
            return self._prepared[model]
        entry = prepare.lookup(model)
        if entry is None:
            self._prepared[model] = None
            return None
        if not entry.applies_to(plan.mode):
            return None  # not cached: a later mode of the same model may need it
        command = prepare.prepare_command(entry, root=self.root, log_path=f"{plan.output_dir}/prepare.log")
        if command is None:  # the script is not in this repository (a run root without lite_data/)
            self._prepared[model] = None
            return None
        lock_dir = self.root / "test_tipc" / "output" / ".locks"
        stamp = self.root / "test_tipc" / "output" / model / ".prepared"
        with _locked(lock_dir / f"prepare-{_safe(model)}.lock"):
            previous = _read_stamp(stamp, self.run_id)
            if previous is not None:
                status, reason = previous
            else:
                outcome = run_command(command, root=self.root, python=self.python)
                status, reason = outcome.status, outcome.reason
                stamp.parent.mkdir(parents=True, exist_ok=True)
                stamp.write_text(f"{self.run_id}\n{status}\n{reason}\n", encoding="utf-8")
        failure = None
        if status is not StepStatus.PASSED:
            failure = StepResult(
                chain_id="",
                step_name="prepare",
                kind="prepare",
                status=status,
                command=command.display(),
                log_path=command.log_path,
                reason=f"data preparation for {model} did not pass: {reason}",
            )
        self._prepared[model] = failure
        return failure


_SESSION: Final = pytest.StashKey[TipcSession]()
_CHAIN_RESULTS: Final = pytest.StashKey[dict[str, StepResult]]()
_CHAIN_LOCK: Final = pytest.StashKey[IO[bytes]]()


def _session(config: pytest.Config) -> TipcSession:
    return config.stash[_SESSION]


def _read_stamp(stamp: Path, run_id: str) -> tuple[StepStatus, str] | None:
    try:
        lines = stamp.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    if len(lines) < 2 or lines[0] != run_id:
        return None
    try:
        return StepStatus(lines[1]), (lines[2] if len(lines) > 2 else "")
    except ValueError:
        return None


class _locked:
    """An exclusive flock on ``path`` for the duration of a with-block (processes, not threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        self.handle = _acquire(self.path)
        return self.handle

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            _release(self.handle)


def _acquire(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("ab")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle


def _release(handle: IO[bytes]) -> None:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def _safe(text: str) -> str:
    return _NAME_UNSAFE.sub("-", text) or "_"


# --------------------------------------------------------------------------- hooks


@pytest.hookimpl
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tipc", "TIPC chains (harness.pytest_plugin)")
    group.addoption(
        "--tipc-mode",
        action="append",
        default=None,
        choices=MODES,
        metavar="MODE",
        help=f"TIPC mode to collect; repeat for several (default: {DEFAULT_MODE})",
    )
    group.addoption("--tipc-root", default=None, metavar="DIR", help="run root the steps run in (default: rootdir)")
    group.addoption(
        "--tipc-timeout",
        type=positive_seconds,
        default=None,
        metavar="S",
        help=f"per-command timeout in seconds, > 0 (default: {DEFAULT_TIMEOUT_S:g})",
    )
    group.addoption("--tipc-flavor", default="auto", metavar="NAME", help="repository conventions (default: auto)")
    group.addoption(
        "--tipc-quirks", action="store_true", default=False, help="reproduce the reference scripts' known bugs too"
    )
    group.addoption("--tipc-python", default=None, metavar="PATH", help="interpreter to use instead of the config's")
    group.addoption(
        "--tipc-shard",
        default=None,
        metavar="I/N",
        help="run shard I of N (1-based); whole chains, balanced by expected duration, stable across runs",
    )
    parser.addini("tipc_config_glob", "file name pattern of collected configs under test_tipc/configs", default=DEFAULT_GLOB)


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = _SHARD.match(text)
    if match is None:
        msg = f"--tipc-shard: expected I/N such as 1/4, got {text!r}"
        raise pytest.UsageError(msg)
    index, total = int(match.group(1)), int(match.group(2))
    if total < 1 or not 1 <= index <= total:
        msg = f"--tipc-shard: shard index must be between 1 and N, got {text!r}"
        raise pytest.UsageError(msg)
    return index, total


@pytest.hookimpl
def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    root_opt = config.getoption("tipc_root")
    root = Path(root_opt).resolve() if root_opt else config.rootpath
    workerinput = getattr(config, "workerinput", None)
    # xdist gives every worker of one run the same testrunuid; a plain run makes its own.
    run_id = str(workerinput["testrunuid"]) if workerinput else uuid.uuid4().hex
    modes = tuple(dict.fromkeys(config.getoption("tipc_mode") or [DEFAULT_MODE]))
    # A chain's steps depend on each other's outputs and results, so they must run in order in one process.
    # xdist's default "load" (and "worksteal") hands out single items; loadscope keeps each chain together.
    # setup.cfg asks for loadscope; this also covers a plain `pytest -n 2 --dist load` or a bare `-p xdist`.
    split_chains = getattr(config.option, "dist", "no") in _SPLITTING_DIST
    if split_chains and workerinput is None:
        config.option.dist = "loadscope"
    config.stash[_SESSION] = TipcSession(
        root=root,
        modes=modes,
        flavor=str(config.getoption("tipc_flavor")),
        quirks=bool(config.getoption("tipc_quirks")),
        timeout_s=config.getoption("tipc_timeout"),
        python=config.getoption("tipc_python"),
        shard=_parse_shard(config.getoption("tipc_shard")),
        glob=str(config.getini("tipc_config_glob")),
        run_id=run_id,
    )


@pytest.hookimpl
def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is not None:
        session.close()


@pytest.hookimpl
def pytest_report_header(config: pytest.Config) -> list[str]:
    session = _session(config)
    shard = f", shard {session.shard[0]}/{session.shard[1]}" if session.shard else ""
    return [f"tipc: root {session.root}, modes {', '.join(session.modes)}{shard}"]


def _model_names(configs_dir: Path, glob: str) -> dict[str, str]:
    """model_name of every collectable config (``<model dir>/<file>.txt`` -> name); unreadable ones are left out."""
    names: dict[str, str] = {}
    for path in sorted(configs_dir.glob("*/*.txt")):
        if not _is_config_path(path, glob):
            continue
        try:
            names[f"{path.parent.name}/{path.name}"] = load_config(path).model_name
        except ConfigError:
            continue  # reported when the file itself is collected
    return names


def _is_config_path(file_path: Path, glob: str) -> bool:
    if file_path.suffix != ".txt" or not file_path.match(glob):
        return False
    parts = file_path.parts[:-1]
    return any(parts[i] == "test_tipc" and parts[i + 1] == "configs" for i in range(len(parts) - 1))


@pytest.hookimpl
def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> TipcFile | None:
    if _is_config_path(file_path, _session(parent.config).glob):
        return TipcFile.from_parent(parent, path=file_path)
    return None


def _chain_weight(chain: Chain) -> float:
    factor = _MODE_WEIGHT.get(chain.mode, 1.0)
    return factor * sum(_KIND_WEIGHT.get(str(step.kind), 1.0) for step in chain.steps)


def _host_weight(chain: Chain, hardware: Hardware) -> float:
    """Expected run time on this host: steps whose hardware is missing are skipped at once and cost nothing."""
    factor = _MODE_WEIGHT.get(chain.mode, 1.0)
    return factor * sum(
        _KIND_WEIGHT.get(str(step.kind), 1.0) for step in chain.steps if hardware.missing(step.requires) is None
    )


def _longest_chains_first(items: list[pytest.Item], hardware: Hardware) -> None:
    """Order whole chains longest first (steps keep their order inside a chain; other tests stay in front).

    xdist hands chains to workers in collection order, so starting with the longest leaves short chains to fill
    the gaps at the end (longest-processing-time-first scheduling). The order is the same on every worker.
    """
    others = [item for item in items if not isinstance(item, StepItem)]
    chains: dict[str, list[StepItem]] = {}
    for item in items:
        if isinstance(item, StepItem):
            chains.setdefault(item.chain_key, []).append(item)
    ranked = sorted(
        enumerate(chains.values()), key=lambda entry: (-_host_weight(entry[1][0].chain, hardware), entry[0])
    )
    items[:] = [*others, *(item for _, steps in ranked for item in steps)]


def shard_chains(chains: Sequence[tuple[str, float]], total: int) -> tuple[tuple[str, ...], ...]:
    """Greedy longest-first assignment of (chain key, weight) to ``total`` shards; ties go by key then shard index.

    Deterministic for the same input, whatever its order, so every shard (and every xdist worker) agrees.
    """
    loads = [0.0] * total
    shards: list[list[str]] = [[] for _ in range(total)]
    for key, weight in sorted(chains, key=lambda kw: (-kw[1], kw[0])):
        target = min(range(total), key=lambda i: (loads[i], i))
        loads[target] += weight
        shards[target].append(key)
    return tuple(tuple(sorted(keys)) for keys in shards)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    tipc = _session(config)
    _longest_chains_first(items, tipc.hardware)
    if tipc.shard is None:
        return
    index, total = tipc.shard
    weights: dict[str, float] = {}
    for item in items:
        if isinstance(item, StepItem):
            weights.setdefault(item.chain_key, _chain_weight(item.chain))
    mine = frozenset(shard_chains(sorted(weights.items()), total)[index - 1])
    # Ordinary tests (not chain steps) run in shard 1 only, so the union of the shards is the whole run.
    keep = [i for i in items if (i.chain_key in mine if isinstance(i, StepItem) else index == 1)]
    dropped = [i for i in items if (i.chain_key not in mine if isinstance(i, StepItem) else index != 1)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


# --------------------------------------------------------------------------- collection nodes


class TipcFile(pytest.File):
    """One TIPC config file; its children are the modes asked for with --tipc-mode."""

    def _relpath(self) -> str:
        try:
            return self.path.relative_to(self.config.rootpath).as_posix()
        except ValueError:
            return str(self.path)

    def collect(self) -> Iterator[ModeNode]:
        try:
            config = load_config(self.path)
            model = config.model_name
        except ConfigError as exc:
            raise _relocated(exc, self.path, self._relpath()) from None
        if model:
            self.extra_keyword_matches.add(model)
        for mode in _session(self.config).modes:
            yield ModeNode.from_parent(self, name=mode, tipc_config=config, mode=mode, relpath=self._relpath())

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: str | None = None
    ) -> str:
        if isinstance(excinfo.value, ConfigError):
            return excinfo.value.render()
        return str(super().repr_failure(excinfo))


def _relocated(exc: ConfigError, path: Path, relpath: str) -> ConfigError:
    """The same error with the path as the user sees it in node ids (relative to the rootdir)."""
    shown = relpath if exc.path in (str(path), os.fspath(path.resolve())) else exc.path
    return ConfigError(shown, exc.line, exc.msg)


class ModeNode(pytest.Collector):
    """One mode of one config: the planner turns it into chains."""

    def __init__(self, *, tipc_config: TipcConfig, mode: str, relpath: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.tipc_config = tipc_config
        self.mode = mode
        self.relpath = relpath

    def collect(self) -> Iterator[ChainNode]:
        session = _session(self.config)
        try:
            plan = build_plan(self.tipc_config, self.mode, session.plan_options(self.path))
        except ConfigError as exc:
            raise _relocated(exc, self.path, self.relpath) from None
        used: set[str] = set()
        for chain in plan.chains:
            name = _unique(_safe(chain.id), used)
            yield ChainNode.from_parent(self, name=name, chain=chain, plan=plan, relpath=self.relpath)

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: str | None = None
    ) -> str:
        if isinstance(excinfo.value, ConfigError):
            return excinfo.value.render()
        return str(super().repr_failure(excinfo))


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(candidate)
    return candidate


class ChainNode(pytest.Collector):
    """One chain: its steps run in order on one worker (xdist --dist loadscope scopes by this node)."""

    def __init__(self, *, chain: Chain, plan: Plan, relpath: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.chain = chain
        self.plan = plan
        self.relpath = relpath
        self.stash[_CHAIN_RESULTS] = {}

    def collect(self) -> Iterator[StepItem]:
        used: set[str] = set()
        for step in self.chain.steps:
            name = _unique(_safe(step.name), used)
            yield StepItem.from_parent(self, name=name, step=step, chain=self.chain, plan=self.plan, relpath=self.relpath)

    def setup(self) -> None:
        # Two configs of one model can plan chains with the same id, hence the same output folder (e.g.
        # train_infer_python and win_train_infer_python). Holding a lock named after the output folder while the
        # chain runs keeps two xdist workers from writing into it at once; different folders never wait.
        session = _session(self.config)
        lock = session.root / self.plan.output_dir / ".locks" / f"{_safe(self.chain.id)}.lock"
        self.stash[_CHAIN_LOCK] = _acquire(lock)
        self.stash[_CHAIN_RESULTS] = {}

    def teardown(self) -> None:
        handle = self.stash.get(_CHAIN_LOCK, None)
        if handle is not None:
            del self.stash[_CHAIN_LOCK]
            _release(handle)


class StepItem(pytest.Item):
    """One command of a chain (train, eval, export, one inference variant, compare)."""

    def __init__(self, *, step: Step, chain: Chain, plan: Plan, relpath: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.step = step
        self.chain = chain
        self.plan = plan
        self.relpath = relpath
        assert self.parent is not None
        self.chain_key = self.parent.nodeid
        self.trainer = step_trainer(step, chain)
        words = ("tipc", str(step.kind), self.trainer, *step.tags, *(str(r) for r in step.requires))
        for word in dict.fromkeys(words):
            if word in MARKERS:
                self.add_marker(word)
            self.extra_keyword_matches.add(word)
        self.extra_keyword_matches.add(plan.model_name)
        # Known before running, so even a step skipped at setup carries them into the JUnit XML.
        self.user_properties.extend(
            [
                ("model", plan.model_name),
                ("mode", plan.mode),
                ("config", relpath),
                ("chain", chain.id),
                ("trainer", self.trainer),
                ("step", step.name),
                ("kind", str(step.kind)),
                ("command", step.command.display()),
                ("log_path", step.command.log_path),
            ]
        )

    def runtest(self) -> None:
        session = _session(self.config)
        assert self.parent is not None
        prior = self.parent.stash[_CHAIN_RESULTS]
        result = self._prepare_failure(session, prior)
        if result is None:
            with interrupt_on_signals():  # SIGTERM/SIGHUP stop the step's tree before pytest goes
                result = run_step(
                    self.step,
                    self.chain,
                    root=session.root,
                    hardware=session.hardware,
                    prior=prior,
                    python=session.python,
                    timeout_s=session.timeout_s,
                    inside=self.plan.output_dir,
                )
        prior[self.step.name] = result
        lost: list[str] = []  # record files a full disk refused: said once, never in place of the step's outcome
        try:
            session.results_log(self.plan).write(result)
        except OSError as exc:
            lost.append(f"cannot write {session.root / self.plan.results_log}: {exc.strerror or exc}")
        self.user_properties.extend(
            [
                ("returncode", "" if result.returncode is None else str(result.returncode)),
                ("duration_s", f"{result.duration_s:.3f}"),
                ("status", str(result.status)),
                ("reason", result.reason),
            ]
        )
        failure = command_failed(result, root=session.root)
        record = step_record(config=self.relpath, plan=self.plan, chain=self.chain, step=self.step, result=result,
                             failure=failure)
        try:
            append_record(session.root / self.plan.output_dir / SIDECAR, record)
        except OSError as exc:
            lost.append(f"cannot write {session.root / self.plan.output_dir / SIDECAR}: {exc.strerror or exc}")
        if failure is not None:
            raise failure  # the step's own failure comes first; its records may be lost too
        if lost:
            pytest.fail("; ".join(lost), pytrace=False)
        if result.status is StepStatus.SKIPPED:
            # Reported at the config line of the step, not at this file (what a skip marker would show).
            raise pytest.skip.Exception(result.reason, _use_item_location=True)

    def _prepare_failure(self, session: TipcSession, prior: dict[str, StepResult]) -> StepResult | None:
        """A failed data preparation fails the chain's first steps (the others then skip as dependents)."""
        if any(need in prior for need in self.step.needs):
            return None
        failure = session.ensure_prepared(self.plan)
        if failure is None:
            return None
        return dataclasses.replace(
            failure, chain_id=self.chain.id, step_name=self.step.name, kind=str(self.step.kind)
        )

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: str | None = None
    ) -> str:
        if isinstance(excinfo.value, CommandFailed):
            return _describe_failure(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))  # type: ignore[arg-type]

    def reportinfo(self) -> tuple[Path, int, str]:
        line = max(self.step.line - 1, 0)  # 0-based; a step without a config line points at the file's top
        return self.path, line, f"{self.plan.model_name} {self.chain.id} {self.step.name}"


def _describe_failure(exc: CommandFailed) -> str:
    return failure_text(command=exc.command, returncode=exc.returncode, log_path=exc.log_path, reason=exc.reason,
                        tail=exc.tail)
