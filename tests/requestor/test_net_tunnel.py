"""TCP tunnels end to end in-process: a requestor daemon's WebSocket, the market relay, a provider's
:class:`~exeunits.tunnels.VpnHost` and a real TCP server behind an activity.

The activity is a real :class:`~exeunits.activity.Activity` (deployed with yapapi's ``net`` argument,
then started) over a small runtime whose ``connect`` opens a real socket to a server on loopback, so
everything but Docker runs as in production (``tests/exeunits/docker/test_vpn.py`` covers Docker's
side, ``tests/e2e/test_yapapi_vpn.py`` the whole thing with yapapi).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exeunits.activity import Activity
from exeunits.errors import RuntimeCommandError
from exeunits.host import HostedActivity
from exeunits.runtime.base import ByteChannel, DeployOptions, OutputCallback, RunResult
from exeunits.script import ActivityState, parse_exescript
from exeunits.transfer import TransferService
from exeunits.tunnels import VpnHost
from exeunits.vpn import M_CONNECT
from market.client import MarketClient, RelayRouter, RelayRpcError
from market.core.identity import Identity
from market.core.ids import new_id
from market.hub.server import MarketNode
from requestor.config import RequestorConfig
from requestor.daemon import RequestorDaemon

NODE_IP = "192.168.0.2"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _SocketChannel:
    """A plain TCP connection as the runtime's channel."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self) -> bytes:
        return await self.reader.read(65536)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def write_eof(self) -> None:
        self.writer.write_eof()

    async def close(self) -> None:
        self.writer.close()


@dataclass
class LoopbackRuntime:
    """An exe unit whose ports are servers on the host's loopback (port inside → real port)."""

    ports: dict[int, int] = field(default_factory=dict)
    options: DeployOptions | None = None
    terminated: bool = False

    async def deploy(self, options: DeployOptions) -> None:
        self.options = options

    async def start(self, args: list[str]) -> None:
        pass

    async def run(self, entry_point: str, args: list[str], on_output: OutputCallback) -> RunResult:
        return RunResult(0)

    def volumes(self) -> dict[str, Path]:
        return {}

    async def cpu_seconds(self) -> float:
        return 0.0

    async def terminate(self) -> None:
        self.terminated = True

    async def connect(self, port: int) -> ByteChannel:
        if port not in self.ports:
            raise RuntimeCommandError(f"nothing listens on TCP port {port} in the container")
        reader, writer = await asyncio.open_connection("127.0.0.1", self.ports[port])
        return _SocketChannel(reader, writer)


@dataclass
class Provider:
    client: MarketClient
    router: RelayRouter
    vpn: VpnHost
    activities: dict[str, HostedActivity] = field(default_factory=dict)
    servers: list[asyncio.Server] = field(default_factory=list)

    async def activity_in(self, network_id: str, requestor: str, runtime: LoopbackRuntime) -> Activity:
        """A started activity of ``requestor`` at NODE_IP in the network (deployed as yapapi does)."""
        activity = Activity(new_id(), runtime, TransferService())
        net = {"id": network_id, "ip": "192.168.0.0", "mask": "255.255.255.0", "nodeIp": NODE_IP, "nodes": {}}
        batch = activity.exec(parse_exescript([{"deploy": {"net": [net]}}, {"start": {"args": []}}]))
        results = await batch.wait_results(None, timeout=5)
        assert [r.result.value for r in results] == ["Ok", "Ok"], results
        self.activities[activity.activity_id] = HostedActivity(activity, "agreement", requestor, Path("."))  # type: ignore[arg-type]
        return activity

    async def serve(self, handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])


@pytest.fixture
async def provider(market_node: MarketNode) -> AsyncIterator[Provider]:
    client = MarketClient(market_node.ws_url, Identity.generate(), "provider-1", request_timeout=5.0)
    await client.connect(timeout=5.0)
    router = RelayRouter(client)
    holder = Provider(client, router, vpn=None)  # type: ignore[arg-type]
    holder.vpn = VpnHost(router, holder, connect_timeout=3.0)
    holder.vpn.register()
    await router.start()
    yield holder
    await holder.vpn.close()
    await router.close()
    await client.close()
    for server in holder.servers:
        server.close()


