"""Logging with correlation ids.

A flow (a negotiation, a request, a session) sets :data:`correlation_id` once; every log record
emitted while it is set carries it, so one ``grep`` follows a flow across components. Libraries
only call ``logging.getLogger(__name__)``; :func:`setup_logging` is for the CLI entry points.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar

correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")


class CorrelationFilter(logging.Filter):
    """Copies the current correlation id onto each record as ``record.correlation_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id.get()
        return True


@contextlib.contextmanager
def correlated(value: str) -> Iterator[None]:
    """Run a block with ``value`` as the correlation id."""
    token = correlation_id.set(value)
    try:
        yield
    finally:
        correlation_id.reset(token)


LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(correlation_id)s] %(message)s"


def setup_logging(level: str | int = "INFO") -> None:
    """Configure the root logger for a command-line process (stderr, correlation ids)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(CorrelationFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
