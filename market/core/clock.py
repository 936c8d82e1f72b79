"""The injectable clock.

Code that decides by time (expirations, debit-note intervals, latency figures) takes a
:class:`Clock`, so tests can move time by hand instead of sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Wall time for deadlines and timestamps, monotonic time for durations."""

    def now(self) -> datetime:
        """The current UTC time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to; for unit tests of time-driven logic."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self._now += timedelta(seconds=seconds)
        self._mono += seconds


def to_millis(moment: datetime) -> int:
    """Milliseconds since the epoch, as Golem properties such as ``golem.srv.comp.expiration`` use."""
    return int(moment.timestamp() * 1000)


def from_millis(millis: int) -> datetime:
    """Inverse of :func:`to_millis`."""
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def rfc3339(moment: datetime) -> str:
    """An RFC 3339 UTC timestamp with a ``Z`` suffix; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every timestamp on the wire carries a timezone")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
