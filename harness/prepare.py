"""Data preparation per model: a registry from TIPC model_name to the script that builds the model's data."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path

from harness.command import Command

__all__ = ["PREPARE_REGISTRY", "PREPARE_TIMEOUT_S", "PrepareEntry", "lookup", "prepare_command"]

# Building a data set is quick for the lite modes, but whole-data modes may download and unpack for a while.
PREPARE_TIMEOUT_S = 3600.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PrepareEntry:
    """A Python script (relative to the run root) and its arguments; ``modes`` empty means every mode."""

    script: str
    args: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()

    def applies_to(self, mode: str) -> bool:
        return not self.modes or mode in self.modes


# Keys are config model_name values, compared case-insensitively. Add a model by adding a row, not a branch.
PREPARE_REGISTRY: Mapping[str, PrepareEntry] = {
    "mobilenet_v3_small": PrepareEntry(script="lite_data/make_cls_lite.py"),
    "picodet_lite": PrepareEntry(script="lite_data/make_det_lite.py"),
    "picodet_lite_pact": PrepareEntry(script="lite_data/make_det_lite.py"),
    "picodet_lite_ptq": PrepareEntry(script="lite_data/make_det_lite.py"),
    "pointpillars_lite": PrepareEntry(script="lite_data/make_kitti_lite.py"),
}


def lookup(model_name: str, registry: Mapping[str, PrepareEntry] = PREPARE_REGISTRY) -> PrepareEntry | None:
    """The registry entry for ``model_name``, or None when the model needs no preparation."""
    entry = registry.get(model_name)
    if entry is not None:
        return entry
    folded = model_name.casefold()
    return next((value for key, value in registry.items() if key.casefold() == folded), None)


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
