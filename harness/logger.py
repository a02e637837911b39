"""The harness's one logger, ``logging.getLogger("harness")``, and a setup that is safe to call twice."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["LOGGER_NAME", "logger", "setup_logging"]

LOGGER_NAME = "harness"
logger = logging.getLogger(LOGGER_NAME)

# Marks the handler setup_logging installed, so a second call replaces it instead of adding a duplicate
# (the CLI's main() can run several times in one process, e.g. under the test suite).
_HANDLER_MARK = "_tipc_harness_handler"


def setup_logging(*, verbosity: int = 0, stream: TextIO | None = None) -> logging.Logger:
    """Send harness log records to ``stream`` (stderr by default); -v shows INFO, -vv shows DEBUG."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    for handler in list(logger.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            logger.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter("tipc: %(levelname)s: %(message)s"))
    setattr(handler, _HANDLER_MARK, True)
    logger.addHandler(handler)
    logger.setLevel(level)
    return logger
