"""yagna's Net API (``/net-api/v1``, and the same under ``/net-api/v2/vpn``): VPNs and TCP tunnels.

What yapapi 0.13.1 calls (``yapapi.network``, ``yapapi.rest.net``): create a network, add the
requestor's own address, add one node per provider, remove nodes and the network; and what its
users open (``Node.get_websocket_uri(port)``): ``GET /net/{id}/tcp/{ip}/{port}`` upgraded to a
WebSocket whose binary messages are the raw bytes of a TCP connection to ``port`` on the activity
holding ``ip``. Text messages are sent on as their UTF-8 bytes.

The tunnel is connected before the upgrade, so a failure is an ordinary HTTP error: 404 (unknown
network, or no node at that address), 403 (the address is another requestor's activity), 504 (the
provider could not connect: nothing listens, the activity is not running, no answer). Once open, the
WebSocket closes with 1000 when the activity's side closes the connection, and with 1011 and the
reason when the tunnel breaks. Closing the WebSocket closes the connection.

Statuses otherwise follow ``spec/yagna-rest-api.md`` §2.8: 200 for every success (the network body
on create), 400 for malformed input, 409 for an address outside the network or already taken.
Networks live in memory (see :mod:`requestor.vpn`). :data:`ROUTES` builds both the app and the
committed OpenAPI document (``requestor/openapi/net.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from market.api.models import ErrorMessage
from market.client.streams import RelayStream, StreamClosedError
from market.core.wire import RequestModel, WireModel
from market.hub.openapi import Route, build_document, document_cli, render
from requestor.app import json_model, read_json, register_error_status
from requestor.net_service import NetForbiddenError, NetLimitError, NetUnreachableError, RequestorNet, Tunnel
from requestor.vpn import NetBadRequestError, NetConflictError, NetNotFoundError
from requestor.vpn import Network as VpnNetwork

API_PREFIX = "/net-api/v1"
V2_PREFIX = "/net-api/v2/vpn"
"""yagna serves the same handlers here; yapapi uses only v1."""
API_VERSION = "1"
COMMITTED_PATH = Path(__file__).parent / "openapi" / "net.json"
MAX_MESSAGE_BYTES = 1024 * 1024
"""The largest WebSocket message a tunnel takes; one message is in memory at a time."""
CLOSE_REASON_BYTES = 123
"""A WebSocket close reason's limit (RFC 6455)."""

NET_SERVICE: web.AppKey[RequestorNet] = web.AppKey("net_service", RequestorNet)
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("net_sockets", set)

register_error_status(NetBadRequestError, 400)
register_error_status(NetForbiddenError, 403)
register_error_status(NetNotFoundError, 404)
register_error_status(NetConflictError, 409)
register_error_status(NetLimitError, 429)
register_error_status(NetUnreachableError, 504)


# --- wire models (ya-client's net schema names) -----------------------------------------------------


class Network(RequestModel):
    """A VPN. On create, ``ip`` is the network address (or ``a.b.c.d/len``), ``mask`` optional;
    ``id`` may be given (409 if taken), otherwise one is generated."""

    id: str | None = None
    ip: str
    mask: str | None = None
    gateway: str | None = None


class Address(RequestModel):
    """One of the requestor's own addresses in a network."""

    ip: str


class Node(RequestModel):
    """A provider node (its node id) at an address in a network."""

    id: str
    ip: str


class Connection(WireModel):
    """An open TCP tunnel (protocol 6 = TCP); the local port is a label, unique per tunnel."""

    protocol: int
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int


def _network_body(network: VpnNetwork) -> Network:
    return Network(
        id=network.network_id,
        ip=str(network.network.network_address),
        mask=str(network.network.netmask),
        gateway=str(network.gateway) if network.gateway is not None else None,
    )


# --- handlers -----------------------------------------------------------------------------------------


def _service(request: web.Request) -> RequestorNet:
    return request.app[NET_SERVICE]


