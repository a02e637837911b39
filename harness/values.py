"""Checks on config values the scripts need as numbers, and the config line a command fragment came from."""

from __future__ import annotations

import argparse
import re
import shlex

from harness.config import Layout, TipcConfig
from harness.errors import ConfigError

__all__ = ["NUMERIC_ROLES", "check_numbers", "line_of_fragment", "positive_seconds"]

# logical line -> (what it holds, whether it may be a per-mode table "mode=value|mode=value", smallest value).
# Positions are those of harness/layouts.py; only lines whose values end up as numeric script arguments.
NUMERIC_ROLES: dict[Layout, dict[int, tuple[str, bool, int]]] = {
    Layout.TUTORIAL: {
        6: ("epoch count", True, 0),
        8: ("training batch size", True, 1),
        29: ("inference batch size", False, 1),
    },
    Layout.FULL: {
        7: ("epoch count", True, 0),
        9: ("training batch size", True, 1),
        43: ("CPU thread count", False, 1),
        44: ("inference batch size", False, 1),
    },
}
_GPU_LIST = 4
_INTEGER = re.compile(r"[+]?\d+")
_GPU_ID = re.compile(r"-1|\d+")
# Mode names that may key a per-mode value; other keys are reported by the planner itself (unknown mode).
_NULLS = ("", "null", "None")


def check_numbers(config: TipcConfig, *, quirks: bool = False) -> None:
    """Raise ConfigError at the first numeric line holding something that is not a whole number (``1|two``).

    Empty and ``null`` values are allowed: the scripts then leave the argument out. With ``quirks`` the GPU list
    is left to the scripts' own length rules, which accept what they accept.
    """
    roles = NUMERIC_ROLES.get(config.layout)
    if roles is None:
        return
    for index, (what, per_mode, smallest) in roles.items():
        if not config.has(index) or config.at(index).header is not None:
            continue
        entry = config.at(index)
        value = entry.bash_value if quirks else entry.value
        for item in (part.strip() for part in value.split("|")):
            label, number = item.partition("=")[::2] if per_mode and "=" in item else ("", item)
            number = number.strip()
            if number in _NULLS:
                continue
            if not _INTEGER.fullmatch(number) or int(number) < smallest:
                where = f" for {label.strip()}" if label else ""
                bound = "a whole number" if smallest == 0 else f"a whole number >= {smallest}"
                msg = f"{entry.key}: {what}{where} must be {bound}, got {number!r}"
                raise ConfigError(config.path, entry.line, msg)
    if not quirks and config.has(_GPU_LIST):
        _check_gpu_list(config)


def _check_gpu_list(config: TipcConfig) -> None:
    entry = config.at(_GPU_LIST)
    if entry.header is not None:
        return
    for item in (part.strip() for part in entry.value.split("|")):
        ids = item.partition(";")[2] if ";" in item else item
        for gpu in ids.split(","):
            if gpu and not _GPU_ID.fullmatch(gpu.strip()):
                msg = f"gpu_list entry {item!r} is not -1, a device id, a list of ids or 'ip,ip;ids'"
                raise ConfigError(config.path, entry.line, msg)


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
