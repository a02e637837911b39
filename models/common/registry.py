"""Model families and their architectures: which package trains, evaluates and exports a config's `architecture`."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any

from models.common.config import Config

__all__ = ["Family", "TaskFn", "UnknownArchitecture", "discover", "find_family", "register", "registered"]

# A task gets the merged config and the tool's own parsed flags (argparse namespace), and returns an exit code.
TaskFn = Callable[[Config, Any], int]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Family:
    """One model family (a package under `models/`), e.g. 2D detection or lidar 3D detection."""

    name: str
    architectures: tuple[str, ...]
    # Builds the default config tree for an architecture; every key a config may set must appear here.
    defaults: Callable[[str], Mapping[str, Any]]
    # "train", "eval", "export" ... -> callable. Imported lazily by the family so `--help` stays fast.
    tasks: Mapping[str, TaskFn]


class UnknownArchitecture(LookupError):
    pass


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family; a second family claiming an architecture that is already taken is a programming error."""
    for other in _FAMILIES.values():
        clash = set(other.architectures) & set(family.architectures)
        if other.name != family.name and clash:
            msg = f"architecture(s) {sorted(clash)} claimed by both {other.name!r} and {family.name!r}"
            raise ValueError(msg)
    _FAMILIES[family.name] = family
    return family


def registered() -> tuple[Family, ...]:
    return tuple(_FAMILIES[name] for name in sorted(_FAMILIES))


def _family_modules() -> tuple[str, ...]:
    """`models.<pkg>.family` for every package folder under any `models/` root that has a `family.py`."""
    import models  # namespace package: its __path__ lists every `models/` folder on sys.path

    names = {
        child.name
        for root in models.__path__
        for child in Path(root).iterdir()
        if child.is_dir() and child.name != "common" and (child / "family.py").is_file()
    }
    return tuple(f"models.{name}.family" for name in sorted(names))


def discover(architecture: str | None = None) -> None:
    """Import family modules (each calls `register`), stopping early once `architecture` is registered.

    Discovery instead of a hard-coded list lets another family (say `models/lidar3d/`) plug in by adding its own
    `family.py`, without editing this file. Stopping early keeps one family's import cost (or breakage) away
    from users of another.
    """
    for module in _family_modules():
        if architecture is not None and any(architecture in f.architectures for f in _FAMILIES.values()):
            return
        importlib.import_module(module)


def find_family(architecture: str) -> Family:
    discover(architecture)
    for family in registered():
        if architecture in family.architectures:
            return family
    known = ", ".join(a for f in registered() for a in f.architectures) or "none"
    msg = f"unknown architecture {architecture!r} (registered: {known})"
    raise UnknownArchitecture(msg)
