"""The requestor daemon's Net service: its VPNs and the TCP tunnels it opens into activities.

:class:`RequestorNet` is what the Net API's handlers call. Networks, addresses and nodes are the
in-memory bookkeeping of :class:`~requestor.vpn.VpnRegistry`. A tunnel to ``ip:port`` in a network
goes to the provider node holding ``ip``: the daemon opens a relay stream, asks the provider to
connect (``net.connect``, see :mod:`exeunits.vpn`) and hands the stream to the caller (the WebSocket
handler) once the provider's TCP connection is up, so a failure is an HTTP error before any
upgrade. Removing a node or a network resets the tunnels that went through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from exeunits.gftp import FramePacer
from exeunits.vpn import (
    FRAME_BURST,
    FRAMES_PER_SECOND,
    M_CONNECT,
    MAX_TUNNELS,
    MAX_TUNNELS_PER_PEER,
    STREAMS_NAME,
    WINDOW_BYTES,
)
from market.client.relay import RelayRouter, RelayRpcError
from market.client.streams import RelayStream, RelayStreams, StreamLimitError
from market.core.ids import NodeId, new_id
from requestor.vpn import NetBadRequestError, NetError, NetNotFoundError, Network, VpnRegistry

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 15.0
"""How long the provider may take to connect; it gives up after 10 s itself."""
TCP = 6
"""The IP protocol number the Net API reports for connections."""
EPHEMERAL_PORTS = range(49152, 65536)


class NetForbiddenError(NetError):
    """The provider refused: the address belongs to another requestor's activity (403)."""

    code = "forbidden"


class NetLimitError(NetError):
    """Too many tunnels are open (429)."""

    code = "limit_exceeded"


class NetUnreachableError(NetError):
    """The provider could not connect (nothing listens, not running, no answer in time) (504)."""

    code = "unreachable"


@dataclass
class Tunnel:
    """One open tunnel: its relay stream and what ``GET /net/{id}/tcp`` lists for it."""

    network_id: str
    node: NodeId
    local_ip: IPv4Address
    local_port: int
    remote_ip: IPv4Address
    remote_port: int
    stream: RelayStream


class RequestorNet:
    """VPNs and tunnels of one requestor daemon; ``close()`` resets every tunnel."""

    def __init__(
        self,
        router: RelayRouter,
        *,
        registry: VpnRegistry | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        streams: RelayStreams | None = None,
    ) -> None:
        self.router = router
        self.registry = registry or VpnRegistry(owner=router.client.node_id)
        self.connect_timeout = connect_timeout
        self.streams = streams or RelayStreams(
            router,
            STREAMS_NAME,
            window_bytes=WINDOW_BYTES,
            pacer=FramePacer(FRAMES_PER_SECOND, FRAME_BURST),
            max_streams=MAX_TUNNELS,
            max_per_peer=MAX_TUNNELS_PER_PEER,
        )
        self._tunnels: dict[str, Tunnel] = {}
        self._next_port = EPHEMERAL_PORTS.start

    # -- networks (the registry, plus what removal does to tunnels) ---------------------------------

    async def remove_network(self, network_id: str) -> Network:
        removed = self.registry.remove(network_id)
        await self._reset(lambda t: t.network_id == network_id, f"network {network_id} was removed")
        return removed

    async def remove_node(self, network_id: str, node: str) -> None:
        held = self.registry.remove_node(network_id, node)
        await self._reset(
            lambda t: t.network_id == network_id and t.remote_ip in held,
            f"node {node} was removed from network {network_id}",
        )

    def connections(self, network_id: str) -> list[Tunnel]:
        self.registry.get(network_id)
        return [t for t in self._tunnels.values() if t.network_id == network_id]

    # -- tunnels -------------------------------------------------------------------------------------

    async def open_tunnel(self, network_id: str, ip: str, port: str | int) -> Tunnel:
        """A TCP connection to ``ip:port`` in the network, through the provider node holding ``ip``.

        Raises :class:`NetNotFoundError` (no such network or node), :class:`NetBadRequestError`,
        :class:`NetForbiddenError`, :class:`NetLimitError` or :class:`NetUnreachableError`. Call
        :meth:`tunnel_closed` when done with it.
        """
        remote_port = _port(port)
        network, address, node = self.registry.node_at(network_id, ip)
        stream_id = new_id()
        try:
            # Open first: the provider may send (a server that speaks first) as soon as it connects.
            stream = self.streams.open(node, stream_id)
        except StreamLimitError as exc:
            raise NetLimitError(str(exc)) from None
        params = {"networkId": network_id, "ip": str(address), "port": remote_port, "streamId": stream_id}
        try:
            await self.router.call(node, M_CONNECT, params, timeout=self.connect_timeout)
        except RelayRpcError as exc:
            # Also tells the provider, in case it connected after we stopped waiting.
            await stream.reset(f"net.connect failed: {exc}")
            raise _refusal(node, address, remote_port, exc) from None
        except BaseException:  # the client went away meanwhile (the handler is cancelled)
            await stream.reset("the client went away")
            raise
        local_ip = network.addresses[0] if network.addresses else network.network.network_address
        tunnel = Tunnel(network_id, node, local_ip, self._local_port(), address, remote_port, stream)
        self._tunnels[stream_id] = tunnel
        log.info("tunnel %s open to %s:%d in network %s", stream_id[:8], address, remote_port, network_id)
        return tunnel

    def tunnel_closed(self, tunnel: Tunnel) -> None:
        self._tunnels.pop(tunnel.stream.stream_id, None)

    async def close(self) -> None:
        await self._reset(lambda t: True, "the requestor daemon is shutting down")
        await self.streams.close()

    async def _reset(self, which: Callable[[Tunnel], bool], reason: str) -> None:
        for tunnel in [t for t in self._tunnels.values() if which(t)]:
            await tunnel.stream.reset(reason)
            self.tunnel_closed(tunnel)

    def _local_port(self) -> int:
        """A port number for the listing, unique among the open tunnels."""
        used = {t.local_port for t in self._tunnels.values()}
        for _ in EPHEMERAL_PORTS:
            port = self._next_port
            self._next_port = port + 1 if port + 1 < EPHEMERAL_PORTS.stop else EPHEMERAL_PORTS.start
            if port not in used:
                return port
        raise NetLimitError("every local port number is in use")


def _port(value: str | int) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise NetBadRequestError(f"{value!r} is not a TCP port number") from None
    if not 0 < port < 65536:
        raise NetBadRequestError(f"{port} is not a TCP port number (1-65535)")
    return port


def _refusal(node: NodeId, address: IPv4Address, port: int, exc: RelayRpcError) -> NetError:
    where = f"{address}:{port} (node {node})"
    if exc.code == "forbidden":
        return NetForbiddenError(f"{where}: {exc}")
    if exc.code == "not_found":
        return NetNotFoundError(f"{where}: {exc}")
    if exc.code == "bad_request":
        return NetBadRequestError(f"{where}: {exc}")
    if exc.code == "limit_exceeded":
        return NetLimitError(f"{where}: {exc}")
    return NetUnreachableError(f"cannot connect to {where}: {exc}")
