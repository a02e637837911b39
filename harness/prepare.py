"""Data preparation: a repository's own ``test_tipc/prepare.sh``, or this project's generators for its own configs."""

from __future__ import annotations

import dataclasses
import enum
import posixpath
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from harness.command import Command

__all__ = [
    "DROP_IN_MARK",
    "PREPARE_REGISTRY",
    "PREPARE_TIMEOUT_S",
    "REPOSITORY_SCRIPT",
    "PrepareEntry",
    "PrepareSource",
    "Preparation",
    "config_folder",
    "lookup",
    "network_failures",
    "plan_preparation",
    "prepare_command",
    "repository_script",
]

# Building a data set is quick for the lite modes, but whole-data modes may download and unpack for a while.
PREPARE_TIMEOUT_S = 3600.0

# Where a TIPC repository keeps its preparation script, relative to its root, and the text that marks this
# project's own drop-in version of it (which calls back into the harness and must not be run from here).
REPOSITORY_SCRIPT = "test_tipc/prepare.sh"
DROP_IN_MARK = "-m harness prepare"

# Lines of a preparation log that say a download or a package index could not be reached. Reported after a
# run whatever its exit status: a script without `set -e` carries on past a failed wget and may still exit 0.
_NETWORK = re.compile(
    r"unable to resolve host|name or service not known|temporary failure in name resolution|could not resolve host"
    r"|network is unreachable|connection (refused|timed out)|failed to establish a new connection"
    r"|could not find a version that satisfies|no matching distribution found|max retries exceeded",
    re.IGNORECASE,
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PrepareEntry:
    """A Python script (relative to the run root) and its arguments; ``modes`` empty means every mode."""

    script: str
    args: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()

    def applies_to(self, mode: str) -> bool:
        return not self.modes or mode in self.modes


# This project's own configs, keyed by the folder they live in (relative to the run root), never by model_name:
# another repository's config may well be called mobilenet_v3_small too. Add a model by adding a row.
PREPARE_REGISTRY: Mapping[str, PrepareEntry] = {
    "test_tipc/configs/mobilenet_v3_small": PrepareEntry(script="lite_data/make_cls_lite.py"),
    "test_tipc/configs/picodet_lite": PrepareEntry(script="lite_data/make_det_lite.py"),
    "test_tipc/configs/pointpillars_lite": PrepareEntry(script="lite_data/make_kitti_lite.py"),
}


class PrepareSource(enum.StrEnum):
    REPOSITORY = "repository"  # the repository's own test_tipc/prepare.sh CONFIG MODE
    GENERATOR = "generator"  # one of this project's lite data generators


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Preparation:
    """What ``tipc prepare`` runs for one config and mode, and why."""

    source: PrepareSource
    command: Command
    why: str


def config_folder(config_path: str | Path, root: str | Path) -> str | None:
    """The config's folder relative to ``root`` (``test_tipc/configs/<model>``), or None when it lies outside."""
    try:
        relative = Path(config_path).resolve().parent.relative_to(Path(root).resolve())
    except ValueError:
        return None
    return relative.as_posix()


def lookup(
    config_path: str | Path, root: str | Path, registry: Mapping[str, PrepareEntry] = PREPARE_REGISTRY
) -> PrepareEntry | None:
    """The generator for a config of this project (by the folder it lives in), or None."""
    folder = config_folder(config_path, root)
    return None if folder is None else registry.get(folder)


def repository_script(root: str | Path) -> Path | None:
    """The repository's own ``test_tipc/prepare.sh``, or None when it has none or it is this project's drop-in."""
    script = Path(root) / REPOSITORY_SCRIPT
    try:
        text = script.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return None if DROP_IN_MARK in text else script


def prepare_command(entry: PrepareEntry, *, root: str | Path, log_path: str) -> Command | None:
    """The Command that runs ``entry`` under ``root``, or None when its script is not in this repository."""
    if not (Path(root) / entry.script).is_file():
        return None
    return Command(
        argv=(sys.executable, entry.script, *entry.args),
        cwd=".",
        timeout_s=PREPARE_TIMEOUT_S,
        log_path=log_path,
    )


def plan_preparation(config_path: str | Path, mode: str, *, root: str | Path, log_path: str) -> Preparation | None:
    """What prepares ``config_path`` for ``mode``: the repository's own script when it has one, else this project's
    generator for its own configs, else nothing (None)."""
    script = repository_script(root)
    if script is not None:
        folder = config_folder(config_path, root)
        config_arg = (
            posixpath.join(folder, Path(config_path).name) if folder is not None else str(Path(config_path).resolve())
        )
        command = Command(
            argv=("bash", REPOSITORY_SCRIPT, config_arg, mode),
            cwd=".",
            timeout_s=PREPARE_TIMEOUT_S,
            log_path=log_path,
        )
        return Preparation(source=PrepareSource.REPOSITORY, command=command, why=f"the repository's {REPOSITORY_SCRIPT}")
    entry = lookup(config_path, root)
    if entry is None or not entry.applies_to(mode):
        return None
    generator = prepare_command(entry, root=root, log_path=log_path)
    if generator is None:
        return None
    folder = config_folder(config_path, root)
    return Preparation(source=PrepareSource.GENERATOR, command=generator, why=f"this project's generator for {folder}")


def network_failures(log_text: str, *, limit: int = 10) -> tuple[str, ...]:
    """Lines of a preparation log that report an unreachable host or package index (at most ``limit``)."""
    found = [line.strip() for line in log_text.splitlines() if _NETWORK.search(line)]
    return tuple(dict.fromkeys(found))[:limit]
