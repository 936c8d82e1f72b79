"""Errors of the market protocol, shared by the market node and its clients.

Each error has a stable ``code`` that travels in an ``error`` frame, so a client re-raises the same
class the market node raised. Daemons map these codes to HTTP statuses at their REST edge.
"""

from __future__ import annotations

from enum import StrEnum

from market.core.errors import GolemError


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    GONE = "gone"
    LIMIT_EXCEEDED = "limit_exceeded"
    RATE_LIMITED = "rate_limited"
    FRAME_TOO_LARGE = "frame_too_large"
    NOT_CONNECTED = "not_connected"
    TIMEOUT = "timeout"
    INTERNAL = "internal"


class MarketError(GolemError):
    """Root of the market protocol's errors."""

    code: ErrorCode = ErrorCode.INTERNAL


class BadRequestError(MarketError):
    """The message is malformed or its content is invalid (bad constraint, bad property)."""

    code = ErrorCode.BAD_REQUEST


class UnauthorizedError(MarketError):
    """Session authentication failed, or the sender may not act on this object."""

    code = ErrorCode.UNAUTHORIZED


class NotFoundError(MarketError):
    """No live object with that id (unknown, expired, unsubscribed)."""

    code = ErrorCode.NOT_FOUND


class ConflictError(MarketError):
    """The object exists but is in a state that does not allow the operation."""

    code = ErrorCode.CONFLICT


class GoneError(MarketError):
    """The object reached a final state (rejected, cancelled, terminated) or was already used."""

    code = ErrorCode.GONE


class LimitExceededError(MarketError):
    """A per-node limit (subscriptions) would be exceeded."""

    code = ErrorCode.LIMIT_EXCEEDED


class RateLimitedError(MarketError):
    """The node sends messages faster than the market node allows; the message was dropped."""

    code = ErrorCode.RATE_LIMITED


class FrameTooLargeError(MarketError):
    """A frame is larger than the market node accepts; it was dropped unread."""

    code = ErrorCode.FRAME_TOO_LARGE


class NodeNotConnectedError(MarketError):
    """A relay target has no session on this market node."""

    code = ErrorCode.NOT_CONNECTED


class MarketTimeoutError(MarketError):
    """No reply came in time (the client's side of a request)."""

    code = ErrorCode.TIMEOUT


class MarketUnavailableError(MarketError):
    """The client has no working session with the market node (connecting, or closed)."""

    code = ErrorCode.NOT_CONNECTED


_BY_CODE: dict[ErrorCode, type[MarketError]] = {
    cls.code: cls
    for cls in (
        BadRequestError,
        UnauthorizedError,
        NotFoundError,
        ConflictError,
        GoneError,
        LimitExceededError,
        RateLimitedError,
        FrameTooLargeError,
        NodeNotConnectedError,
        MarketTimeoutError,
    )
}


def error_for_code(code: str, message: str) -> MarketError:
    """Rebuild the typed error an ``error`` frame describes."""
    try:
        cls = _BY_CODE[ErrorCode(code)]
    except ValueError:
        cls = MarketError
    return cls(message)