async def create_network(request: web.Request) -> web.Response:
    body = await read_json(request, Network)
    created = _service(request).registry.create(body.ip, body.mask, body.gateway, body.id)
    return json_model(_network_body(created))


async def list_networks(request: web.Request) -> web.Response:
    return json_model([_network_body(n) for n in _service(request).registry])


async def get_network(request: web.Request) -> web.Response:
    return json_model(_network_body(_service(request).registry.get(request.match_info["networkId"])))


async def remove_network(request: web.Request) -> web.Response:
    await _service(request).remove_network(request.match_info["networkId"])
    return web.Response(status=200)


async def add_address(request: web.Request) -> web.Response:
    body = await read_json(request, Address)
    _service(request).registry.add_address(request.match_info["networkId"], body.ip)
    return web.Response(status=200)


async def list_addresses(request: web.Request) -> web.Response:
    network = _service(request).registry.get(request.match_info["networkId"])
    return json_model([Address(ip=str(a)) for a in network.addresses])


async def add_node(request: web.Request) -> web.Response:
    body = await read_json(request, Node)
    _service(request).registry.add_node(request.match_info["networkId"], body.id, body.ip)
    return web.Response(status=200)


async def list_nodes(request: web.Request) -> web.Response:
    network = _service(request).registry.get(request.match_info["networkId"])
    return json_model([Node(id=node, ip=str(ip)) for ip, node in network.nodes.items()])


async def remove_node(request: web.Request) -> web.Response:
    await _service(request).remove_node(request.match_info["networkId"], request.match_info["nodeId"])
    return web.Response(status=200)


async def list_connections(request: web.Request) -> web.Response:
    tunnels = _service(request).connections(request.match_info["networkId"])
    return json_model([_connection(t) for t in tunnels])


def _connection(tunnel: Tunnel) -> Connection:
    return Connection(
        protocol=6,
        local_ip=str(tunnel.local_ip),
        local_port=tunnel.local_port,
        remote_ip=str(tunnel.remote_ip),
        remote_port=tunnel.remote_port,
    )


async def tcp_tunnel(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES)
    if not ws.can_prepare(request).ok:
        raise NetBadRequestError("this is a WebSocket endpoint: connect with an Upgrade: websocket request")
    service = _service(request)
    tunnel = await service.open_tunnel(
        request.match_info["networkId"], request.match_info["ip"], request.match_info["port"]
    )
    sockets = request.app[SOCKETS]
    try:
        await ws.prepare(request)
        sockets.add(ws)
        await _bridge(ws, tunnel.stream)
    finally:
        sockets.discard(ws)
        await tunnel.stream.close("the WebSocket was closed")
        service.tunnel_closed(tunnel)
    return ws


async def _bridge(ws: web.WebSocketResponse, stream: RelayStream) -> None:
    """Copy WebSocket messages into the tunnel and tunnel bytes into messages until either ends."""

    async def upstream() -> None:  # the WebSocket client -> the activity
        async for message in ws:
            if message.type is WSMsgType.BINARY:
                await stream.write(message.data)
            elif message.type is WSMsgType.TEXT:
                await stream.write(message.data.encode())
        await stream.write_eof()

    async def downstream() -> None:  # the activity -> the WebSocket client
        while data := await stream.read():
            await ws.send_bytes(data)

    up, down = asyncio.create_task(upstream()), asyncio.create_task(downstream())
    try:
        done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        failure = next((t.exception() for t in done if t.exception() is not None), None)
        if failure is not None:
            reason = str(failure) if isinstance(failure, StreamClosedError) else "the tunnel broke"
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=_close_reason(reason))
        elif down in done:
            await ws.close(code=WSCloseCode.OK, message=b"the connection was closed")
        if up not in done:
            # Our close ends the client's side of the loop once its close frame is in.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await asyncio.shield(up)
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)


def _close_reason(reason: str) -> bytes:
    return reason.encode()[:CLOSE_REASON_BYTES].decode(errors="ignore").encode()


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(text=_openapi_text(), content_type="application/json")


