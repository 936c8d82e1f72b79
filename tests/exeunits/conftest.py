"""A real HTTP server on 127.0.0.1 serving and accepting files, for packages and transfers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web


@dataclass
class FileServer:
    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    gets: int = 0


@pytest.fixture
async def file_server() -> AsyncIterator[FileServer]:
    server = FileServer(url="")

    async def get(request: web.Request) -> web.StreamResponse:
        server.gets += 1
        name = request.match_info["name"]
        if name not in server.files:
            raise web.HTTPNotFound()
        return web.Response(body=server.files[name])

    async def put(request: web.Request) -> web.StreamResponse:
        server.uploads[request.match_info["name"]] = await request.read()
        return web.Response(status=201)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/files/{name}", get)
    app.router.add_put("/files/{name}", put)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/files"
    yield server
    await runner.cleanup()