@pytest.fixture
async def http(app_key: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {app_key}"}) as session:
        yield session


async def _network(daemon: RequestorDaemon, http: aiohttp.ClientSession, provider: Provider) -> str:
    base = f"{daemon.url}/net-api/v1"
    async with http.post(f"{base}/net", json={"ip": "192.168.0.0", "mask": "255.255.255.0"}) as created:
        network_id = str((await created.json())["id"])
    async with http.post(f"{base}/net/{network_id}/addresses", json={"ip": "192.168.0.1"}):
        pass
    async with http.post(
        f"{base}/net/{network_id}/nodes", json={"id": provider.client.node_id, "ip": NODE_IP}
    ):
        pass
    return network_id


def _tunnel_url(daemon: RequestorDaemon, network_id: str, port: int, ip: str = NODE_IP) -> str:
    return f"{daemon.url.replace('http', 'ws')}/net-api/v1/net/{network_id}/tcp/{ip}/{port}"


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_megabytes_round_trip_through_the_websocket(
    daemon: RequestorDaemon, http: aiohttp.ClientSession, provider: Provider
) -> None:
    network_id = await _network(daemon, http, provider)
    runtime = LoopbackRuntime({7: await provider.serve(_echo)})
    await provider.activity_in(network_id, daemon.node_id, runtime)
    data = os.urandom(3 * 1024 * 1024 + 5)

    async with http.ws_connect(_tunnel_url(daemon, network_id, 7)) as ws:
        async with http.get(f"{daemon.url}/net-api/v1/net/{network_id}/tcp") as listed:
            [connection] = await listed.json()
        assert connection["protocol"] == 6 and connection["localIp"] == "192.168.0.1"
        assert (connection["remoteIp"], connection["remotePort"]) == (NODE_IP, 7)

        async def send() -> None:
            for start in range(0, len(data), 64 * 1024):
                await ws.send_bytes(data[start : start + 64 * 1024])

        received = bytearray()

        async def receive() -> None:
            while len(received) < len(data):
                message = await ws.receive(timeout=10)
                assert message.type is aiohttp.WSMsgType.BINARY, message
                received.extend(message.data)

        await asyncio.gather(send(), receive())
        assert bytes(received) == data
    # Closing the WebSocket closes the connection: the echo server sees the end and the tunnel goes.
    await _until(lambda: provider.vpn.open_tunnels == 0 and daemon.net.streams.count() == 0)
    async with http.get(f"{daemon.url}/net-api/v1/net/{network_id}/tcp") as listed:
        assert await listed.json() == []


async def test_a_server_that_speaks_first_then_closes(
    daemon: RequestorDaemon, http: aiohttp.ClientSession, provider: Provider
) -> None:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-fake\r\n")
        await writer.drain()
        writer.close()

    network_id = await _network(daemon, http, provider)
    await provider.activity_in(
        network_id, daemon.node_id, LoopbackRuntime({22: await provider.serve(banner)})
    )
    # The key in the query, as a browser would send it.
    async with aiohttp.ClientSession() as anonymous:
        url = f"{_tunnel_url(daemon, network_id, 22)}?authToken={http.headers['Authorization'][7:]}"
        async with anonymous.ws_connect(url) as ws:
            first = await ws.receive(timeout=10)
            assert first.type is aiohttp.WSMsgType.BINARY and first.data == b"SSH-2.0-fake\r\n"
            closing = await ws.receive(timeout=10)
            assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1000


async def test_nothing_listening_is_a_504_before_the_upgrade(
    daemon: RequestorDaemon, http: aiohttp.ClientSession, provider: Provider
) -> None:
    network_id = await _network(daemon, http, provider)
    await provider.activity_in(network_id, daemon.node_id, LoopbackRuntime({}))
    async with http.get(
        _tunnel_url(daemon, network_id, 80).replace("ws", "http", 1), headers=_upgrade_headers()
    ) as response:
        assert response.status == 504
        assert "nothing listens on TCP port 80" in (await response.json())["message"]
    assert daemon.net.streams.count() == 0 and provider.vpn.streams.count() == 0


async def test_another_requestor_cannot_tunnel_into_the_activity(
    daemon: RequestorDaemon,
    http: aiohttp.ClientSession,
    provider: Provider,
    market_node: MarketNode,
    tmp_path: Path,
) -> None:
    network_id = await _network(daemon, http, provider)
    runtime = LoopbackRuntime({80: await provider.serve(_echo)})
    await provider.activity_in(network_id, daemon.node_id, runtime)

    # A second requestor daemon builds the same network (same id, same address for the provider) ...
    config = RequestorConfig(
        port=0,
        market_url=market_node.ws_url,
        data_dir=tmp_path / "intruder",
        payment_platforms="dummy-holesky-tglm",
    )
    async with RequestorDaemon(config, Identity.generate()) as intruder:
        _, key = intruder.app_keys.create("intruder", intruder.node_id)
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(headers=headers) as other:
            base = f"{intruder.url}/net-api/v1"
            body = {"id": network_id, "ip": "192.168.0.0/24"}
            async with other.post(f"{base}/net", json=body) as created:
                assert created.status == 200
            async with other.post(
                f"{base}/net/{network_id}/nodes", json={"id": provider.client.node_id, "ip": NODE_IP}
            ):
                pass
            # ... and the provider refuses it: the activity is not the intruder's.
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await other.ws_connect(_tunnel_url(intruder, network_id, 80))
            assert refused.value.status == 403

    # Nor can any other node ask the provider directly over the relay.
    stranger = MarketClient(provider.client.url, Identity.generate(), "stranger", request_timeout=5.0)
    await stranger.connect(timeout=5.0)
    try:
        async with RelayRouter(stranger) as router:
            params: dict[str, Any] = {
                "networkId": network_id,
                "ip": NODE_IP,
                "port": 80,
                "streamId": new_id(),
            }
            with pytest.raises(RelayRpcError) as forbidden:
                await router.call(provider.client.node_id, M_CONNECT, params)
            assert forbidden.value.code == "forbidden"
            with pytest.raises(RelayRpcError) as unknown:
                await router.call(provider.client.node_id, M_CONNECT, {**params, "networkId": "other"})
            assert unknown.value.code == "not_found"
    finally:
        await stranger.close()
    assert provider.vpn.open_tunnels == 0


async def test_the_tunnel_closes_with_a_reason_when_its_activity_ends_or_its_node_is_removed(
    daemon: RequestorDaemon, http: aiohttp.ClientSession, provider: Provider
) -> None:
    network_id = await _network(daemon, http, provider)
    runtime = LoopbackRuntime({7: await provider.serve(_echo)})
    activity = await provider.activity_in(network_id, daemon.node_id, runtime)

    async with http.ws_connect(_tunnel_url(daemon, network_id, 7)) as ws:
        await ws.send_bytes(b"ping")
        assert (await ws.receive(timeout=10)).data == b"ping"
        await activity.destroy()
        closing = await ws.receive(timeout=10)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1011
        assert "the activity ended" in closing.extra
    assert activity.state is ActivityState.TERMINATED

    await provider.activity_in(network_id, daemon.node_id, runtime)
    async with http.ws_connect(_tunnel_url(daemon, network_id, 7)) as ws:
        await ws.send_bytes(b"ping")
        assert (await ws.receive(timeout=10)).data == b"ping"
        async with http.delete(f"{daemon.url}/net-api/v1/net/{network_id}/nodes/{provider.client.node_id}"):
            pass
        closing = await ws.receive(timeout=10)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1011
        assert "was removed" in closing.extra
    await _until(lambda: provider.vpn.open_tunnels == 0)


def _upgrade_headers() -> dict[str, str]:
    return {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_daemon_shutdown_closes_open_tunnels_promptly(
    daemon: RequestorDaemon, http: aiohttp.ClientSession, provider: Provider
) -> None:
    network_id = await _network(daemon, http, provider)
    await provider.activity_in(network_id, daemon.node_id, LoopbackRuntime({7: await provider.serve(_echo)}))
    async with http.ws_connect(_tunnel_url(daemon, network_id, 7)) as ws:
        await ws.send_bytes(b"ping")
        assert (await ws.receive(timeout=10)).data == b"ping"
        started = asyncio.get_running_loop().time()
        closing = asyncio.create_task(daemon.close())
        message = await ws.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 1001
        await asyncio.wait_for(closing, 10)
        assert asyncio.get_running_loop().time() - started < 5
    # The provider's side of the tunnel went too.
    await _until(lambda: provider.vpn.open_tunnels == 0)
