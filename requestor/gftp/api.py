"""``/gftp-api/v1``: the loopback API the ``gftp`` process uses to reach the daemon's :class:`FileShare`.

Routes (JSON bodies; the daemon's own middleware checks ``Authorization: Bearer <app key>``):

* ``POST /publish`` ``{"files": [abs path, ...]}`` → ``[{"file", "url"}, ...]``
* ``POST /receive`` ``{"output_file": abs path}`` → ``{"file", "url"}``
* ``POST /upload`` ``{"file": abs path, "url": gftp url}`` → ``{}``
* ``POST /close`` ``{"urls": [url, ...]}`` → ``["ok" | "error", ...]``

Errors are ``{"message": "..."}`` with 400 (bad body or path), 403, 404 (unknown URL), 422 (an
upload failed its integrity check) or 502 (another node did not take an upload).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from exeunits.gftp import CODE_BAD_REQUEST, CODE_FORBIDDEN, CODE_INTEGRITY, CODE_NOT_FOUND
from market.core.wire import RequestModel
from requestor.gftp.share import FileShare, ShareError

log = logging.getLogger(__name__)

SHARE_KEY: web.AppKey[FileShare] = web.AppKey("gftp_file_share", FileShare)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS = {CODE_BAD_REQUEST: 400, CODE_FORBIDDEN: 403, CODE_NOT_FOUND: 404, CODE_INTEGRITY: 422}


class PublishRequest(RequestModel):
    files: list[str]


class ReceiveRequest(RequestModel):
    output_file: str


class UploadRequest(RequestModel):
    file: str
    url: str


class CloseRequest(RequestModel):
    urls: list[str]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Share errors and malformed bodies become ``{"message"}`` with their status; nothing else leaks."""
    try:
        return await handler(request)
    except ShareError as exc:
        return _error(_STATUS.get(exc.code, 502), str(exc))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return _error(400, f"invalid request body: {where}: {first['msg']}")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return _error(500, "internal error")


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise ShareError("request body is not JSON") from None


async def publish(request: web.Request) -> web.Response:
    body = PublishRequest.model_validate(await _body(request))
    links = request.app[SHARE_KEY].publish(body.files)
    return web.json_response([{"file": str(file), "url": url} for file, url in links])


async def receive(request: web.Request) -> web.Response:
    body = ReceiveRequest.model_validate(await _body(request))
    file, url = request.app[SHARE_KEY].receive(body.output_file)
    return web.json_response({"file": str(file), "url": url})


async def upload(request: web.Request) -> web.Response:
    body = UploadRequest.model_validate(await _body(request))
    await request.app[SHARE_KEY].upload(body.file, body.url)
    return web.json_response({})


async def close(request: web.Request) -> web.Response:
    body = CloseRequest.model_validate(await _body(request))
    share = request.app[SHARE_KEY]
    return web.json_response(["ok" if share.close(url) else "error" for url in body.urls])


def build_gftp_api(share: FileShare) -> web.Application:
    """The ``/gftp-api/v1`` sub-application over ``share``; mount it with ``app.add_subapp``."""
    app = web.Application(middlewares=[error_middleware])
    app[SHARE_KEY] = share
    app.router.add_post("/publish", publish)
    app.router.add_post("/receive", receive)
    app.router.add_post("/upload", upload)
    app.router.add_post("/close", close)

    async def drop_unfinished_uploads(app: web.Application) -> None:
        await app[SHARE_KEY].aclose()

    app.on_shutdown.append(drop_unfinished_uploads)
    return app
