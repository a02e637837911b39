"""Flag parsing and error handling shared by the lidar3d tools (Paddle3D-style flags, `key=value` accepted)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from models.lidar3d.runtime import pin_numerics, resolve_path  # noqa: E402

pin_numerics()

from models.common.config import bool_flag  # noqa: E402
from models.common.dispatch import setup_logging  # noqa: E402
from models.common.errors import UserError  # noqa: E402

__all__ = ["EXIT_USAGE", "config_parser", "existing", "run_main", "str_bool"]

EXIT_USAGE = 2


str_bool = bool_flag  # the one shared TIPC True/False flag type


def config_parser(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", "-c", required=True, help="model YAML config")
    parser.add_argument("--quant_config", default=None, help="quantization YAML config (calibration/qat stages)")
    parser.add_argument("-o", "--opt", action="append", default=[], metavar="KEY.SUB=VALUE",
                        help="override a config value (repeatable)")
    return parser


def existing(path: str | None) -> Path | None:
    """A path flag's value, or None for TIPC's empty/null spellings."""
    return None if path in (None, "", "null", "None") else resolve_path(path)


def run_main(body: Callable[[], int]) -> int:
    """Run a tool body: bad input becomes one `file[:line]: message` line on stderr and exit code 2."""
    setup_logging()
    try:
        return body()
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