async def _close_sockets(app: web.Application) -> None:
    """On shutdown: tunnels' WebSockets end first, or the server would wait for them."""
    sockets = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the requestor daemon is shutting down")


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/net",
        "createNetwork",
        "Create a VPN",
        create_network,
        Network,
        body=Network,
        errors=(400, 409),
        description="409 when the id is taken, the gateway is outside the network or the daemon "
        "keeps too many networks.",
    ),
    Route("GET", "/net", "getNetworks", "List the VPNs", list_networks, list[Network]),
    Route("GET", "/net/{networkId}", "getNetwork", "One VPN", get_network, Network, errors=(404,)),
    Route(
        "DELETE",
        "/net/{networkId}",
        "removeNetwork",
        "Remove a VPN; its tunnels are reset",
        remove_network,
        None,
        errors=(404,),
    ),
    Route(
        "POST",
        "/net/{networkId}/addresses",
        "addAddress",
        "Give the requestor an address in the VPN",
        add_address,
        None,
        body=Address,
        errors=(400, 404, 409),
    ),
    Route(
        "GET",
        "/net/{networkId}/addresses",
        "getAddresses",
        "The requestor's addresses",
        list_addresses,
        list[Address],
        errors=(404,),
    ),
    Route(
        "POST",
        "/net/{networkId}/nodes",
        "addNode",
        "Put a provider node at an address in the VPN",
        add_node,
        None,
        body=Node,
        errors=(400, 404, 409),
        description="A node may hold several addresses; adding a node at the address it holds is a no-op.",
    ),
    Route("GET", "/net/{networkId}/nodes", "getNodes", "The nodes", list_nodes, list[Node], errors=(404,)),
    Route(
        "DELETE",
        "/net/{networkId}/nodes/{nodeId}",
        "removeNode",
        "Take a node (every address it holds) out of the VPN; its tunnels are reset",
        remove_node,
        None,
        errors=(404,),
    ),
    Route(
        "GET",
        "/net/{networkId}/tcp",
        "getConnections",
        "Open TCP tunnels",
        list_connections,
        list[Connection],
        errors=(404,),
    ),
    Route(
        "GET",
        "/net/{networkId}/tcp/{ip}/{port}",
        "connectTcp",
        "A TCP tunnel to ip:port in the VPN, as a WebSocket",
        tcp_tunnel,
        None,
        errors=(400, 403, 404, 429, 504),
        success_status=101,
        description="Upgrade to a WebSocket; binary messages carry the connection's bytes both ways. "
        "The provider connects before the upgrade, so failures are HTTP errors. The WebSocket closes "
        "with 1000 when the activity closes the connection and with 1011 and the reason when the "
        "tunnel breaks. The app key may also be given as the authToken query parameter.",
    ),
    Route("GET", "/openapi.json", "getOpenApi", "This document", get_openapi, dict[str, Any]),
)


def build_net_api(service: RequestorNet) -> web.Application:
    """A Net API sub-app over ``service``; mount one at :data:`API_PREFIX` and one at :data:`V2_PREFIX`
    (an aiohttp sub-app mounts once) with :func:`requestor.app.add_api`."""
    app = web.Application()
    app[NET_SERVICE] = service
    app[SOCKETS] = set()
    app.on_shutdown.append(_close_sockets)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler, name=route.operation_id)
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API (what ``requestor/openapi/net.json`` holds)."""
    return build_document(
        ROUTES,
        title="Golem requestor daemon: Net API (yagna-compatible VPN)",
        version=API_VERSION,
        server_url=API_PREFIX,
        error_model=ErrorMessage,
        description="The same operations are served under /net-api/v2/vpn. Networks are kept in memory.",
    )


def _openapi_text() -> str:
    return render(openapi_document())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m requestor.net_api [--check]``: rewrite (or check) the committed document."""
    return document_cli("requestor.net_api", _openapi_text(), COMMITTED_PATH, argv)


if __name__ == "__main__":
    sys.exit(main())
