"""Checks on config values the scripts need as numbers, and the config line a command fragment came from."""

from __future__ import annotations

import argparse
import re
import shlex

from harness.config import TipcConfig
from harness.errors import ConfigError
from harness.planning.roles import Role, RoleView

__all__ = ["NUMERIC_ROLES", "check_numbers", "line_of_fragment", "positive_seconds"]

# role -> (what it holds, whether it may be a per-mode table "mode=value|mode=value", smallest value). Only roles
# whose values end up as numeric script arguments; where a flavor moves them, the RoleView follows.
NUMERIC_ROLES: dict[str, tuple[str, bool, int]] = {
    "epoch": ("epoch count", True, 0),
    "batch": ("training batch size", True, 1),
    "threads": ("CPU thread count", False, 1),
    "infer_batch": ("inference batch size", False, 1),
}
_INTEGER = re.compile(r"[+]?\d+")
_GPU_ID = re.compile(r"-1|\d+")
_NULLS = ("", "null", "None")


def check_numbers(config: TipcConfig, roles: RoleView, *, quirks: bool = False) -> None:
    """Raise ConfigError at the first numeric line holding something that is not a whole number (``1|two``).

    Empty and ``null`` values are allowed: the scripts then leave the argument out. With ``quirks`` the GPU list
    is left to the scripts' own length rules, which accept what they accept.
    """
    for name, (what, per_mode, smallest) in NUMERIC_ROLES.items():
        role: Role = getattr(roles, name)
        if not role.index or config.at(role.index).header is not None:
            continue
        for item in (part.strip() for part in role.value.split("|")):
            label, number = item.partition("=")[::2] if per_mode and "=" in item else ("", item)
            number = number.strip()
            if number in _NULLS:
                continue
            if not _INTEGER.fullmatch(number) or int(number) < smallest:
                where = f" for {label.strip()}" if label else ""
                bound = "a whole number" if smallest == 0 else f"a whole number >= {smallest}"
                msg = f"{role.key}: {what}{where} must be {bound}, got {number!r}"
                raise ConfigError(config.path, role.line, msg)
    if not quirks and roles.gpu_list.index and config.at(roles.gpu_list.index).header is None:
        _check_gpu_list(config, roles.gpu_list)


def _check_gpu_list(config: TipcConfig, role: Role) -> None:
    for item in (part.strip() for part in role.value.split("|")):
        ids = item.partition(";")[2] if ";" in item else item
        for gpu in ids.split(","):
            if gpu and not _GPU_ID.fullmatch(gpu.strip()):
                msg = f"gpu_list entry {item!r} is not -1, a device id, a list of ids or 'ip,ip;ids'"
                raise ConfigError(config.path, role.line, msg)


def line_of_fragment(config: TipcConfig, fragment: str) -> int:
    """The physical line of the entry whose value a command fragment came from (0 when none matches).

    The planner glues ``key=value`` fragments from several lines; when one of them cannot be split into words,
    the line to blame is the one whose own value cannot be split, else the first whose value appears in it.
    """
    first_match = 0
    for entry in config.entries:
        value = entry.value
        if entry.header is not None or not value or value not in fragment:
            continue
        try:
            shlex.split(value, comments=False, posix=True)
        except ValueError:
            return entry.line
        first_match = first_match or entry.line
    return first_match


def positive_seconds(text: str) -> float:
    """A timeout option's value (``tipc --timeout``, ``pytest --tipc-timeout``): seconds > 0, ``inf`` for none.

    Anything else (0, a negative number, ``nan``, a word) is an ``argparse`` type error, hence a usage error.
    """
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:  # also refuses nan
        msg = f"expected a positive number of seconds, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value
