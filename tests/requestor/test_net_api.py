"""The Net API (``/net-api/v1``) through a real requestor daemon, driven by ya-aioclient's ``ya_net``
(configured as yapapi configures it) and by yapapi's own ``Network`` class; raw aiohttp for the
error statuses, auth and the tunnel endpoint's refusals before any upgrade."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import ya_net
from ya_net import models as yan
from ya_net.api.requestor_api import RequestorApi
from ya_net.exceptions import ApiException
from yapapi.network import Network as YapapiNetwork
from yapapi.rest.net import Net

from market.core.identity import Identity
from requestor.daemon import RequestorDaemon
from requestor.net_api import COMMITTED_PATH, ROUTES, _openapi_text, build_net_api, openapi_document

PROVIDER = Identity.generate().node_id
OTHER = Identity.generate().node_id


@pytest.fixture
async def api_client(daemon: RequestorDaemon, app_key: str) -> AsyncIterator[ya_net.ApiClient]:
    client = ya_net.ApiClient(
        configuration=ya_net.Configuration(host=f"{daemon.url}/net-api/v1"),
        header_name="authorization",
        header_value=f"Bearer {app_key}",
    )
    yield client
    await client.close()


@pytest.fixture
def net_api(api_client: ya_net.ApiClient) -> RequestorApi:
    return RequestorApi(api_client)


@pytest.fixture
async def http(app_key: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {app_key}"}) as session:
        yield session


async def test_the_calls_yapapi_makes(net_api: RequestorApi) -> None:
    created = await net_api.create_network(yan.Network(ip="192.168.0.0", mask="255.255.255.0"))
    assert created.id and created.ip == "192.168.0.0" and created.mask == "255.255.255.0"
    net = created.id
    await net_api.add_address(net, yan.Address("192.168.0.1"))
    await net_api.add_node(net, yan.Node(PROVIDER, "192.168.0.2"))
    await net_api.add_node(net, yan.Node(PROVIDER, "192.168.0.2"))  # refresh_nodes sends it again
    await net_api.add_node(net, yan.Node(OTHER, "192.168.0.3"))

    assert [a.ip for a in await net_api.get_addresses(net)] == ["192.168.0.1"]
    nodes = await net_api.get_nodes(net)
    assert {(n.id, n.ip) for n in nodes} == {(PROVIDER, "192.168.0.2"), (OTHER, "192.168.0.3")}
    assert [n.id for n in await net_api.get_networks()] == [net]
    assert (await net_api.get_network(net)).ip == "192.168.0.0"
    assert await net_api.get_connections(net) == []

    await net_api.remove_node(net, PROVIDER)
    assert [(n.id, n.ip) for n in await net_api.get_nodes(net)] == [(OTHER, "192.168.0.3")]
    await net_api.remove_network(net)
    with pytest.raises(ApiException) as gone:
        await net_api.get_network(net)
    assert gone.value.status == 404


async def test_yapapi_network_class_end_to_end(
    api_client: ya_net.ApiClient, daemon: RequestorDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    network = await YapapiNetwork.create(Net(api_client), "192.168.0.1/24", daemon.node_id)
    assert network.owner_ip == "192.168.0.1"
    node = await network.add_node(PROVIDER)
    second = await network.add_node(PROVIDER)  # a second instance on the same provider
    assert (node.ip, second.ip) == ("192.168.0.2", "192.168.0.3")
    # What yapapi does once a service runs: every node again, the requestor's own address included.
    with caplog.at_level(logging.WARNING, logger="yapapi.network"):
        await network.refresh_nodes()
    assert "Could not refresh" not in caplog.text
    assert node.get_websocket_uri(80) == (
        f"{daemon.url.replace('http', 'ws')}/net-api/v1/net/{network.network_id}/tcp/192.168.0.2/80"
    )
    await network.remove_node(PROVIDER)
    await network.remove()
    assert list(daemon.net.registry) == []


async def _status(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    async with http.request(method, url, json=body) as response:
        text = await response.text()
        return response.status, (await response.json()) if text else None


async def test_refusals_and_their_statuses(daemon: RequestorDaemon, http: aiohttp.ClientSession) -> None:
    base = f"{daemon.url}/net-api/v1"
    status, created = await _status(http, "POST", f"{base}/net", {"ip": "10.0.0.0", "mask": "255.255.255.0"})
    assert status == 200
    net = created["id"]
    assert (await _status(http, "POST", f"{base}/net/{net}/addresses", {"ip": "10.0.0.1"}))[0] == 200
    assert (await _status(http, "POST", f"{base}/net/{net}/nodes", {"id": PROVIDER, "ip": "10.0.0.2"}))[
        0
    ] == 200
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/net", {"ip": "10.0.0.0", "mask": "255.0.255.0"}, 400, "not an IPv4 network"),
        ("POST", "/net", {"ip": "10.9.0.0/33"}, 400, "not an IPv4 network"),
        ("POST", "/net", {"ip": "fd00::", "mask": "64"}, 400, "only IPv4"),
        ("POST", "/net", {"ip": "10.9.0.0/24", "bogus": 1}, 400, "bogus"),
        ("POST", "/net", {"mask": "255.255.255.0"}, 400, "ip"),
        ("POST", "/net", {"id": net, "ip": "10.9.0.0/24"}, 409, "already exists"),
        ("POST", f"/net/{net}/addresses", {"ip": "10.0.1.1"}, 409, "outside"),
        ("POST", f"/net/{net}/addresses", {"ip": "10.0.0.2"}, 409, "taken"),
        ("POST", f"/net/{net}/addresses", {"ip": "ten"}, 400, "not an IPv4 address"),
        ("POST", f"/net/{net}/nodes", {"id": OTHER, "ip": "10.0.0.1"}, 409, "taken"),
        ("POST", f"/net/{net}/nodes", {"id": OTHER, "ip": "10.0.0.255"}, 409, "broadcast"),
        ("POST", f"/net/{net}/nodes", {"id": "provider-1", "ip": "10.0.0.9"}, 400, "node id"),
        ("POST", f"/net/{net}/nodes", {"ip": "10.0.0.9"}, 400, "id"),
        ("GET", "/net/nope", None, 404, "no network"),
        ("DELETE", "/net/nope", None, 404, "no network"),
        ("GET", "/net/nope/addresses", None, 404, "no network"),
        ("POST", "/net/nope/nodes", {"id": OTHER, "ip": "10.0.0.9"}, 404, "no network"),
        ("GET", "/net/nope/tcp", None, 404, "no network"),
        ("DELETE", f"/net/{net}/nodes/{OTHER}", None, 404, "not in network"),
    ]
    for method, path, body, expected, text in cases:
        status, answer = await _status(http, method, base + path, body)
        assert status == expected, (method, path, body, answer)
        assert text in answer["message"], (method, path, answer)
    # None of the refusals changed anything.
    assert (await _status(http, "GET", f"{base}/net/{net}/addresses"))[1] == [{"ip": "10.0.0.1"}]
    assert (await _status(http, "GET", f"{base}/net/{net}/nodes"))[1] == [{"id": PROVIDER, "ip": "10.0.0.2"}]
    assert len((await _status(http, "GET", f"{base}/net"))[1]) == 1


async def test_v2_serves_the_same_networks(daemon: RequestorDaemon, http: aiohttp.ClientSession) -> None:
    status, created = await _status(http, "POST", f"{daemon.url}/net-api/v2/vpn/net", {"ip": "10.1.0.0/16"})
    assert status == 200 and created["mask"] == "255.255.0.0"
    status, listed = await _status(http, "GET", f"{daemon.url}/net-api/v1/net/{created['id']}")
    assert status == 200 and listed == created


async def test_app_key_required(daemon: RequestorDaemon, app_key: str) -> None:
    url = f"{daemon.url}/net-api/v1/net"
    async with aiohttp.ClientSession() as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": app_key}):
            async with anonymous.get(url, headers=headers) as response:
                assert response.status == 401
        # The query form is for WebSocket upgrades only ...
        async with anonymous.get(f"{url}?authToken={app_key}") as response:
            assert response.status == 401
        tunnel = f"{daemon.url.replace('http', 'ws')}/net-api/v1/net/nope/tcp/10.0.0.2/80"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await anonymous.ws_connect(f"{tunnel}?authToken=wrong")
        assert refused.value.status == 401
        # ... where it gets past authentication (and on to "no such network").
        with pytest.raises(aiohttp.WSServerHandshakeError) as unknown:
            await anonymous.ws_connect(f"{tunnel}?authToken={app_key}")
        assert unknown.value.status == 404


async def test_tunnel_refusals_before_any_upgrade(
    daemon: RequestorDaemon, http: aiohttp.ClientSession
) -> None:
    base = f"{daemon.url}/net-api/v1"
    _, created = await _status(http, "POST", f"{base}/net", {"ip": "10.0.0.0/24"})
    net = created["id"]
    # PROVIDER is no node connected to the market: nobody answers net.connect.
    await _status(http, "POST", f"{base}/net/{net}/nodes", {"id": PROVIDER, "ip": "10.0.0.2"})
    ws_base = base.replace("http", "ws")
    for path, expected in [
        (f"/net/{net}/tcp/10.0.0.2/80", 504),
        (f"/net/{net}/tcp/10.0.0.3/80", 404),  # no node there
        (f"/net/{net}/tcp/10.0.0.2/0", 400),
        (f"/net/{net}/tcp/10.0.0.2/http", 400),
        (f"/net/{net}/tcp/not-an-ip/80", 400),
        ("/net/other/tcp/10.0.0.2/80", 404),
    ]:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_base + path)
        assert refused.value.status == expected, path
    # A plain GET (no upgrade) is told what the endpoint is.
    status, answer = await _status(http, "GET", f"{base}/net/{net}/tcp/10.0.0.2/80")
    assert status == 400 and "WebSocket" in answer["message"]
    assert daemon.net.streams.count() == 0  # nothing was left open by the failures


# --- the OpenAPI document ------------------------------------------------------------------------------


def test_committed_document_is_current() -> None:
    assert COMMITTED_PATH.read_text(encoding="utf-8") == _openapi_text(), (
        "requestor/openapi/net.json is stale; run `python -m requestor.net_api`"
    )


def test_registered_routes_and_documented_operations_are_the_same(daemon: RequestorDaemon) -> None:
    api = build_net_api(daemon.net)
    registered = {
        (route.method.upper(), route.resource.canonical)
        for route in api.router.routes()
        if route.resource is not None and route.method.upper() not in ("HEAD", "OPTIONS")
    }
    documented = {(m.upper(), path) for path, ops in openapi_document()["paths"].items() for m in ops}
    assert registered == documented
    assert {(r.method, r.path) for r in ROUTES} == documented


async def test_served_document_is_the_committed_one(
    daemon: RequestorDaemon, http: aiohttp.ClientSession
) -> None:
    for prefix in ("/net-api/v1", "/net-api/v2/vpn"):
        async with http.get(f"{daemon.url}{prefix}/openapi.json") as response:
            assert response.status == 200
            assert await response.text() == COMMITTED_PATH.read_text(encoding="utf-8")
