"""Containment: every file the harness creates or removes lies inside the run's output folder.

Two passes. ``check_plan_paths`` is pure (no I/O, like the planner it follows): it reads the plan's paths as text
and turns a config value that would lead a path out of the output folder (``..``, ``/``, an absolute path, a name
longer than the file system allows) into a ``path:line:`` ConfigError, so ``lint``, ``plan`` and ``run`` all
refuse it. ``resolve_inside`` is the run-time check: it resolves symbolic links on disk before anything is
created or removed, so a link planted inside the output folder cannot redirect a write elsewhere either.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from harness.config import TipcConfig
from harness.errors import ConfigError, HarnessError
from harness.steps import Plan

__all__ = [
    "NAME_MAX",
    "PATH_MAX",
    "OutsideOutput",
    "SIDECAR_NAME",
    "check_plan_paths",
    "own_output_roots",
    "plan_paths",
    "resolve_inside",
]

NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs, tmpfs)
PATH_MAX = 4096  # bytes in a whole path (Linux); relative paths are checked with room left for the run root
SIDECAR_NAME = "results.jsonl"  # harness.reports.SIDECAR; not imported, to keep this module below reports
_MODEL_NAME_INDEX = 2
_ROOT_ALLOWANCE = 1024  # bytes of a run root a relative path must leave room for
_PIECES = re.compile(r"[|=,;]")


class OutsideOutput(HarnessError):
    """A path the harness was about to create or remove resolves outside the run's output folder."""


def plan_paths(plan: Plan) -> Iterator[tuple[str, int]]:
    """Every path the harness itself writes for ``plan``, relative to the run root, with its config line."""
    yield plan.results_log, 0
    yield posixpath.join(plan.output_dir, SIDECAR_NAME), 0
    for chain in plan.chains:
        for step in chain.steps:
            yield step.command.log_path, step.line


def check_plan_paths(plan: Plan, config: TipcConfig) -> None:
    """Raise ConfigError at the config line whose value would take a harness-written path out of the output folder.

    Messages do not name the mode, so ``tipc lint`` (which plans every mode) reports one problem once.
    """
    model_line = config.at(_MODEL_NAME_INDEX).line if config.has(_MODEL_NAME_INDEX) else 0
    if plan.model_name:
        problem = _name_problem(plan.model_name)
        if problem is not None:
            raise ConfigError(config.path, model_line, f"model_name {_short(plan.model_name)} {problem}")
    folder = posixpath.normpath(plan.output_dir)
    for path, line in plan_paths(plan):
        problem = _path_problem(path, folder)
        if problem is None:
            continue
        culprit = _blame(config, path)
        if culprit is None:
            name = posixpath.basename(path)
            raise ConfigError(config.path, line or model_line, f"log file {_short(name)}: {_generic(problem)}")
        entry_line, key, piece = culprit
        msg = f"{key}: value {_short(piece)} {_generic(problem)}"
        raise ConfigError(config.path, entry_line, msg)


def resolve_inside(root: str | os.PathLike[str], folder: str, path: str) -> Path:
    """``root/path`` after checking, on disk, that its folder is (or will be created) inside ``root/folder``.

    Symbolic links among the path's existing folders are followed; the last component is not (a link there is
    replaced, never written through). Raises OutsideOutput otherwise.
    """
    root_path = Path(root)
    base = root_path / folder
    target = root_path / path
    if _path_problem(path, posixpath.normpath(folder)) is not None:
        raise OutsideOutput(f"{target}: not a file name inside the output folder {base}")
    real_base = base.resolve()
    parent = target.parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    # Folders that exist below the output folder must really lie in it; above it nothing is checked (the output
    # folder may itself be a link to a bigger disk, which is the user's choice).
    if _within(existing, base) and not _within(existing.resolve(), real_base):
        msg = f"{target}: folder {existing} leads to {existing.resolve()}, outside the output folder {real_base}"
        raise OutsideOutput(msg)
    return target


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _name_problem(name: str) -> str | None:
    if name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        return "must be a plain name: it becomes a folder of test_tipc/output and may not contain '/' or be '..'"
    if len(name.encode("utf-8", "surrogatepass")) > NAME_MAX:
        return f"is longer than {NAME_MAX} bytes, the longest file name the file system allows"
    return None


_OUTSIDE = "outside"
_TOO_LONG = "too long"


def _path_problem(path: str, folder: str) -> str | None:
    """None for a path that stays in ``folder``, else _OUTSIDE or _TOO_LONG."""
    if posixpath.isabs(path):
        return _OUTSIDE
    parts = path.split("/")
    if ".." in parts or not posixpath.normpath(path).startswith(folder + "/"):
        return _OUTSIDE
    if any(len(part.encode("utf-8", "surrogatepass")) > NAME_MAX for part in parts):
        return _TOO_LONG
    if len(path.encode("utf-8", "surrogatepass")) > PATH_MAX - _ROOT_ALLOWANCE:
        return _TOO_LONG
    return None


def _generic(problem: str) -> str:
    if problem == _OUTSIDE:
        return "would put a file the harness writes outside the output folder (no '/', '..' or absolute paths)"
    return f"makes a file name longer than {NAME_MAX} bytes (or a path longer than {PATH_MAX - _ROOT_ALLOWANCE})"


def _blame(config: TipcConfig, path: str) -> tuple[int, str, str] | None:
    """(line, key, value) of the config value that broke ``path``: one with ``/`` or ``..`` that the path contains,
    else the longest value inside an over-long file name; None when no value is found in the path."""
    parts = path.split("/")
    long_parts = [p for p in parts if len(p.encode("utf-8", "surrogatepass")) > NAME_MAX]
    best: tuple[int, str, str] | None = None
    best_rank = (0, 0)
    for entry in config.entries:
        if entry.header is not None:
            continue
        for piece in (p.strip() for p in _PIECES.split(entry.value)):
            if not piece or piece not in path:
                continue
            escapes = "/" in piece or ".." in piece
            in_long = any(piece in part for part in long_parts)
            if not (escapes or in_long):
                continue
            # A value that escapes beats one that is merely long; of equals, the longest is what the path was
            # built around.
            rank = (2 if escapes else 1, len(piece))
            if rank > best_rank:
                best, best_rank = (entry.line, entry.key, piece), rank
    return best


def _short(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:60] + "..." + text[-12:])


def own_output_roots(configs: Mapping[str, str], *, default: str) -> dict[str, str]:
    """Output root per config (keyed by its path under the configs folder, ``<model dir>/<file>.txt``).

    Configs whose model_name no other config shares keep ``default`` (``test_tipc/output/<model>/<mode>``). When
    several configs name the same model (``train_infer_python`` and ``win_train_infer_python``, or a copy under
    another folder), each gets ``<default>/_configs/<model dir>/<file stem>``, so parallel workers never write
    one another's logs and every results line points to its own step's output.
    """
    users: dict[str, list[str]] = {}
    for relpath, model in configs.items():
        users.setdefault(model, []).append(relpath)
    roots: dict[str, str] = {}
    for relpath, model in configs.items():
        if len(users[model]) > 1:
            roots[relpath] = posixpath.join(default, "_configs", posixpath.splitext(relpath)[0])
        else:
            roots[relpath] = default
    return roots
