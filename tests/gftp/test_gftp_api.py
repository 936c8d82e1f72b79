"""``/gftp-api/v1`` through a real test server: status codes and error bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exeunits.gftp import make_url, new_token
from requestor.gftp import build_gftp_api
from tests.gftp.conftest import Pair


@pytest.fixture
async def api(pair: Pair) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    app.add_subapp("/gftp-api/v1", build_gftp_api(pair.share))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_publish_receive_close(
    pair: Pair, api: TestClient[web.Request, web.Application], tmp_path: Path
) -> None:
    file = tmp_path / "a.txt"
    file.write_bytes(b"a")
    response = await api.post("/gftp-api/v1/publish", json={"files": [str(file)]})
    assert response.status == 200
    [link] = await response.json()
    assert link["file"] == str(file) and link["url"].startswith(f"gftp://{pair.requestor.node_id}/")

    response = await api.post("/gftp-api/v1/receive", json={"output_file": str(tmp_path / "out")})
    assert response.status == 200
    slot = await response.json()
    assert slot["file"] == str(tmp_path / "out")

    response = await api.post("/gftp-api/v1/close", json={"urls": [link["url"], slot["url"], link["url"]]})
    assert await response.json() == ["ok", "ok", "error"]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/publish", {"files": ["relative.txt"]}, 400, "absolute path"),
        ("/publish", {"files": ["/no/such/file"]}, 400, "no such file"),
        ("/publish", {"files": "a"}, 400, "invalid request body: files"),
        ("/publish", {"files": [], "extra": 1}, 400, "invalid request body: extra"),
        ("/receive", {"output_file": "/no/such/folder/x"}, 400, "does not exist"),
        ("/upload", {"file": "/etc/hostname", "url": "http://x/y"}, 400, "not a gftp URL"),
        ("/close", {}, 400, "invalid request body: urls"),
    ],
)
async def test_bad_requests_get_a_message(
    api: TestClient[web.Request, web.Application],
    path: str,
    body: dict[str, object],
    status: int,
    message: str,
) -> None:
    response = await api.post(f"/gftp-api/v1{path}", json=body)
    assert response.status == status
    assert message in (await response.json())["message"]


async def test_not_json_and_unknown_slot(
    pair: Pair, api: TestClient[web.Request, web.Application], tmp_path: Path
) -> None:
    response = await api.post(
        "/gftp-api/v1/publish", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert "not JSON" in (await response.json())["message"]

    file = tmp_path / "a.txt"
    file.write_bytes(b"a")
    unknown = make_url(pair.requestor.node_id, new_token())
    response = await api.post("/gftp-api/v1/upload", json={"file": str(file), "url": unknown})
    assert response.status == 404
    assert "no receive slot" in (await response.json())["message"]
