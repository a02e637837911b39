"""YAML model configs: `_BASE_` inheritance, defaults < file < `-o Key.sub=value` overrides, with key checking."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from models.common.errors import UserError

__all__ = [
    "bool_flag",
    "Config",
    "ConfigError",
    "load_config",
    "load_yaml_tree",
    "merge_tree",
    "parse_override",
    "str2bool",
]

BASE_KEY = "_BASE_"


class ConfigError(UserError):
    """A user error in a config file or an override; `str()` is one line that names the file."""


def str2bool(text: str | bool) -> bool:
    """Parse the True/False strings TIPC configs pass (`True`, `false`, `1`, `no`, ...)."""
    if isinstance(text, bool):
        return text
    lowered = text.strip().lower()
    if lowered in {"true", "1", "yes", "y", "on"}:
        return True
    if lowered in {"false", "0", "no", "n", "off", "none", "null", ""}:
        return False
    msg = f"expected True or False, got {text!r}"
    raise ValueError(msg)


def bool_flag(text: str) -> bool:
    """`str2bool` as an argparse `type=`: a bad value is an argparse usage error (exit 2), not a traceback."""
    import argparse

    try:
        return str2bool(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def merge_tree(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two mapping trees; values in `top` win, nested mappings merge key by key."""
    out: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_tree(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml_tree(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read one YAML file and the files its `_BASE_` names (relative to it); later files override earlier ones."""
    resolved = path.resolve()
    if resolved in _seen:
        msg = f"`{BASE_KEY}` loop: {' -> '.join(str(p) for p in (*_seen, resolved))}"
        raise ConfigError(path, msg)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "config file not found") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot read config: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, f"{where}invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, f"top level must be a mapping, got {type(data).__name__}")
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(path, f"`{BASE_KEY}` must be a file name or a list of file names")
    tree: dict[str, Any] = {}
    for base in bases:
        tree = merge_tree(tree, load_yaml_tree(path.parent / base, (*_seen, resolved)))
    return merge_tree(tree, data)


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """`Global.epochs=3` -> (("Global", "epochs"), 3). The value is read as YAML, so `null`, `True`, `[1, 2]` work."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        msg = f"override {text!r} is not of the form Key.sub=value"
        raise ValueError(msg)
    parts = tuple(key.split("."))
    if any(not p for p in parts):
        msg = f"override {text!r} has an empty key part"
        raise ValueError(msg)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # not YAML: keep it as the literal string (paths with odd characters)
    if isinstance(value, str):
        # YAML 1.1 reads `1e-3` as a string; a number is what anyone writing it means.
        try:
            value = float(value)
        except ValueError:
            pass
    return parts, value


def _compatible(default: Any, value: Any) -> bool:
    """Whether `value` may replace `default` (None on either side is always allowed; ints may become floats)."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and (isinstance(default, float) or isinstance(value, int))
    if isinstance(default, Mapping):
        return isinstance(value, Mapping)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(default, str):
        return isinstance(value, (str, int, float))  # a number where a string is expected is still usable text
    return True


def _type_name(value: Any) -> str:
    return {bool: "True/False", int: "an integer", float: "a number", str: "a string", dict: "a mapping", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _check_known(tree: Mapping[str, Any], schema: Mapping[str, Any], path: Path, prefix: str = "") -> None:
    """Every key in `tree` must exist in `schema` (the family defaults), so typos fail early."""
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            known = ", ".join(sorted(str(k) for k in schema)) or "none"
            raise ConfigError(path, f"unknown key '{dotted}' (known at this level: {known})")
        default = schema[key]
        if not _compatible(default, value):
            raise ConfigError(path, f"key '{dotted}' expects {_type_name(default)}, got {value!r}")
        if isinstance(value, Mapping) and isinstance(default, Mapping) and default:
            _check_known(value, default, path, f"{dotted}.")


class Config:
    """A merged, checked config tree plus the file it came from; read values with `cfg["Global.epochs"]`."""

    def __init__(self, tree: dict[str, Any], path: Path) -> None:
        self.tree = tree
        self.path = path

    def __getitem__(self, dotted: str) -> Any:
        node: Any = self.tree
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                msg = f"{self.path}: no key '{dotted}'"
                raise KeyError(msg)
            node = node[part]
        return node

    def get(self, dotted: str, default: Any = None) -> Any:
        try:
            return self[dotted]
        except KeyError:
            return default

    def set(self, dotted: str, value: Any) -> None:
        parts = dotted.split(".")
        node = self.tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.tree)


def load_config(
    path: Path,
    overrides: Iterable[str] = (),
    *,
    defaults: Mapping[str, Any] | None = None,
    file_tree: Mapping[str, Any] | None = None,
) -> Config:
    """Merge `defaults` < the YAML file (with its bases) < `overrides`, checking every key against `defaults`.

    `file_tree` lets a caller that already read the file (to find its architecture) skip a second read. Without
    `defaults` no key checking happens, which suits families that have no fixed schema.
    """
    tree = dict(file_tree) if file_tree is not None else load_yaml_tree(path)
    schema = defaults if defaults is not None else None
    if schema is not None:
        _check_known(tree, schema, path)
        merged = merge_tree(schema, tree)
    else:
        merged = tree
    for text in overrides:
        try:
            parts, value = parse_override(text)
        except ValueError as exc:
            raise ConfigError(path, f"-o {exc}") from None
        dotted = ".".join(parts)
        node: Any = merged
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[:depth]) or "top level"
                known = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
                msg = f"unknown key '{dotted}' in -o {text} (no '{part}' under {where}; known: {known})"
                raise ConfigError(path, msg)
            if depth == len(parts) - 1:
                if not _compatible(node[part], value):
                    raise ConfigError(path, f"-o {text}: '{dotted}' expects {_type_name(node[part])}")
                node[part] = value
            else:
                node = node[part]
    return Config(merged, path)
