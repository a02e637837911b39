"""pytest front end: TIPC configs collected as file -> mode -> chain -> step items, run by the harness runner."""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final

import pytest

from harness import prepare, pytest_extras
from harness.command import DEFAULT_TIMEOUT_S
from harness.config import Layout, TipcConfig, load_config
from harness.config_kinds import (
    DEFAULT_CONFIG_GLOB,
    ConfigKind,
    config_kind,
    describe_unhandled,
    is_handled,
    is_tipc_config_path,
)
from harness.containment import own_output_roots
from harness.errors import CommandFailed, ConfigError
from harness.execute import run_step
from harness.hardware import Hardware, detect_hardware
from harness.plan import MODES, PlanOptions
from harness.plan_cache import PlanCache
from harness.reports import (
    SIDECAR,
    append_record,
    command_failed,
    failure_text,
    step_record,
    step_trainer,
)
from harness.reruns import run_with_reruns
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
DEFAULT_GLOB: Final = DEFAULT_CONFIG_GLOB

# ini options (setup.cfg [tool:pytest], pytest.ini, pyproject.toml [tool.pytest.ini_options]); a command-line
# option of the same meaning wins over its ini value.
INI_OPTIONS: Final[dict[str, str]] = {
    "tipc_config_glob": f"file name pattern of the configs collected under test_tipc/configs (default: {DEFAULT_GLOB})",
    "tipc_mode": f"TIPC mode(s) to collect, separated by spaces (default: {DEFAULT_MODE}); --tipc-mode wins",
    "tipc_flavor": "repository conventions (default: auto); --tipc-flavor wins",
    "tipc_timeout": "per-command timeout in seconds (default: the plan's); --tipc-timeout wins",
    "tipc_python": "interpreter to use instead of the config's (default: the config's); --tipc-python wins",
}

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
    reruns: int = 0  # --tipc-reruns: re-run a failed step up to this many times (harness/reruns.py)
    plan_cache: PlanCache = dataclasses.field(default_factory=lambda: PlanCache(None))
    keyword: str = ""  # the -k expression: modes it cannot select are not planned at all
    affected_since: str | None = None
    _hardware: Hardware | None = None
    _logs: dict[str, ResultsLog] = dataclasses.field(default_factory=dict)
    _prepared: dict[str, StepResult | None] = dataclasses.field(default_factory=dict)
    _roots: dict[str, str] | None = None
    # Configs under test_tipc/configs this front end does not run, by kind (reported once after collection).
    unhandled: dict[ConfigKind, list[str]] = dataclasses.field(default_factory=dict)

    def note_unhandled(self, kind: ConfigKind, relpath: str) -> None:
        paths = self.unhandled.setdefault(kind, [])
        if relpath not in paths:
            paths.append(relpath)

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
            # Fresh per pytest run (once across xdist workers: they share the run id); the previous file is kept.
            log = ResultsLog(self.root / plan.results_log, model_name=plan.model_name, run_id=self.run_id)
            self._logs[plan.results_log] = log
        return log

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def ensure_prepared(self, plan: Plan) -> StepResult | None:
        """Run this project's data generator for its own configs once per run (across xdist workers); its result
        if it did not pass. Another repository's own prepare.sh is not run from here: `tipc prepare` runs it."""
        model = plan.model_name
        folder = prepare.config_folder(plan.config_path, self.root) or plan.config_path
        if folder in self._prepared:
            return self._prepared[folder]
        entry = None if prepare.repository_script(self.root) else prepare.lookup(plan.config_path, self.root)
        if entry is None:
            self._prepared[folder] = None
            return None
        if not entry.applies_to(plan.mode):
            return None  # not cached: a later mode of the same model may need it
        command = prepare.prepare_command(entry, root=self.root, log_path=f"{plan.output_dir}/prepare.log")
        if command is None:  # the script is not in this repository (a run root without lite_data/)
            self._prepared[folder] = None
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
        self._prepared[folder] = failure
        return failure


