"""Run history in a database (SQLite file by default, any SQLAlchemy URL): record runs, classify steps over time."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import re
import statistics
import sys
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from harness.environment import RunEnvironment
from harness.errors import HarnessError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from harness.reports import CaseRecord

__all__ = [
    "DEFAULT_HISTORY",
    "History",
    "HistoryError",
    "HistoryRow",
    "NEW_FAILURE",
    "STILL_FAILING",
    "FIXED",
    "FLAKY",
    "Trend",
    "Verdict",
    "classify",
    "database_url",
    "numbers_from_log",
    "open_history",
    "register_cli",
    "trends",
]

DEFAULT_HISTORY: Final = "reports/history.sqlite"
NEW_FAILURE: Final = "new failure"
STILL_FAILING: Final = "still failing"
FIXED: Final = "fixed"
FLAKY: Final = "flaky"
PASSING: Final = "passing"
SKIPPED: Final = "skipped"
_FAILING: Final = frozenset({"failed", "timeout", "error"})
_PASSING: Final = frozenset({"passed"})
_ORDER: Final = (NEW_FAILURE, FLAKY, STILL_FAILING, FIXED, PASSING, SKIPPED)
# "eval: top1=0.7170 top5=..." / "eval: mAP=0.7190 mAP50=..." (the first number is the metric), "ips: 812.3 samples/s".
_METRIC: Final = re.compile(r"\beval:\s*([A-Za-z][\w@.-]*)=([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")
_IPS: Final = re.compile(r"\bips:\s*([-+]?\d+(?:\.\d+)?)")


class HistoryError(HarnessError):
    """A history database that cannot be opened or written (bad URL, server down); shown as one line."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HistoryRow:
    """One step of one recorded run."""

    run_id: str
    started: datetime.datetime
    commit: str
    environment: str
    key: str
    model: str
    mode: str
    chain: str
    step: str
    status: str
    duration_s: float
    reason: str = ""
    metric_name: str = ""
    metric: float | None = None
    ips: float | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    key: str
    model: str
    mode: str
    verdict: str  # one of _ORDER
    status: str  # the latest run's status
    runs: int
    reason: str = ""
    durations: tuple[float, ...] = ()  # oldest first, runs where the step ran

    def duration_change(self) -> float | None:
        """The latest duration relative to the median of the earlier ones (0.25 = 25 % slower)."""
        if len(self.durations) < 2:
            return None
        before = statistics.median(self.durations[:-1])
        return (self.durations[-1] - before) / before if before > 0 else None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Trend:
    """Per model x mode and run: total step seconds and counts, oldest run first (the report's chart)."""

    model: str
    mode: str
    points: tuple[tuple[str, float, int, int], ...]  # (started ISO, seconds, passed, failing)


def database_url(text: str) -> str:
    """A SQLAlchemy URL from ``--history``: a URL as is (postgresql:// uses psycopg 3), a plain path as SQLite."""
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    return text


def numbers_from_log(text: str) -> tuple[str, float | None, float | None]:
    """(metric name, metric, ips) from a step's log: the last ``eval: name=value`` and the mean ``ips:`` value."""
    metrics = _METRIC.findall(text)
    name, metric = (metrics[-1][0], float(metrics[-1][1])) if metrics else ("", None)
    speeds = [float(value) for value in _IPS.findall(text)]
    ips = round(statistics.fmean(speeds), 3) if speeds else None
    return name, metric, ips


def _tables() -> tuple[sa.MetaData, sa.Table, sa.Table]:
    import sqlalchemy as sa  # noqa: PLC0415  (imported on use: the pytest plugin loads this module on every run)

    meta = sa.MetaData()
    runs = sa.Table(
        "tipc_runs",
        meta,
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("repo_commit", sa.String(80), nullable=False, default=""),  # not "commit": an SQL keyword
        sa.Column("environment", sa.String(400), nullable=False, default=""),
        sa.Column("environment_json", sa.Text, nullable=False, default="{}"),
        sa.Column("source", sa.String(40), nullable=False, default=""),
    )
    steps = sa.Table(
        "tipc_steps",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("tipc_runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(600), nullable=False, index=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("mode", sa.String(80), nullable=False),
        sa.Column("config", sa.String(400), nullable=False, default=""),
        sa.Column("chain", sa.String(200), nullable=False, default=""),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False, default=""),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False, default=0.0),
        sa.Column("reason", sa.Text, nullable=False, default=""),
        sa.Column("metric_name", sa.String(80), nullable=False, default=""),
        sa.Column("metric", sa.Float, nullable=True),
        sa.Column("ips", sa.Float, nullable=True),
    )
    return meta, runs, steps


