"""The requestor daemon's root aiohttp application: what yapapi's ``YAGNA_API_URL`` points at.

The root app owns the cross-cutting parts of yagna's REST surface:

* :func:`auth_middleware`: every request needs ``Authorization: Bearer <app key>`` (the header name is
  case-insensitive; ``/version/get`` is exempt, as in yagna; a WebSocket upgrade may give the key as
  ``?authToken=`` instead); anything else is 401 ``{"message"}``.
  The verified :class:`~requestor.appkeys.AppKey` is left in ``request[APP_KEY]``.
* :func:`error_middleware`: the one place domain errors become HTTP statuses. Market protocol errors
  map by their ``code``; other packages register their own exception classes with
  :func:`register_error_status` (the Activity and Payment parts do this for theirs).
* ``GET /me``: the node identity yapapi uses as its payment address.
* :func:`add_api`: mounts one API sub-app under its prefix (``/market-api/v1``, ``/activity-api/v1``,
  ``/payment-api/v1``); the root middlewares wrap the sub-app's handlers, so a sub-app needs no
  auth of its own. Handlers reach the daemon through ``request.config_dict[DAEMON_KEY]``
  (see :mod:`requestor.daemon`).

The helpers :func:`read_json`, :func:`read_optional_json` and :func:`read_query` turn bodies and query
strings into models, answering 400 with a message for anything malformed.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ValidationError

from market.core.errors import GolemError
from market.core.logging import correlated
from market.protocol.errors import BadRequestError, ErrorCode, MarketError
from market.rest import error_response, http_exception_response
from requestor.appkeys import AppKey, AppKeyStore

log = logging.getLogger(__name__)

APP_KEYS: web.AppKey[AppKeyStore] = web.AppKey("app_keys", AppKeyStore)
NODE_ID: web.AppKey[str] = web.AppKey("node_id", str)
APP_KEY: web.RequestKey[AppKey] = web.RequestKey("app_key", AppKey)
"""``request[APP_KEY]`` holds the caller's verified :class:`AppKey`."""

UNAUTHENTICATED_PATHS = frozenset({"/version/get"})

MARKET_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 403,  # the caller is authenticated; the market refused the act itself
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.GONE: 410,
    ErrorCode.FRAME_TOO_LARGE: 413,
    ErrorCode.LIMIT_EXCEEDED: 429,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.NOT_CONNECTED: 503,
    ErrorCode.TIMEOUT: 504,  # yapapi retries 504 silently, like 408
    ErrorCode.INTERNAL: 500,
}

_ERROR_STATUS: dict[type[BaseException], int] = {}

M = TypeVar("M", bound=BaseModel)


def register_error_status(error: type[BaseException], status: int) -> None:
    """Answer ``status`` whenever a handler raises ``error`` (or a subclass not registered itself)."""
    _ERROR_STATUS[error] = status


def status_of(exc: BaseException) -> int | None:
    for cls in type(exc).__mro__:
        if cls in _ERROR_STATUS:
            return _ERROR_STATUS[cls]
    if isinstance(exc, MarketError):
        return MARKET_STATUS.get(exc.code, 500)
    return None


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into ``{"message": ...}`` with the status yagna would answer."""
    with correlated(f"rest:{secrets.token_hex(4)}"):
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return http_exception_response(exc)
        except GolemError as exc:
            status = status_of(exc) or 500
            if status >= 500:
                log.error("%s %s failed: %s", request.method, request.path, exc)
            return error_response(status, "internal error" if status == 500 else str(exc))
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, "internal error")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse (401) any request without a valid ``Authorization: Bearer <app key>``."""
    if request.path in UNAUTHENTICATED_PATHS:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header and request.headers.get("Upgrade", "").lower() == "websocket":
        # Browsers cannot set headers on a WebSocket; yagna takes the key from the query there.
        scheme, token = "bearer", request.query.get("authToken", "")
    key = request.app[APP_KEYS].verify(token.strip()) if scheme.lower() == "bearer" and token else None
    if key is None:
        return error_response(401, "a valid app key is required: Authorization: Bearer <app key>")
    request[APP_KEY] = key
    return await handler(request)


async def get_me(request: web.Request) -> web.Response:
    key = request[APP_KEY]
    return web.json_response({"identity": request.app[NODE_ID], "name": key.name, "role": "manager"})


async def get_version(request: web.Request) -> web.Response:
    from importlib.metadata import version

    current = version("golem-market")
    return web.json_response({"current": {"version": current, "name": "golem-requestor"}, "pending": None})


def build_root_app(app_keys: AppKeyStore, node_id: str) -> web.Application:
    """The root app (auth, errors, ``/me``); mount the APIs with :func:`add_api` before it starts."""
    app = web.Application(middlewares=[error_middleware, auth_middleware])
    app[APP_KEYS] = app_keys
    app[NODE_ID] = node_id
    app.router.add_get("/me", get_me)
    app.router.add_get("/version/get", get_version)
    return app


def add_api(root: web.Application, prefix: str, subapp: web.Application) -> None:
    """Mount an API sub-app (e.g. ``/activity-api/v1``) on the root app; only before it starts."""
    if root.frozen:
        raise RuntimeError("APIs are mounted before the daemon starts")
    root.add_subapp(prefix, subapp)


# --- parsing helpers for handlers ---------------------------------------------------------------------


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )


async def read_json(request: web.Request, model: type[M]) -> M:
    """The request body as ``model``; 400 for a body that is not JSON or does not fit."""
    raw = await request.read()
    if not raw.strip():
        raise BadRequestError(f"a JSON {model.__name__} body is required")
    return _validate(raw, model)


async def read_optional_json(request: web.Request, model: type[M]) -> M | None:
    """Like :func:`read_json`, but an empty body (or JSON ``null``) gives ``None``."""
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        if json.loads(raw) is None:
            return None
    except ValueError as exc:
        raise BadRequestError(f"malformed JSON body: {exc}") from exc
    return _validate(raw, model)


def _validate(raw: bytes, model: type[M]) -> M:
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        raise BadRequestError(f"malformed JSON body: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequestError(f"invalid {model.__name__}: {_problems(exc)}") from exc


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model``; 400 naming the bad parameter."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise BadRequestError(f"invalid query: {_problems(exc)}") from exc


def json_id(value: str, status: int = 200) -> web.Response:
    """An id as yagna returns it: a quoted JSON string."""
    return web.json_response(value, status=status)


def json_model(body: BaseModel | list[Any] | tuple[Any, ...], status: int = 200) -> web.Response:
    if isinstance(body, BaseModel):
        data: Any = body.model_dump(mode="json", by_alias=True, exclude_none=True)
    else:
        data = [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in body]
    return web.json_response(data, status=status)