_SESSION: Final = pytest.StashKey[TipcSession]()
_CHAIN_RESULTS: Final = pytest.StashKey[dict[str, StepResult]]()
_CHAIN_LOCK: Final = pytest.StashKey[IO[bytes]]()
_AFFECTED: Final = pytest.StashKey[tuple[str, ...]]()
_HARDWARE_INPUT: Final = "tipc_hardware"


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
    group.addoption("--tipc-flavor", default=None, metavar="NAME", help="repository conventions (default: auto)")
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
    pytest_extras.add_options(group)
    group.addoption(
        "--tipc-affected-since",
        default=None,
        metavar="REV",
        help="keep only the config x mode cases whose inputs changed since git revision REV (see `tipc affected`)",
    )
    group.addoption(
        "--tipc-plan-cache",
        action="store_true",
        default=False,
        help="keep plans in pytest's cache folder, shared by xdist workers and later runs (pays off for slow plans)",
    )
    parser.addini("tipc_config_glob", INI_OPTIONS["tipc_config_glob"], default=DEFAULT_GLOB)
    parser.addini("tipc_mode", INI_OPTIONS["tipc_mode"], type="args", default=[])
    parser.addini("tipc_flavor", INI_OPTIONS["tipc_flavor"], default="")
    parser.addini("tipc_timeout", INI_OPTIONS["tipc_timeout"], default="")
    parser.addini("tipc_python", INI_OPTIONS["tipc_python"], default="")


def _ini_timeout(config: pytest.Config) -> float | None:
    text = str(config.getini("tipc_timeout")).strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        msg = f"tipc_timeout: expected a positive number of seconds, got {text!r}"
        raise pytest.UsageError(msg)
    return value


def _ini_modes(config: pytest.Config) -> tuple[str, ...]:
    modes = tuple(str(mode) for mode in config.getini("tipc_mode"))
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        msg = f"tipc_mode: unknown mode {unknown[0]!r}; choose from {', '.join(MODES)}"
        raise pytest.UsageError(msg)
    return modes


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
    modes = tuple(dict.fromkeys(config.getoption("tipc_mode") or _ini_modes(config) or [DEFAULT_MODE]))
    # A chain's steps depend on each other's outputs and results, so they must run in order in one process.
    # xdist's default "load" (and "worksteal") hands out single items; loadscope keeps each chain together.
    # setup.cfg asks for loadscope; this also covers a plain `pytest -n 2 --dist load` or a bare `-p xdist`.
    split_chains = getattr(config.option, "dist", "no") in _SPLITTING_DIST
    if split_chains and workerinput is None:
        config.option.dist = "loadscope"
    config.stash[_SESSION] = TipcSession(
        root=root,
        modes=modes,
        flavor=str(config.getoption("tipc_flavor") or config.getini("tipc_flavor") or "auto"),
        quirks=bool(config.getoption("tipc_quirks")),
        timeout_s=config.getoption("tipc_timeout") or _ini_timeout(config),
        python=config.getoption("tipc_python") or str(config.getini("tipc_python")) or None,
        shard=_parse_shard(config.getoption("tipc_shard")),
        glob=str(config.getini("tipc_config_glob")),
        run_id=run_id,
        reruns=max(0, int(config.getoption("tipc_reruns") or 0)),
        plan_cache=PlanCache(_plan_cache_dir(config) if config.getoption("tipc_plan_cache") else None),
        keyword=str(config.getoption("keyword", "") or ""),
        affected_since=config.getoption("tipc_affected_since"),
    )
    config.pluginmanager.register(pytest_extras, "tipc-device")  # --tipc-device, on every worker alike
    if workerinput is None:  # history, environment and FLAKY statuses live on the controller
        config.pluginmanager.register(pytest_extras.TipcExtras(config, root=root, run_id=run_id), "tipc-extras")
    shared = workerinput.get(_HARDWARE_INPUT) if workerinput else None
    if shared is not None:  # probed once by the xdist controller, not again by every worker
        config.stash[_SESSION]._hardware = Hardware(gpu_count=int(shared[0]), tensorrt=bool(shared[1]))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # noqa: ANN401  (xdist's WorkerController, untyped here)
    """xdist controller: hand each worker this host's hardware, so N workers do not each run the probes."""
    session = node.config.stash.get(_SESSION, None)
    if session is not None:
        hardware = session.hardware
        node.workerinput[_HARDWARE_INPUT] = [hardware.gpu_count, hardware.tensorrt]


