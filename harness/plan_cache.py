"""A file cache of plans keyed by config content, mode, options and the harness's own code, shared by processes."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import pickle
import sys
import tempfile
from pathlib import Path

from harness.config import TipcConfig
from harness.plan import PlanOptions, build_plan
from harness.steps import Plan

__all__ = ["PlanCache", "folder_fingerprint", "harness_fingerprint", "plan_key"]

# Bump when the pickled layout changes in a way the code fingerprint would not show.
_FORMAT = "1"
_STRIPES = 16  # lock files per cache folder: workers planning different configs rarely wait for each other


@functools.cache
def harness_fingerprint() -> str:
    """A hash of every module of the harness package and its subpackages: a planner change never reuses a plan."""
    return folder_fingerprint(Path(__file__).resolve().parent)


def folder_fingerprint(folder: Path) -> str:
    """A hash of the names and contents of the ``.py`` files under ``folder``, subfolders included."""
    digest = hashlib.sha256(f"{_FORMAT}|{sys.version}".encode())
    for path in sorted(folder.rglob("*.py")):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def plan_key(config: TipcConfig, mode: str, options: PlanOptions) -> str:
    """What a plan depends on: the config's path and lines, the mode, every option and the harness code."""
    digest = hashlib.sha256(harness_fingerprint().encode())
    digest.update(f"\0{config.path}\0{config.layout}\0{mode}\0{options!r}\0".encode())
    digest.update("\n".join(f"{e.index}\t{e.line}\t{e.text}" for e in config.entries).encode())
    return digest.hexdigest()


class PlanCache:
    """``build_plan`` through a folder of pickled plans; without a folder it just plans.

    Several processes (xdist workers) may share one folder: a plan is written once under a lock, to a temporary
    file renamed into place, so a reader never sees half a file and a second worker waits instead of replanning.
    Config errors are not cached: they are raised again, with their line, every time.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.hits = 0
        self.misses = 0

    def plan(self, config: TipcConfig, mode: str, options: PlanOptions) -> Plan:
        if self.directory is None:
            self.misses += 1
            return build_plan(config, mode, options)
        key = plan_key(config, mode, options)
        path = self.directory / f"{key}.pickle"
        cached = self._load(path)
        if cached is not None:
            self.hits += 1
            return cached
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / f"lock-{int(key[:8], 16) % _STRIPES}").open("ab") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                cached = self._load(path)  # another worker may have planned it while we waited
                if cached is not None:
                    self.hits += 1
                    return cached
                self.misses += 1
                plan = build_plan(config, mode, options)
                self._store(path, plan)
                return plan
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _load(path: Path) -> Plan | None:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            value = pickle.loads(data)  # noqa: S301  (our own cache folder, written by this class)
        except Exception:  # noqa: BLE001  (a truncated or foreign file is a miss, never an error)
            return None
        return value if isinstance(value, Plan) else None

    @staticmethod
    def _store(path: Path, plan: Plan) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pickle")
        try:
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(plan, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
