"""The `tools/*.py` front end: `-c config.yml -o Key.sub=value ...` -> merged config -> the architecture's task."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from models.common.config import Config, ConfigError, load_config, load_yaml_tree
from models.common.errors import UserError
from models.common.numerics import pin_numerics
from models.common.registry import Family, UnknownArchitecture, find_family

__all__ = ["EXIT_USAGE", "base_parser", "prepare", "resolve_config_path", "run_tool", "setup_logging"]

EXIT_USAGE = 2  # bad config, bad override, bad data: the same code argparse uses for bad flags
LOG = logging.getLogger("models")


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stdout in one plain format; safe to call more than once."""
    if any(getattr(h, "_models_handler", False) for h in LOG.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(message)s", "%H:%M:%S"))
    handler._models_handler = True  # type: ignore[attr-defined]
    LOG.addHandler(handler)
    LOG.setLevel(level)
    LOG.propagate = False


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--config", required=True, help="YAML config (absolute, or relative to the cwd or the family folder)")
    parser.add_argument(
        "-o",
        "--opt",
        action="extend",
        nargs="+",
        default=[],
        metavar="Key.sub=value",
        help="override a config value; repeatable; wins over the file and the defaults",
    )
    return parser


def resolve_config_path(text: str, family_root: Path | None) -> Path:
    """A relative `-c` is tried against the cwd first, then against the calling family's folder."""
    path = Path(text)
    if path.is_absolute() or path.exists() or family_root is None:
        return path
    candidate = family_root / path
    return candidate if candidate.exists() else path


def prepare(config_path: Path, overrides: Sequence[str]) -> tuple[Config, Family]:
    """Read the file once, find its family by `architecture:`, then merge defaults < file < overrides."""
    tree = load_yaml_tree(config_path)
    architecture = tree.get("architecture")
    if not isinstance(architecture, str) or not architecture:
        raise ConfigError(config_path, "missing the top-level `architecture:` key that names the model")
    try:
        family = find_family(architecture)
    except UnknownArchitecture as exc:
        raise ConfigError(config_path, str(exc)) from None
    cfg = load_config(config_path, overrides, defaults=family.defaults(architecture), file_tree=tree)
    return cfg, family


def run_tool(
    task: str,
    description: str,
    argv: Sequence[str] | None = None,
    *,
    add_flags: Callable[[argparse.ArgumentParser], None] | None = None,
    flag_overrides: Callable[[argparse.Namespace], list[str]] | None = None,
    family_root: Path | None = None,
) -> int:
    """Parse flags, build the config and run `task` of the config's family; user errors become one line, exit 2.

    `flag_overrides` turns tool flags (`--pact`, `--amp_level O1`) into `Key=value` overrides. They come before the
    `-o` list, so an explicit `-o` still has the last word.
    """
    pin_numerics()  # before any family task imports paddle
    setup_logging()
    parser = base_parser(description)
    if add_flags is not None:
        add_flags(parser)
    args = parser.parse_args(argv)
    config_path = resolve_config_path(args.config, family_root)
    overrides = [*(flag_overrides(args) if flag_overrides else []), *args.opt]
    try:
        cfg, family = prepare(config_path, overrides)
        fn = family.tasks.get(task)
        if fn is None:
            raise ConfigError(config_path, f"family {family.name!r} has no {task!r} tool")
        return fn(cfg, args)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE

