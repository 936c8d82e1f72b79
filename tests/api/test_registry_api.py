"""The market node's package registry through a real node on a loopback port.

Uploads, downloads with byte ranges, yapapi's image query, the upload rules, and ``golem packages``
as a real subprocess against the node.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from market.hub.server import MarketNode, MarketNodeConfig

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, every byte value, so ranges are easy to check
DIGEST = hashlib.sha3_224(PAYLOAD).hexdigest()
OTHER = hashlib.sha3_224(b"other").hexdigest()
GOLEM = [sys.executable, "-c", "from market.cli import main; main()"]

NodeFactory = Callable[..., Awaitable[MarketNode]]


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    nodes: list[MarketNode] = []

    async def factory(**settings: Any) -> MarketNode:
        config = MarketNodeConfig(port=0, data_dir=tmp_path / f"node-{len(nodes)}", **settings)
        node = MarketNode(config)
        nodes.append(node)
        await node.start()
        return node

    yield factory
    for node in nodes:
        await node.close()


@pytest.fixture
async def node(make_node: NodeFactory) -> MarketNode:
    return await make_node()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def upload(
    http: aiohttp.ClientSession,
    node: MarketNode,
    data: bytes | AsyncIterator[bytes] = PAYLOAD,
    headers: dict[str, str] | None = None,
    **params: str,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.post(f"{node.url}/packages", data=data, params=params, headers=headers) as response:
        return response.status, await response.json(), response


async def stored(node: MarketNode) -> list[str]:
    """What the registry holds, and no half-written leftovers."""
    incoming = node.registry.incoming
    assert not incoming.exists() or list(incoming.iterdir()) == []
    return [p.digest for p in node.registry.list()]


# --- upload -----------------------------------------------------------------------------------------


async def test_upload_answers_hash_and_url(node: MarketNode, http: aiohttp.ClientSession) -> None:
    status, body, _ = await upload(http, node, hash=DIGEST, name="payload.tar", tag="golem/test:1")

    url = f"{node.url}/packages/{DIGEST}"
    assert status == 201
    assert body == {
        "hash": DIGEST,
        "size": len(PAYLOAD),
        "url": url,
        "taskPackage": f"hash:sha3:{DIGEST}:{url}",
        "name": "payload.tar",
        "uploadedAt": body["uploadedAt"],
        "tags": ["golem/test:1"],
        "created": True,
    }
    async with http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert await response.read() == PAYLOAD
    async with http.get(f"{node.url}/packages") as response:
        listing = await response.json()
    assert [(p["hash"], p["tags"], p["created"]) for p in listing] == [(DIGEST, ["golem/test:1"], None)]


async def test_upload_without_a_hash_is_named_by_the_node(
    node: MarketNode, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await upload(http, node)

    assert (status, body["hash"]) == (201, DIGEST)


async def test_upload_again_is_200_and_changes_nothing(node: MarketNode, http: aiohttp.ClientSession) -> None:
    await upload(http, node, hash=DIGEST, name="first.tar")

    status, body, _ = await upload(http, node, hash=DIGEST, name="second.tar")

    assert (status, body["created"], body["name"]) == (200, False, "first.tar")
    assert await stored(node) == [DIGEST]


async def test_hash_mismatch_is_400_and_stores_nothing(node: MarketNode, http: aiohttp.ClientSession) -> None:
    status, body, _ = await upload(http, node, hash=OTHER, tag="app:1")

    assert status == 400
    assert f"hash to {DIGEST}, not to the expected {OTHER}" in body["message"]
    assert await stored(node) == []
    async with http.get(f"{node.url}/packages/{DIGEST}") as response:
        assert response.status == 404
    async with http.get(f"{node.url}/v1/image/info", params={"tag": "app:1"}) as response:
        assert response.status == 404


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"hash": "abc"}, "not a SHA3-224 digest"),
        ({"tag": "bad tag"}, "not a valid tag"),
        ({"colour": "blue"}, "invalid query"),
    ],
)
async def test_bad_upload_options_are_400(
    node: MarketNode, http: aiohttp.ClientSession, params: dict[str, str], fragment: str
) -> None:
    status, body, _ = await upload(http, node, **params)

    assert status == 400 and fragment in body["message"]
    assert await stored(node) == []


async def test_empty_upload_is_400(node: MarketNode, http: aiohttp.ClientSession) -> None:
    status, body, _ = await upload(http, node, b"")

    assert status == 400 and "no bytes" in body["message"]


async def test_declared_size_over_the_limit_is_413(
    make_node: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await make_node(max_package_bytes=len(PAYLOAD) - 1)

    status, body, _ = await upload(http, node)

    assert status == 413 and str(len(PAYLOAD) - 1) in body["message"]
    assert await stored(node) == []


async def test_streamed_size_over_the_limit_is_413(
    make_node: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await make_node(max_package_bytes=len(PAYLOAD) - 1)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the node counts as it reads
        for start in range(0, len(PAYLOAD), 64 * 1024):
            yield PAYLOAD[start : start + 64 * 1024]

    status, body, _ = await upload(http, node, chunked())

    assert status == 413 and "larger than" in body["message"]
    assert await stored(node) == []


# --- who may upload ---------------------------------------------------------------------------------


async def test_a_token_node_refuses_uploads_without_it(
    make_node: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await make_node(upload_token=SecretStr("s3cret"))

    status, body, response = await upload(http, node)
    assert status == 401 and "Bearer" in body["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")

    status, body, _ = await upload(http, node, headers={"Authorization": "Bearer wrong"})
    assert status == 403 and "wrong" in body["message"]

    status, body, _ = await upload(http, node, headers={"Authorization": "Basic czNjcmV0"})
    assert status == 401
    assert await stored(node) == []

    status, body, _ = await upload(http, node, headers={"Authorization": "Bearer s3cret"})
    assert (status, body["hash"]) == (201, DIGEST)


def outward_address() -> str | None:
    """This host's address on its default route, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


async def test_without_a_token_only_this_host_may_upload(
    make_node: NodeFactory, http: aiohttp.ClientSession
) -> None:
    address = outward_address()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address to connect from")
    node = await make_node(host="0.0.0.0")
    remote_url = f"http://{address}:{node.port}"

    async with http.post(f"{remote_url}/packages", data=PAYLOAD) as response:
        body = await response.json()
    assert response.status == 403 and "GOLEM_MARKET_UPLOAD_TOKEN" in body["message"]
    assert await stored(node) == []
    # Reading stays open to everyone: providers download from other hosts.
    await upload(http, node)
    async with http.head(f"{remote_url}/packages/{DIGEST}") as response:
        assert response.status == 200


# --- download ---------------------------------------------------------------------------------------


@pytest.fixture
async def with_payload(node: MarketNode, http: aiohttp.ClientSession) -> MarketNode:
    status, _, _ = await upload(http, node, hash=DIGEST, tag="golem/test:1")
    assert status == 201
    return node


@pytest.mark.parametrize(
    ("range_header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, len(PAYLOAD) - 1),
        ("bytes=-10", len(PAYLOAD) - 10, len(PAYLOAD) - 1),
        (f"bytes=500-{len(PAYLOAD) * 2}", 500, len(PAYLOAD) - 1),  # an end past the file is clipped
    ],
)
async def test_range_requests_get_206(
    with_payload: MarketNode, http: aiohttp.ClientSession, range_header: str, first: int, last: int
) -> None:
    url = f"{with_payload.url}/packages/{DIGEST}"
    async with http.get(url, headers={"Range": range_header}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(PAYLOAD)}"
        assert await response.read() == PAYLOAD[first : last + 1]


async def test_resumed_download_reassembles_the_package(
    with_payload: MarketNode, http: aiohttp.ClientSession
) -> None:
    url = f"{with_payload.url}/packages/{DIGEST}"
    async with http.get(url, headers={"Range": "bytes=0-300000"}) as response:
        head = await response.read()
    async with http.get(url, headers={"Range": f"bytes={len(head)}-"}) as response:
        tail = await response.read()

    assert hashlib.sha3_224(head + tail).hexdigest() == DIGEST


@pytest.mark.parametrize(
    "range_header", [f"bytes={len(PAYLOAD)}-", "bytes=99999999-", "bytes=abc", "bytes=5-1"]
)
async def test_unsatisfiable_ranges_get_416(
    with_payload: MarketNode, http: aiohttp.ClientSession, range_header: str
) -> None:
    async with http.get(f"{with_payload.url}/packages/{DIGEST}", headers={"Range": range_header}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == f"bytes */{len(PAYLOAD)}"
        assert "message" in await response.json()


async def test_head_says_size_without_a_body(with_payload: MarketNode, http: aiohttp.ClientSession) -> None:
    async with http.head(f"{with_payload.url}/packages/{DIGEST}") as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(PAYLOAD)
        assert response.headers["Accept-Ranges"] == "bytes"
        assert await response.read() == b""
    async with http.head(f"{with_payload.url}/packages/{OTHER}") as response:
        assert response.status == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/packages/{OTHER}", 404),
        ("/packages/not-a-hash", 400),
        (f"/packages/{DIGEST[:-1]}", 400),
        (f"/packages/{DIGEST}/x", 404),
    ],
)
async def test_bad_downloads_get_json_errors(
    with_payload: MarketNode, http: aiohttp.ClientSession, path: str, status: int
) -> None:
    async with http.get(f"{with_payload.url}{path}") as response:
        assert response.status == status
        assert response.content_type == "application/json"
        assert (await response.json())["message"]


# --- yapapi's image query ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{"hash": DIGEST, "count": "true"}, {"hash": DIGEST.upper(), "dev": "true"}, {"tag": "golem/test:1"}],
)
async def test_image_info_has_the_fields_yapapi_reads(
    with_payload: MarketNode, http: aiohttp.ClientSession, params: dict[str, str]
) -> None:
    async with http.get(f"{with_payload.url}/v1/image/info", params=params) as response:
        assert response.status == 200
        info = await response.json()

    port = with_payload.port
    assert info == {
        "http": f"http://127.0.0.1:{port}/packages/{DIGEST}",
        "https": f"https://127.0.0.1:{port}/packages/{DIGEST}",
        "sha3": DIGEST,
        "size": len(PAYLOAD),
    }


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"hash": OTHER, "count": "true"}, 404),
        ({"tag": "golem/unknown:1"}, 404),
        ({"hash": "xyz"}, 400),
        ({"count": "true"}, 400),
        ({"hash": DIGEST, "tag": "golem/test:1"}, 400),
        ({"hash": DIGEST, "extra": "1"}, 400),
    ],
)
async def test_image_info_errors(
    with_payload: MarketNode, http: aiohttp.ClientSession, params: dict[str, str], status: int
) -> None:
    async with http.get(f"{with_payload.url}/v1/image/info", params=params) as response:
        assert response.status == status
        assert (await response.json())["message"]


async def test_public_url_names_the_downloads(make_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await make_node(public_url="https://market.example.org")
    _, body, _ = await upload(http, node)

    async with http.get(f"{node.url}/v1/image/info", params={"hash": DIGEST}) as response:
        info = await response.json()

    assert body["url"] == f"https://market.example.org/packages/{DIGEST}"
    assert (info["http"], info["https"]) == (
        f"http://market.example.org/packages/{DIGEST}",
        f"https://market.example.org/packages/{DIGEST}",
    )


# --- golem packages ---------------------------------------------------------------------------------


async def golem(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *GOLEM, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_push_prints_hash_and_url(node: MarketNode, tmp_path: Path) -> None:
    path = tmp_path / "payload.tar"
    path.write_bytes(PAYLOAD)

    code, out, err = await golem("packages", "push", str(path), "--market", node.ws_url, "--tag", "app:1")

    assert code == 0, err
    assert out.splitlines() == [DIGEST, f"{node.url}/packages/{DIGEST}"]
    assert "stored" in err
    assert node.registry.resolve_tag("app:1").path.read_bytes() == PAYLOAD

    code, out, err = await golem("packages", "push", str(path), "--market", node.url, "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert (answer["hash"], answer["created"], answer["size"]) == (DIGEST, False, len(PAYLOAD))

    code, out, _ = await golem("packages", "list", "--market", node.url)
    assert code == 0 and out.split() == [DIGEST, str(len(PAYLOAD)), "payload.tar", "app:1"]


async def test_push_with_token(make_node: NodeFactory, tmp_path: Path) -> None:
    node = await make_node(upload_token=SecretStr("s3cret"))
    path = tmp_path / "payload.tar"
    path.write_bytes(PAYLOAD)

    code, _, err = await golem("packages", "push", str(path), "--market", node.url)
    assert code == 1 and "refused (401)" in err

    code, _, err = await golem("packages", "push", str(path), "--market", node.url, "--token", "nope")
    assert code == 1 and "refused (403): the upload token is wrong" in err
    assert await stored(node) == []

    code, out, err = await golem("packages", "push", str(path), "--market", node.url, "--token", "s3cret")
    assert code == 0 and out.splitlines()[0] == DIGEST, err


async def test_push_to_nowhere_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "payload.tar"
    path.write_bytes(b"x")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed

    code, _, err = await golem("packages", "push", str(path), "--market", f"http://127.0.0.1:{port}")

    assert code == 1 and "cannot upload to" in err


# --- settings ---------------------------------------------------------------------------------------


async def test_registry_settings_come_from_the_environment_and_the_token_is_never_shown(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "GOLEM_MARKET_UPLOAD_TOKEN": "s3cret-value",
        "GOLEM_MARKET_MAX_PACKAGE_BYTES": "1000",
        "GOLEM_MARKET_PUBLIC_URL": "https://market.example.org",
    }

    code, out, err = await golem("market", "serve", "--data-dir", str(tmp_path), "--show-config", env=env)

    assert code == 0, err
    shown = json.loads(out)
    assert "s3cret-value" not in out and shown["upload_token"] == "**********"
    assert (shown["max_package_bytes"], shown["public_url"]) == (1000, "https://market.example.org")
    assert shown["data_dir"] == str(tmp_path)

    code, _, err = await golem(
        "market", "serve", "--show-config", env={**env, "GOLEM_MARKET_PUBLIC_URL": "market.example.org"}
    )
    assert code == 1 and "public_url" in err
