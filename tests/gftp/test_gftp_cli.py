"""The ``gftp`` command as yapapi runs it: a subprocess speaking JSON-RPC over stdio to a real
daemon API (``build_gftp_api`` behind a bearer-key middleware) whose FileShare sits on a real market
node, and driven by yapapi's own ``GftpProvider``."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exeunits.gftp import GftpError
from requestor.gftp import build_gftp_api
from tests.gftp.conftest import Pair

APP_KEY = "test-app-key-0123456789"
BIN = Path(sys.executable).parent
GFTP = BIN / "gftp"


@web.middleware
async def bearer_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.headers.get("Authorization") != f"Bearer {APP_KEY}":
        return web.json_response({"message": "Invalid application key"}, status=401)
    return await handler(request)


@pytest.fixture
async def daemon_url(pair: Pair) -> AsyncIterator[str]:
    app = web.Application(middlewares=[bearer_auth])
    app.add_subapp("/gftp-api/v1", build_gftp_api(pair.share))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


class GftpProcess:
    """``gftp server`` as a child process; :meth:`call` sends one line and reads one answer."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.next_id = 0

    async def send_line(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        answer = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        assert answer, "gftp closed its stdout"
        result: dict[str, Any] = json.loads(answer)
        return result

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            request["params"] = params
        answer = await self.send_line(json.dumps(request))
        assert answer["id"] == self.next_id and answer["jsonrpc"] == "2.0"
        return answer


def _env(url: str, key: str | None = APP_KEY) -> dict[str, str]:
    env = dict(os.environ, YAGNA_API_URL=url, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("YAGNA_APPKEY", None)
    if key is not None:
        env["YAGNA_APPKEY"] = key
    return env


@pytest.fixture
async def start_gftp() -> AsyncIterator[Callable[[dict[str, str]], Awaitable[GftpProcess]]]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(env: dict[str, str]) -> GftpProcess:
        proc = await asyncio.create_subprocess_exec(
            str(GFTP), "server", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env
        )
        procs.append(proc)
        return GftpProcess(proc)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_version_and_help() -> None:
    for flag in ("--version", "--help"):
        proc = await asyncio.create_subprocess_exec(str(GFTP), flag, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        assert (b"0.7.3" if flag == "--version" else b"server") in out


async def test_json_rpc_session(pair: Pair, daemon_url: str, start_gftp: Any, tmp_path: Path) -> None:
    gftp: GftpProcess = await start_gftp(_env(daemon_url))
    assert (await gftp.call("version"))["result"] == "0.7.3"

    first, second = tmp_path / "a.txt", tmp_path / "b.bin"
    first.write_bytes(b"alpha")
    second.write_bytes(os.urandom(300_000))
    published = (await gftp.call("publish", {"files": [str(first), str(second)]}))["result"]
    assert [link["file"] for link in published] == [str(first), str(second)]
    for link in published:
        assert link["url"].startswith(f"gftp://{pair.requestor.node_id}/")
        fetched = tmp_path / "fetched"
        await pair.resolver.download(link["url"], fetched)
        assert fetched.read_bytes() == Path(link["file"]).read_bytes()

    output = tmp_path / "out.txt"
    received = (await gftp.call("receive", {"output_file": str(output)}))["result"]
    assert received["file"] == str(output)
    await pair.resolver.upload(first, received["url"])
    assert output.read_bytes() == b"alpha"

    closed = (await gftp.call("close", {"urls": [published[0]["url"], "gftp://0x0/nope"]}))["result"]
    assert closed == ["ok", "error"]
    with pytest.raises(GftpError) as gone:
        await pair.resolver.download(published[0]["url"], tmp_path / "again")
    assert gone.value.code == "not_found"

    # Bad input gets a JSON-RPC error, and the process keeps serving.
    parse = await gftp.send_line("{not json")
    assert parse["error"]["code"] == -32700 and parse["id"] is None
    unknown = await gftp.call("frobnicate")
    assert unknown["error"]["code"] == -32601 and "frobnicate" in unknown["error"]["message"]
    missing = await gftp.call("publish", {"files": [str(tmp_path / "missing.txt")]})
    assert "no such file" in missing["error"]["message"]
    relative = await gftp.call("publish", {"files": ["relative.txt"]})
    assert "absolute path" in relative["error"]["message"]
    no_folder = await gftp.call("receive", {"output_file": str(tmp_path / "nope" / "x")})
    assert "does not exist" in no_folder["error"]["message"]
    bad_params = await gftp.call("publish", {"files": "a.txt"})
    assert bad_params["error"]["code"] == -32602
    assert (await gftp.call("version"))["result"] == "0.7.3"

    # shutdown answers "ok", closes what this process still had open, and exits 0.
    assert (await gftp.call("shutdown"))["result"] == "ok"
    assert await asyncio.wait_for(gftp.proc.wait(), 10) == 0
    assert pair.share.published() == {}
    with pytest.raises(GftpError):
        await pair.resolver.upload(first, received["url"])


async def test_upload_method_pushes_into_a_receive_slot(
    pair: Pair, daemon_url: str, start_gftp: Any, tmp_path: Path
) -> None:
    gftp: GftpProcess = await start_gftp(_env(daemon_url))
    src = tmp_path / "src.bin"
    src.write_bytes(b"pushed")
    slot = (await gftp.call("receive", {"output_file": str(tmp_path / "dst.bin")}))["result"]
    assert (await gftp.call("upload", {"file": str(src), "url": slot["url"]}))["result"] is None
    assert (tmp_path / "dst.bin").read_bytes() == b"pushed"


async def test_wrong_missing_key_and_unreachable_daemon(
    daemon_url: str, start_gftp: Any, tmp_path: Path
) -> None:
    file = tmp_path / "a.txt"
    file.write_bytes(b"a")

    wrong: GftpProcess = await start_gftp(_env(daemon_url, key="wrong"))
    answer = await wrong.call("publish", {"files": [str(file)]})
    assert "refused the app key" in answer["error"]["message"]
    assert (await wrong.call("version"))["result"] == "0.7.3"

    keyless: GftpProcess = await start_gftp(_env(daemon_url, key=None))
    answer = await keyless.call("receive", {"output_file": str(tmp_path / "x")})
    assert "YAGNA_APPKEY is not set" in answer["error"]["message"]

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    offline: GftpProcess = await start_gftp(_env(f"http://127.0.0.1:{closed_port}"))
    answer = await offline.call("publish", {"files": [str(file)]})
    assert "cannot reach the requestor daemon" in answer["error"]["message"]


async def test_closing_stdin_closes_the_urls(
    pair: Pair, daemon_url: str, start_gftp: Any, tmp_path: Path
) -> None:
    gftp: GftpProcess = await start_gftp(_env(daemon_url))
    file = tmp_path / "a.txt"
    file.write_bytes(b"a")
    await gftp.call("publish", {"files": [str(file)]})
    assert len(pair.share.published()) == 1
    assert gftp.proc.stdin is not None
    gftp.proc.stdin.close()
    assert await asyncio.wait_for(gftp.proc.wait(), 10) == 0
    assert pair.share.published() == {}


async def test_yapapi_gftp_provider(
    pair: Pair, daemon_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """yapapi's own storage provider: it spawns `gftp server` from PATH, as in a real script run."""
    from yapapi.storage.gftp import GftpProvider

    for name, value in _env(daemon_url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("YAPAPI_USE_GFTP_CLOSE", raising=False)
    task_file = tmp_path / "task.json"
    task_file.write_bytes(b'{"n": 42}')
    result_file = tmp_path / "result.txt"

    async with GftpProvider(tmpdir=str(tmp_path / "yapapi")) as storage:
        (tmp_path / "yapapi").mkdir(exist_ok=True)
        source = await storage.upload_file(task_file)
        streamed = await storage.upload_bytes(b"from a stream")
        for src, expected in ((source, task_file.read_bytes()), (streamed, b"from a stream")):
            assert src.download_url.startswith(f"gftp://{pair.requestor.node_id}/")
            fetched = tmp_path / "fetched"
            await pair.resolver.download(src.download_url, fetched)
            assert fetched.read_bytes() == expected

        destination = await storage.new_destination()
        provider_output = tmp_path / "provider-output.txt"
        provider_output.write_bytes(b"the answer")
        await pair.resolver.upload(provider_output, destination.upload_url)
        await destination.download_file(result_file)
        assert result_file.read_bytes() == b"the answer"

        # yapapi closes a released URL (we report 0.7.3); the provider can no longer fetch it.
        await storage.release_source(source)
        with pytest.raises(GftpError) as closed:
            await pair.resolver.download(source.download_url, tmp_path / "again")
        assert closed.value.code == "not_found"
        assert len(pair.share.published()) == 1

    # Leaving the context sends shutdown: the streamed file's URL is gone too.
    assert pair.share.published() == {}
    with pytest.raises(GftpError):
        await pair.resolver.download(streamed.download_url, tmp_path / "again")