class History:
    """A run history database; tables are created on first use."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa  # noqa: PLC0415
        import sqlalchemy.exc  # noqa: PLC0415

        self.url = database_url(url)
        self._meta, self._runs, self._steps = _tables()
        try:
            if self.url.startswith("sqlite:///"):
                Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine = sa.create_engine(self.url)
            self._meta.create_all(self.engine)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError) as exc:
            msg = f"history database {_safe_url(self.url)}: {_first_line(exc)}"
            raise HistoryError(msg) from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record_run(
        self,
        records: Iterable[CaseRecord],
        *,
        environment: RunEnvironment,
        run_id: str = "",
        source: str = "",
        log_root: Path | None = None,
    ) -> str:
        """Store one run's TIPC steps (numbers read from their logs under ``log_root``); returns the run id.

        Recording the same run id again replaces that run, so a re-sent merge does not count twice.
        """
        import sqlalchemy as sa  # noqa: PLC0415
        import sqlalchemy.exc  # noqa: PLC0415

        run_id = run_id or uuid.uuid4().hex
        started = _parse_time(environment.started)
        rows = []
        for record in records:
            if not record.tipc:
                continue
            name, metric, ips = "", None, None
            if log_root is not None and record.log_path and record.status not in ("skipped",):
                from harness.reports import read_log_tail  # noqa: PLC0415

                name, metric, ips = numbers_from_log(read_log_tail(log_root / record.log_path, 400))
            rows.append(
                {
                    "run_id": run_id,
                    "key": record.key,
                    "model": record.model,
                    "mode": record.mode,
                    "config": record.config,
                    "chain": record.chain,
                    "step": record.step,
                    "kind": record.kind,
                    "status": record.status,
                    "duration_s": float(record.duration_s),
                    "reason": record.reason,
                    "metric_name": name,
                    "metric": metric,
                    "ips": ips,
                }
            )
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(self._steps).where(self._steps.c.run_id == run_id))
                conn.execute(sa.delete(self._runs).where(self._runs.c.run_id == run_id))
                conn.execute(
                    sa.insert(self._runs).values(
                        run_id=run_id,
                        started=started,
                        repo_commit=environment.commit,
                        environment=environment.key(),
                        environment_json=json.dumps(environment.to_json(), sort_keys=True),
                        source=source,
                    )
                )
                if rows:
                    conn.execute(sa.insert(self._steps), rows)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            msg = f"history database {_safe_url(self.url)}: {_first_line(exc)}"
            raise HistoryError(msg) from None
        return run_id

    def rows(self, *, last_runs: int = 20, model: str | None = None) -> tuple[HistoryRow, ...]:
        """Step rows of the ``last_runs`` most recent runs, oldest run first."""
        import sqlalchemy as sa  # noqa: PLC0415

        runs, steps = self._runs, self._steps
        recent = sa.select(runs.c.run_id).order_by(runs.c.started.desc(), runs.c.run_id.desc()).limit(last_runs)
        query = (
            sa.select(runs.c.run_id, runs.c.started, runs.c.repo_commit, runs.c.environment, steps)
            .join(steps, steps.c.run_id == runs.c.run_id)
            .where(runs.c.run_id.in_(recent.scalar_subquery()))
            .order_by(runs.c.started, runs.c.run_id, steps.c.id)
        )
        if model is not None:
            query = query.where(steps.c.model == model)
        with self.engine.connect() as conn:
            result = conn.execute(query).mappings().all()
        return tuple(
            HistoryRow(
                run_id=str(row["run_id"]),
                started=_utc(row["started"]),
                commit=str(row["repo_commit"]),
                environment=str(row["environment"]),
                key=str(row["key"]),
                model=str(row["model"]),
                mode=str(row["mode"]),
                chain=str(row["chain"]),
                step=str(row["step"]),
                status=str(row["status"]),
                duration_s=float(row["duration_s"]),
                reason=str(row["reason"]),
                metric_name=str(row["metric_name"]),
                metric=row["metric"],
                ips=row["ips"],
            )
            for row in result
        )

    def run_ids(self) -> tuple[str, ...]:
        """Every recorded run id, oldest first."""
        import sqlalchemy as sa  # noqa: PLC0415

        query = sa.select(self._runs.c.run_id).order_by(self._runs.c.started, self._runs.c.run_id)
        with self.engine.connect() as conn:
            return tuple(str(value) for value in conn.execute(query).scalars())


def open_history(url: str) -> History:
    return History(url)


def _safe_url(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)  # never print a password


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _parse_time(text: str) -> datetime.datetime:
    try:
        when = datetime.datetime.fromisoformat(text) if text else datetime.datetime.now(datetime.UTC)
    except ValueError:
        when = datetime.datetime.now(datetime.UTC)
    return _utc(when)


def _utc(when: datetime.datetime) -> datetime.datetime:
    # SQLite returns naive datetimes; everything stored is UTC.
    return when.replace(tzinfo=datetime.UTC) if when.tzinfo is None else when.astimezone(datetime.UTC)


def classify(rows: Sequence[HistoryRow]) -> tuple[Verdict, ...]:
    """Per step, over runs oldest first: new failure, still failing, fixed, flaky, passing or skipped.

    Flaky wins: a step that passed only on a re-run, or that both passed and failed on the latest run's commit and
    environment (nothing changed, the result did), is flaky whatever its latest status.
    """
    by_key: dict[str, list[HistoryRow]] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row)
    verdicts: list[Verdict] = []
    for key, history in by_key.items():
        latest = history[-1]
        same = [r.status for r in history if r.commit == latest.commit and r.environment == latest.environment]
        mixed = any(s in _FAILING for s in same) and any(s in _PASSING for s in same)
        earlier = [r for r in history[:-1] if r.status != "skipped"]
        previous = earlier[-1].status if earlier else ""
        if latest.status == FLAKY or mixed:
            verdict = FLAKY
        elif latest.status in _FAILING:
            verdict = STILL_FAILING if previous in _FAILING else NEW_FAILURE
        elif latest.status == "skipped":
            verdict = SKIPPED
        elif previous in _FAILING:
            verdict = FIXED
        else:
            verdict = PASSING
        verdicts.append(
            Verdict(
                key=key,
                model=latest.model,
                mode=latest.mode,
                verdict=verdict,
                status=latest.status,
                runs=len({r.run_id for r in history}),
                reason=latest.reason,
                durations=tuple(r.duration_s for r in history if r.status != "skipped"),
            )
        )
    return tuple(sorted(verdicts, key=lambda v: (_ORDER.index(v.verdict), v.key)))


def trends(rows: Sequence[HistoryRow]) -> tuple[Trend, ...]:
    """Per model x mode: each run's total step seconds, passed and failing counts, oldest run first."""
    # (model, mode) -> run id -> [seconds, passed, failing]
    table: dict[tuple[str, str], dict[str, tuple[float, int, int]]] = {}
    started: dict[str, datetime.datetime] = {}
    for row in rows:
        started[row.run_id] = row.started
        runs = table.setdefault((row.model, row.mode), {})
        seconds, passed, failing = runs.get(row.run_id, (0.0, 0, 0))
        runs[row.run_id] = (
            seconds + row.duration_s,
            passed + (row.status in _PASSING or row.status == FLAKY),
            failing + (row.status in _FAILING),
        )
    out = []
    for (model, mode), runs in sorted(table.items()):
        ordered = sorted(runs.items(), key=lambda kv: (started[kv[0]], kv[0]))
        points = tuple((started[run].isoformat(), round(v[0], 3), v[1], v[2]) for run, v in ordered)
        out.append(Trend(model=model, mode=mode, points=points))
    return tuple(out)


