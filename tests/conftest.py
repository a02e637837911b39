"""Shared test fixtures: global state the harness touches is put back after every test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from harness.logger import LOGGER_NAME

__all__ = ["reset_harness_logger"]


@pytest.fixture(autouse=True)
def reset_harness_logger() -> Iterator[None]:
    """cli.main() installs a handler on the harness logger bound to the stderr of the moment; a later test must
    not write into an earlier test's (closed) capture stream."""
    harness_logger = logging.getLogger(LOGGER_NAME)
    before = list(harness_logger.handlers)
    level = harness_logger.level
    yield
    for handler in list(harness_logger.handlers):
        if handler not in before:
            harness_logger.removeHandler(handler)
    harness_logger.setLevel(level)
