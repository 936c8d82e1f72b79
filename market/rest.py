"""What every REST edge of the project answers the same way (the market node's, the daemons').

yagna's error body is ``{"message": ...}``; :func:`error_response` builds it, and
:func:`http_exception_response` gives aiohttp's own errors (404 for an unknown path, 405 with its
``Allow`` header, 413...) that body too, so clients never see a plain-text error from us.
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

_M = TypeVar("_M", bound=BaseModel)


class QueryError(ValueError):
    """A query string that does not fit its model; the message says which parameter and why."""


def parse_query(request: web.Request, model: type[_M]) -> _M:
    """``request``'s query string as ``model``; :class:`QueryError` for a repeated parameter or a
    value the model refuses (each API turns it into its own 400 error)."""
    repeated = sorted(key for key in set(request.query) if len(request.query.getall(key)) > 1)
    if repeated:
        raise QueryError(f"query parameter given more than once: {', '.join(repeated)}")
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'query'}: {error['msg']}"
            for error in exc.errors()
        )
        raise QueryError(f"invalid query: {problems}") from exc


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON ``{"message": message}`` answer with ``status``."""
    return web.json_response({"message": message}, status=status, headers=headers)


def http_exception_response(exc: web.HTTPException) -> web.Response:
    """aiohttp's error ``exc`` as a JSON error body, keeping its status and headers (e.g. ``Allow``)."""
    # aiohttp's default text is "404: Not Found"; its reason alone reads better as a message.
    default_text = f"{exc.status}: {exc.reason}"
    message = exc.reason if not exc.text or exc.text == default_text else exc.text
    kept = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
    return error_response(exc.status, message, kept)