def _plan_cache_dir(config: pytest.Config) -> Path | None:
    """Where --tipc-plan-cache keeps plans: pytest's cache folder (none with -p no:cacheprovider).

    Off by default: planning takes about a millisecond per config x mode, and a cold cache's writes cost more than
    that (benchmarks/zoo_scale.py measures both); it pays off for plans that are slow to build.
    """
    cache = getattr(config, "cache", None)
    if cache is None:
        return None
    return Path(cache.mkdir("tipc-plans"))


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
    """A config this front end collects: under test_tipc/configs, matching the glob, of a kind it runs."""
    if not is_tipc_config_path(file_path) or not file_path.match(glob):
        return False
    kind = config_kind(file_path)
    return is_handled(kind) or kind is ConfigKind.OTHER


@pytest.hookimpl
def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> TipcFile | None:
    """Collect the train/inference python configs; note every other TIPC config kind, never fail on one."""
    if not is_tipc_config_path(file_path):
        return None
    session = _session(parent.config)
    kind = config_kind(file_path)
    if file_path.match(session.glob) and (is_handled(kind) or kind is ConfigKind.OTHER):
        return TipcFile.from_parent(parent, path=file_path)
    if not is_handled(kind):
        session.note_unhandled(kind, _rootdir_relative(file_path, parent.config))
    return None


def _rootdir_relative(path: Path, config: pytest.Config) -> str:
    try:
        return path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return str(path)


@pytest.hookimpl
def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    """One line naming the config kinds found but not run (cpp, serving, lite, paddle2onnx, ptq, ...), and what
    --tipc-affected-since selected and why."""
    session = config.stash.get(_SESSION, None)
    if session is None:
        return []
    line = describe_unhandled(session.unhandled)
    lines = [f"tipc: {line} (not collected)"] if line else []
    if session.affected_since is not None and _AFFECTED in config.stash:
        whys = config.stash[_AFFECTED]
        head = f"tipc: cases affected since {session.affected_since}"
        lines += [head + (": every case, because:" if whys else " (others deselected)"), *(f"  {w}" for w in whys)]
    return lines


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


