"""What every REST edge of the project answers the same way (the market node's, the daemons').

yagna's error body is ``{"message": ...}``; :func:`error_response` builds it, and
:func:`http_exception_response` gives aiohttp's own errors (404 for an unknown path, 405 with its
``Allow`` header, 413...) that body too, so clients never see a plain-text error from us.
"""

from __future__ import annotations

from aiohttp import web


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
