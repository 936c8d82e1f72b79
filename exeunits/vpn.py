"""The VPN between a requestor and its activities: the address rules and the tunnel protocol.

yapapi builds a VPN with the requestor daemon's Net API (a network, the requestor's own address,
one address per provider node) and tells each activity its place in it through ``deploy``'s ``net``
argument. Traffic from the requestor into an activity travels as TCP tunnels: the requestor daemon
asks the provider daemon to open a TCP connection to a port of the activity's exe unit, then both
pipe bytes through a flow-controlled :class:`~market.client.streams.RelayStream` on the market relay.

Tunnel protocol (requestor → provider, over the relay)::

    net.connect {networkId, ip, port, streamId}  ->  {}   once the TCP connection is up
    then stream "vpn" frames both ways (see market.client.streams); a reset ends the connection

``networkId`` and ``ip`` name the VPN and the activity's address in it (the ``nodeIp`` its deploy
carried); only the requestor of that activity's agreement may connect. Error codes of
``net.connect``: ``bad_request``, ``forbidden`` (the address belongs to someone else's activity),
``not_found`` (no activity holds that address here), ``unreachable`` (nothing listens on the port, or
the exe unit is not running), ``timeout``, ``limit_exceeded``.

The address rules are shared by both sides, so the requestor refuses (400/409) what a provider would
refuse at deploy. Only IPv4 is supported, as in yagna's VPN.
"""

from __future__ import annotations

from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError

M_CONNECT = "net.connect"
STREAMS_NAME = "vpn"
"""Names the relay streams' channel (``vpn:``) and notifications (``vpn.credit``, ``vpn.reset``)."""
FRAMES_PER_SECOND = 150.0
"""Pace of tunnel frames per node: with gftp's 800/s it stays under the market node's 1000/s."""
FRAME_BURST = 50
WINDOW_BYTES = 512 * 1024
"""Bytes in flight per tunnel and direction: what each side buffers at most for one tunnel."""
MAX_TUNNELS = 128
MAX_TUNNELS_PER_PEER = 32
"""Open tunnels per node, and with any one other node: with the window, a bound on memory."""
MAX_PREFIX_LENGTH = 30
"""The smallest network: two host addresses (one for the requestor, one for a provider)."""

# Error codes on the relay.
CODE_UNREACHABLE = "unreachable"
CODE_TIMEOUT = "timeout"


class VpnAddressError(ValueError):
    """An address, mask or network that a VPN cannot use; the message says why.

    A ``ValueError``, so that pydantic validators report it as a validation error.
    """


def parse_network(ip: str, mask: str | None = None) -> IPv4Network:
    """The network ``ip`` names, with ``mask`` (dotted, e.g. ``255.255.255.0``, or a prefix length)
    or a ``/prefix`` suffix on ``ip``; host bits are dropped (``192.168.0.7/24`` is ``192.168.0.0/24``)."""
    if not isinstance(ip, str) or not ip.strip():
        raise VpnAddressError("the network address is missing")
    text = ip.strip()
    if mask is not None:
        if "/" in text:
            raise VpnAddressError(f"give the mask once: {ip!r} already has a prefix length")
        text = f"{text}/{mask.strip()}"
    try:
        network = IPv4Network(text, strict=False)
    except (AddressValueError, NetmaskValueError) as exc:
        if ":" in text:
            raise VpnAddressError(f"{text!r}: only IPv4 networks are supported") from None
        raise VpnAddressError(f"{text!r} is not an IPv4 network: {exc}") from None
    if network.prefixlen > MAX_PREFIX_LENGTH:
        raise VpnAddressError(
            f"{network.with_netmask} is too small: a VPN needs a prefix of /{MAX_PREFIX_LENGTH} or shorter"
        )
    return network


def parse_address(ip: str) -> IPv4Address:
    """An IPv4 address in dotted form; raises :class:`VpnAddressError`."""
    try:
        return IPv4Address(ip.strip() if isinstance(ip, str) else ip)
    except AddressValueError:
        if isinstance(ip, str) and ":" in ip:
            raise VpnAddressError(f"{ip!r}: only IPv4 addresses are supported") from None
        raise VpnAddressError(f"{ip!r} is not an IPv4 address") from None


def outside(network: IPv4Network, address: IPv4Address) -> str | None:
    """Why ``address`` cannot be a node's address in ``network``, or None if it can."""
    if address not in network:
        return f"{address} is outside the network {network.with_netmask}"
    if address == network.network_address:
        return f"{address} is the address of the network {network.with_netmask}, not of a node"
    if address == network.broadcast_address:
        return f"{address} is the broadcast address of {network.with_netmask}"
    return None


def host_address(network: IPv4Network, ip: str) -> IPv4Address:
    """``ip`` as an address a node may hold in ``network``; raises :class:`VpnAddressError`."""
    address = parse_address(ip)
    problem = outside(network, address)
    if problem is not None:
        raise VpnAddressError(problem)
    return address