def _deselect_unaffected(items: list[pytest.Item], config: pytest.Config, tipc: TipcSession) -> None:
    """--tipc-affected-since: drop the steps of cases none of whose inputs changed (ordinary tests stay)."""
    from harness import affected  # noqa: PLC0415  (only this option needs git and the import graph)

    assert tipc.affected_since is not None
    graph = affected.ImportGraph(tipc.root)
    plans: dict[tuple[str, str], Plan] = {}
    for item in items:
        if isinstance(item, StepItem):
            plans.setdefault((_root_relative(item.path, tipc.root), item.plan.mode), item.plan)
    cases = [
        affected.case_inputs(plan, root=tipc.root, config=config_name, graph=graph)
        for (config_name, _), plan in plans.items()
    ]
    try:
        changed = affected.changed_files(tipc.root, tipc.affected_since)
    except affected.AffectedError as exc:  # not a git repository, unknown revision: one line, no traceback
        raise pytest.UsageError(str(exc)) from None
    selection = affected.select_cases(cases, changed)
    keep_cases = frozenset(selection.cases)
    config.stash[_AFFECTED] = selection.everything

    def wanted(item: pytest.Item) -> bool:
        return not isinstance(item, StepItem) or (_root_relative(item.path, tipc.root), item.plan.mode) in keep_cases

    keep = [i for i in items if wanted(i)]
    dropped = [i for i in items if not wanted(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def _root_relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


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
    if tipc.affected_since is not None:
        _deselect_unaffected(items, config, tipc)
    if not any(isinstance(item, StepItem) for item in items):
        return  # installed plugins load in every project: probe no hardware where there are no chains
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
        if config.layout is Layout.PTQ:
            # A ptq_params config is the input of test_ptq_inference_python.sh, whatever its file name says.
            _session(self.config).note_unhandled(ConfigKind.PTQ, self._relpath())
            return
        if model:
            self.extra_keyword_matches.add(model)
        session = _session(self.config)
        for mode in session.modes:
            if session.keyword and not _may_match(session.keyword, self, mode):
                continue  # -k can select no step of this mode: do not plan it (its items would all be deselected)
            yield ModeNode.from_parent(self, name=mode, tipc_config=config, mode=mode, relpath=self._relpath())

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: str | None = None
    ) -> str:
        if isinstance(excinfo.value, ConfigError):
            return excinfo.value.render()
        return str(super().repr_failure(excinfo))


@functools.cache
def _keyword_expression(keyword: str) -> tuple[Any, tuple[str, ...]] | None:
    """The compiled -k expression and its identifiers; None when it cannot be reasoned about here."""
    from _pytest.mark.expression import Expression  # noqa: PLC0415  (pytest's own -k parser)

    if keyword.startswith("-") or keyword.endswith(":"):
        return None  # pytest's legacy "-name" / "name:" forms: leave them to pytest
    try:
        expression = Expression.compile(keyword)
        return expression, tuple(sorted(expression.idents()))
    except (SyntaxError, AttributeError):  # pytest reports a bad -k itself; an older pytest has no idents()
        return None


def _may_match(keyword: str, node: pytest.Collector, mode: str) -> bool:
    """Whether ``-k keyword`` could select some item below ``node``'s ``mode`` child.

    -k matches the names and extra keywords of an item and all its parents. Here only the file's and the mode's
    are known; every identifier none of them contains may still match a chain, step or marker name further down,
    so it is tried both ways. False only when no choice for those identifiers makes the expression true.
    """
    compiled = _keyword_expression(keyword)
    if compiled is None:
        return True
    expression, idents = compiled
    known = [mode.lower()]
    for parent in node.listchain():
        if isinstance(parent, pytest.Session) or (
            isinstance(parent, pytest.Directory) and isinstance(parent.parent, pytest.Session)
        ):
            continue
        known.append(parent.name.lower())
        known.extend(word.lower() for word in parent.extra_keyword_matches)
        known.extend(mark.name.lower() for mark in parent.own_markers)
    certain = {i for i in idents if any(i.lower() in name for name in known)}
    open_idents = [i for i in idents if i not in certain]
    if len(open_idents) > 12:
        return True  # too many to try; collecting everything is always correct
    for bits in range(1 << len(open_idents)):
        chosen = {i for n, i in enumerate(open_idents) if bits >> n & 1}

        def matcher(name: str, /, **kwargs: object) -> bool:
            if kwargs:
                raise pytest.UsageError("Keyword expressions do not support call parameters.")
            return name in certain or name in chosen

        if expression.evaluate(matcher):
            return True
    return False


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
            plan = session.plan_cache.plan(self.tipc_config, self.mode, session.plan_options(self.path))
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


@functools.cache
def _marker(name: str) -> pytest.MarkDecorator:
    """One MarkDecorator per marker name. ``pytest.mark.<name>`` builds and checks a new one on every lookup, which
    was a good part of a zoo's collection time (tens of microseconds, several per item). Made on first use, after
    pytest_configure declared the markers, so --strict-markers accepts them."""
    decorator: pytest.MarkDecorator = getattr(pytest.mark, name)
    return decorator


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
                self.add_marker(_marker(word))
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
                result = run_with_reruns(
                    lambda: run_step(
                        self.step,
                        self.chain,
                        root=session.root,
                        hardware=session.hardware,
                        prior=prior,
                        python=session.python,
                        timeout_s=session.timeout_s,
                        inside=self.plan.output_dir,
                    ),
                    reruns=session.reruns,
                    root=session.root,
                )
        prior[self.step.name] = result
        lost: list[str] = []  # record files a full disk refused: said once, never in place of the step's outcome
        try:
            session.results_log(self.plan).write(result, reference_line=self.step.command.reference_line)
        except OSError as exc:
            lost.append(f"cannot write {session.root / self.plan.results_log}: {exc.strerror or exc}")
        self.user_properties.extend(
            [
                ("returncode", "" if result.returncode is None else str(result.returncode)),
                ("duration_s", f"{result.duration_s:.3f}"),
                ("status", str(result.status)),
                ("reason", result.reason),
                *((("attempts", str(result.attempts)),) if result.attempts > 1 else ()),
                *((("flaky", "true"),) if result.flaky else ()),
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
