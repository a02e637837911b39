"""pytest side of run history, flaky re-runs and the run environment (registered by harness.pytest_plugin)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import pytest

from harness.environment import RunEnvironment, collect_environment
from harness.reports import ENV_PROPERTY_PREFIX, FAILING, CaseRecord
from harness.steps import Chain

__all__ = ["DEVICE_CHOICES", "TipcExtras", "add_options", "chain_device", "pytest_collection_modifyitems", "record_of_report"]

FLAKY_PROPERTY: Final = "flaky"
DEVICE_CHOICES: Final = ("cpu", "gpu")
_DEVICE_NEEDS: Final = frozenset({"gpu", "multi_gpu", "tensorrt"})


def chain_device(chain: Chain) -> str:
    """'gpu' when a chain's first step needs a CUDA device (it trains, or first runs, on a GPU), else 'cpu'."""
    first = chain.steps[0] if chain.steps else None
    return "gpu" if first is not None and {str(r) for r in first.requires} & _DEVICE_NEEDS else "cpu"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--tipc-device: keep whole chains of one device kind (steps of a chain never split between cells)."""
    wanted = config.getoption("tipc_device", None)
    if wanted is None:
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        chain = getattr(item, "chain", None)
        (keep if not isinstance(chain, Chain) or chain_device(chain) == wanted else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def add_options(group: pytest.OptionGroup) -> None:
    """The options this module serves, in the plugin's one "tipc" group."""
    group.addoption(
        "--tipc-history",
        default=None,
        metavar="URL",
        help="record this run in a history database: a SQLite file or a SQLAlchemy URL (postgresql://...)",
    )
    group.addoption(
        "--tipc-device",
        choices=DEVICE_CHOICES,
        default=None,
        help="gpu: only chains that train (or, without training, first run) on a GPU; cpu: every other chain. "
        "Nightly GPU and CPU cells split the chains this way, so no step runs in both",
    )
    group.addoption(
        "--tipc-reruns",
        type=int,
        default=0,
        metavar="N",
        help="re-run a failed step up to N times before its dependents run; a pass on a re-run is reported FLAKY",
    )


def record_of_report(report: pytest.TestReport) -> CaseRecord | None:
    """A CaseRecord from a step's test report and the properties the plugin attached to it; None for other tests."""
    props: Mapping[str, str] = {str(k): str(v) for k, v in report.user_properties}
    if "model" not in props:
        return None
    if report.skipped:
        status = "skipped"
    elif report.failed:
        status = props.get("status", "failed")
        status = status if status in FAILING else "failed"
    elif props.get(FLAKY_PROPERTY) == "true":
        status = "flaky"
    else:
        status = "passed"
    reason = props.get("reason", "")
    if not reason and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    try:
        duration = float(props.get("duration_s", "") or report.duration)
    except ValueError:
        duration = report.duration
    return CaseRecord(
        key="::".join((props.get("config", ""), props.get("mode", ""), props.get("chain", ""), props.get("step", ""))),
        model=props["model"],
        mode=props.get("mode", ""),
        config=props.get("config", ""),
        chain=props.get("chain", ""),
        trainer=props.get("trainer", ""),
        step=props.get("step", ""),
        kind=props.get("kind", ""),
        status=status,
        duration_s=duration,
        command=props.get("command", ""),
        log_path=props.get("log_path", ""),
        returncode=props.get("returncode", ""),
        reason=reason,
        attempts=int(props.get("attempts", "1") or 1),
    )


class TipcExtras:
    """Controller-side: the environment as JUnit suite properties, FLAKY in the terminal, the history at the end."""

    def __init__(self, config: pytest.Config, *, root: Path, run_id: str) -> None:
        self.config = config
        self.root = root
        self.run_id = run_id
        self.history_url: str | None = config.getoption("tipc_history")
        self.records: list[CaseRecord] = []
        self.environment: RunEnvironment | None = None

    @pytest.hookimpl
    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        if (self.root / "test_tipc" / "configs").is_dir():
            return []
        return [
            f"tipc: warning: {self.root} has no test_tipc/configs (not a repository root? see --tipc-root); "
            f"step output goes to {self.root / 'test_tipc' / 'output'}"
        ]

    @pytest.hookimpl
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.environment = collect_environment(self.root)
        from _pytest.junitxml import xml_key  # noqa: PLC0415  (the --junitxml writer, when one is active)

        xml = self.config.stash.get(xml_key, None)
        if xml is not None:
            for name, value in self.environment.to_json().items():
                xml.add_global_property(f"{ENV_PROPERTY_PREFIX}{name}", value)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(
        self, report: pytest.TestReport, config: pytest.Config
    ) -> tuple[str, str, tuple[str, Mapping[str, bool]]] | None:
        if report.when == "call" and report.passed and (FLAKY_PROPERTY, "true") in report.user_properties:
            return "flaky", "f", ("FLAKY", {"yellow": True})
        return None

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # One record per step: its call report, or the setup report of a step skipped before it ran.
        if report.when == "call" or (report.when == "setup" and not report.passed):
            record = record_of_report(report)
            if record is not None:
                self.records.append(record)

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.history_url or not self.records:
            return
        from harness.history import History, HistoryError  # noqa: PLC0415

        try:
            with History(self.history_url) as history:
                history.record_run(
                    self.records,
                    environment=self.environment or RunEnvironment(),
                    run_id=self.run_id,
                    source="pytest",
                    log_root=self.root,
                )
        except HistoryError as exc:
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"tipc: could not record the run history: {exc}", red=True)
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"tipc: recorded run {self.run_id} ({len(self.records)} steps) in the history")
