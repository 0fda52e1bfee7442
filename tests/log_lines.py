"""The services' structured log lines as Powertools writes them (JSON), by message: for tests of what an operator
reads in CloudWatch Logs (the job, the run, the queue a line names)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from jobgraph.services.observability import logger


class LogLines(logging.Handler):
    """Each line formatted by the services' Powertools logger, kept by its message (the last of a message wins)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logger.registered_formatter)
        self.by_message: dict[str, dict] = {}

    def emit(self, record: logging.LogRecord) -> None:
        line = json.loads(self.format(record))
        self.by_message[line["message"]] = line


@contextmanager
def log_lines() -> Iterator[dict[str, dict]]:
    """The lines logged inside the block, by message."""
    handler = LogLines()
    logger.addHandler(handler)
    try:
        yield handler.by_message
    finally:
        logger.removeHandler(handler)
