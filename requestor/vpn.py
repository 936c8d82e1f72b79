"""The requestor's VPNs: networks, the requestor's own addresses and the provider nodes in them.

Pure bookkeeping behind the Net API (``/net-api/v1``): :class:`VpnRegistry` creates networks,
assigns addresses and answers which node holds an address, refusing anything malformed (400),
outside the network or already taken (409) and unknown ids (404) without changing anything.

State is in memory, as in yagna (whose VPNs also live only as long as the daemon): after a restart
yapapi creates its networks again. A node may hold several addresses in one network (two instances
of a service on one provider); re-adding a node at the address it already holds is accepted, because
yapapi re-sends every node (its own address included, under the daemon's node id) when a service
instance starts running.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from exeunits.vpn import VpnAddressError, outside, parse_address, parse_network
from market.core.errors import GolemError
from market.core.ids import NodeId, new_id, node_id

MAX_NETWORKS = 256
"""Networks one daemon keeps at once."""
MAX_MEMBERS = 4096
"""Addresses (the requestor's and the nodes') one network holds at once."""
REQUESTOR = "the requestor"
"""The holder of the requestor's own addresses (node ids are ``0x…``, so it never clashes)."""
_NETWORK_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class NetError(GolemError):
    """Root of the Net API's errors; ``code`` maps to the HTTP status at the REST edge."""

    code = "net_error"


class NetBadRequestError(NetError):
    """Malformed input: not an address, not a network, a mask that is not one (400)."""

    code = "bad_request"


class NetNotFoundError(NetError):
    """No network, node or address with that id (404)."""

    code = "not_found"


class NetConflictError(NetError):
    """An address outside the network or already taken, a network id in use, or a limit (409)."""

    code = "conflict"


@dataclass
class Network:
    """One VPN: its address range, the requestor's addresses and the nodes' (address → node id)."""

    network_id: str
    network: IPv4Network
    gateway: IPv4Address | None = None
    addresses: list[IPv4Address] = field(default_factory=list)
    nodes: dict[IPv4Address, NodeId] = field(default_factory=dict)

    def holder(self, address: IPv4Address) -> str | None:
        """Who holds ``address``: :data:`REQUESTOR`, a node id, or None if it is free."""
        if address in self.addresses:
            return REQUESTOR
        return self.nodes.get(address)

    def node_at(self, address: IPv4Address) -> NodeId | None:
        return self.nodes.get(address)

    def members(self) -> int:
        return len(self.addresses) + len(self.nodes)


class VpnRegistry:
    """The daemon's networks; every method raises a :class:`NetError` and changes nothing on bad input."""

    def __init__(
        self, owner: str | None = None, *, max_networks: int = MAX_NETWORKS, max_members: int = MAX_MEMBERS
    ) -> None:
        self.owner = owner.lower() if owner else None
        """The daemon's own node id: adding it as a node at one of its own addresses is a no-op."""
        self.max_networks = max_networks
        self.max_members = max_members
        self._networks: dict[str, Network] = {}

    def __iter__(self) -> Iterator[Network]:
        return iter(list(self._networks.values()))

    def create(
        self, ip: str, mask: str | None = None, gateway: str | None = None, network_id: str | None = None
    ) -> Network:
        """A new network over ``ip``/``mask`` (see :func:`exeunits.vpn.parse_network`); ``network_id``
        is generated unless given."""
        try:
            network = parse_network(ip, mask)
            gateway_address = parse_address(gateway) if gateway is not None else None
        except VpnAddressError as exc:
            raise NetBadRequestError(str(exc)) from None
        if gateway_address is not None and (problem := outside(network, gateway_address)):
            raise NetConflictError(f"gateway: {problem}")
        if network_id is None:
            network_id = new_id()
        elif not _NETWORK_ID.match(network_id):
            raise NetBadRequestError("a network id is 1-64 letters, digits, '.', '_' or '-'")
        if network_id in self._networks:
            raise NetConflictError(f"network {network_id} already exists")
        if len(self._networks) >= self.max_networks:
            raise NetConflictError(f"this daemon already has {self.max_networks} networks, the most it keeps")
        created = Network(network_id, network, gateway_address)
        self._networks[network_id] = created
        return created

    def get(self, network_id: str) -> Network:
        found = self._networks.get(network_id)
        if found is None:
            raise NetNotFoundError(f"no network {network_id}")
        return found

    def remove(self, network_id: str) -> Network:
        removed = self.get(network_id)
        del self._networks[network_id]
        return removed

    def add_address(self, network_id: str, ip: str) -> IPv4Address:
        """Give the requestor ``ip`` in the network; adding an address it already has is a no-op."""
        network = self.get(network_id)
        address = self._free_address(network, ip, None)
        if address not in network.addresses:
            network.addresses.append(address)
        return address

    def add_node(self, network_id: str, node: str, ip: str) -> IPv4Address:
        """Put ``node`` at ``ip``; a node may hold several addresses, and re-adding one is a no-op."""
        network = self.get(network_id)
        try:
            member = node_id(node)
        except ValueError as exc:
            raise NetBadRequestError(str(exc)) from None
        address = self._free_address(network, ip, member)
        if network.holder(address) != REQUESTOR:
            network.nodes[address] = member
        return address

    def remove_node(self, network_id: str, node: str) -> list[IPv4Address]:
        """Take every address of ``node`` out of the network; the addresses it held."""
        network = self.get(network_id)
        held = [address for address, member in network.nodes.items() if member == node.lower()]
        if not held:
            raise NetNotFoundError(f"node {node} is not in network {network_id}")
        for address in held:
            del network.nodes[address]
        return held

    def node_at(self, network_id: str, ip: str) -> tuple[Network, IPv4Address, NodeId]:
        """The node holding ``ip`` (what a tunnel to ``ip`` reaches)."""
        network = self.get(network_id)
        try:
            address = parse_address(ip)
        except VpnAddressError as exc:
            raise NetBadRequestError(str(exc)) from None
        member = network.node_at(address)
        if member is None:
            raise NetNotFoundError(f"no node holds {address} in network {network_id}")
        return network, address, member

    def _free_address(self, network: Network, ip: str, member: NodeId | None) -> IPv4Address:
        """``ip`` parsed and checked: inside the network, not held by anyone but ``member``."""
        try:
            address = parse_address(ip)
        except VpnAddressError as exc:
            raise NetBadRequestError(str(exc)) from None
        if problem := outside(network.network, address):
            raise NetConflictError(problem)
        if address == network.gateway:
            raise NetConflictError(f"{address} is the network's gateway")
        holder = network.holder(address)
        if holder == REQUESTOR and member is not None and member == self.owner:
            return address  # yapapi re-sends its own address as a node when it refreshes the nodes
        if holder is not None and holder != (member or REQUESTOR):
            raise NetConflictError(
                f"{address} is already taken in network {network.network_id} (by {holder})"
            )
        if holder is None and network.members() >= self.max_members:
            raise NetConflictError(f"network {network.network_id} already has {self.max_members} members")
        return address