# --------------------------------------------------------------------------- text


_BARS: Final = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """Durations as a row of block characters, scaled between their minimum and maximum."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    return "".join(_BARS[0 if span == 0 else min(len(_BARS) - 1, int((v - low) / span * len(_BARS)))] for v in values)


def render_text(verdicts: Sequence[Verdict], *, show_passing: bool = False, limit: int = 50) -> str:
    counts = {name: sum(1 for v in verdicts if v.verdict == name) for name in _ORDER}
    lines = [", ".join(f"{n} {name}" for name, n in counts.items() if n) or "no recorded steps"]
    for name in _ORDER:
        if name in (PASSING, SKIPPED) and not show_passing:
            continue
        group = [v for v in verdicts if v.verdict == name]
        if not group:
            continue
        lines.append(f"{name}: {len(group)}")
        for verdict in group[:limit]:
            change = verdict.duration_change()
            trend = f"  {sparkline(verdict.durations[-12:])} {verdict.durations[-1]:.1f} s" if verdict.durations else ""
            if change is not None and abs(change) >= 0.05:
                trend += f" ({change:+.0%})"
            why = f"  ({verdict.reason})" if verdict.reason and verdict.verdict != PASSING else ""
            lines.append(f"  {verdict.key}{trend}{why}")
        if len(group) > limit:
            lines.append(f"  ... and {len(group) - limit} more (--limit to show more)")
    return "\n".join(lines)


def _cmd_history(args: argparse.Namespace) -> int:
    try:
        with History(args.history) as history:
            rows = history.rows(last_runs=args.runs, model=args.model)
    except HistoryError as exc:
        sys.stderr.write(f"tipc history: {exc}\n")
        return 2
    verdicts = classify(rows)
    if args.format == "json":
        sys.stdout.write(json.dumps([dataclasses.asdict(v) for v in verdicts], indent=2) + "\n")
    else:
        runs = len({row.run_id for row in rows})
        sys.stdout.write(f"{runs} run(s) in {_safe_url(database_url(args.history))}\n")
        sys.stdout.write(render_text(verdicts, show_passing=args.all, limit=args.limit) + "\n")
    return 0


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``tipc history`` to the harness CLI."""
    parser = subparsers.add_parser(
        "history",
        help="per step: new failure / still failing / fixed / flaky, and duration trends, from the run history",
    )
    parser.add_argument(
        "--history",
        default=DEFAULT_HISTORY,
        metavar="URL",
        help=f"SQLite file or SQLAlchemy URL, e.g. postgresql://user:pw@host/db (default: {DEFAULT_HISTORY})",
    )
    parser.add_argument("--runs", type=int, default=20, help="how many recent runs to look at (default: 20)")
    parser.add_argument("--model", default=None, help="only this model")
    parser.add_argument("--all", action="store_true", help="also list passing and skipped steps")
    parser.add_argument("--limit", type=int, default=50, help="at most this many steps per group (default: 50)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(handler=_cmd_history)
