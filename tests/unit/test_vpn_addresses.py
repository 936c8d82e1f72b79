"""VPN address rules (shared by requestor and provider), the requestor's network registry, the
deploy ``net`` argument and the container's listening-port table: pure logic, table-driven."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from exeunits.errors import ExeScriptError
from exeunits.runtime.docker import loopback_listeners
from exeunits.script import Deploy, parse_exescript
from exeunits.vpn import VpnAddressError, host_address, outside, parse_network
from requestor.vpn import (
    REQUESTOR,
    NetBadRequestError,
    NetConflictError,
    NetNotFoundError,
    VpnRegistry,
)

PROVIDER = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20


@pytest.mark.parametrize(
    ("ip", "mask", "expected"),
    [
        ("192.168.0.0", "255.255.255.0", "192.168.0.0/24"),  # what yapapi sends
        ("192.168.0.0/24", None, "192.168.0.0/24"),
        ("192.168.0.1/24", None, "192.168.0.0/24"),  # yapapi's own example: host bits dropped
        ("10.0.0.0", "8", "10.0.0.0/8"),
        (" 172.16.4.0 ", "255.255.252.0", "172.16.4.0/22"),
        ("10.1.2.0", "255.255.255.252", "10.1.2.0/30"),
    ],
)
def test_networks_that_parse(ip: str, mask: str | None, expected: str) -> None:
    assert parse_network(ip, mask) == IPv4Network(expected)


@pytest.mark.parametrize(
    ("ip", "mask", "why"),
    [
        ("", None, "missing"),
        ("192.168.0.0/24", "255.255.255.0", "mask once"),
        ("192.168.0.0", "255.0.255.0", "not an IPv4 network"),  # not a contiguous mask
        ("192.168.0.0/33", None, "not an IPv4 network"),
        ("300.1.1.0/24", None, "not an IPv4 network"),
        ("fd00::/64", None, "only IPv4"),
        ("hello", None, "not an IPv4 network"),
        ("10.0.0.0/31", None, "too small"),
        ("10.0.0.1/32", None, "too small"),
    ],
)
def test_networks_that_do_not(ip: str, mask: str | None, why: str) -> None:
    with pytest.raises(VpnAddressError, match=why):
        parse_network(ip, mask)


@pytest.mark.parametrize(
    ("ip", "problem"),
    [
        ("192.168.0.1", None),
        ("192.168.0.254", None),
        ("192.168.1.1", "outside"),
        ("192.168.0.0", "address of the network"),
        ("192.168.0.255", "broadcast"),
    ],
)
def test_host_addresses(ip: str, problem: str | None) -> None:
    network = IPv4Network("192.168.0.0/24")
    found = outside(network, IPv4Address(ip))
    assert (found is None) if problem is None else (problem in str(found))
    if problem is None:
        assert host_address(network, ip) == IPv4Address(ip)
    else:
        with pytest.raises(VpnAddressError):
            host_address(network, ip)


# --- the requestor's registry -------------------------------------------------------------------------


def _registry_with_net() -> tuple[VpnRegistry, str]:
    registry = VpnRegistry()
    network = registry.create("192.168.0.0", "255.255.255.0")
    return registry, network.network_id


def test_a_yapapi_session_of_calls() -> None:
    registry, net = _registry_with_net()
    assert registry.add_address(net, "192.168.0.1") == IPv4Address("192.168.0.1")
    registry.add_node(net, PROVIDER.upper().replace("0X", "0x"), "192.168.0.2")  # stored lower-case
    registry.add_node(net, OTHER, "192.168.0.3")
    # yapapi refreshes nodes once a service runs: the same node at the same address again.
    registry.add_node(net, PROVIDER, "192.168.0.2")
    # A second instance on the same provider: one node, two addresses.
    registry.add_node(net, PROVIDER, "192.168.0.4")
    network = registry.get(net)
    assert network.addresses == [IPv4Address("192.168.0.1")]
    assert network.nodes == {
        IPv4Address("192.168.0.2"): PROVIDER,
        IPv4Address("192.168.0.3"): OTHER,
        IPv4Address("192.168.0.4"): PROVIDER,
    }
    assert registry.node_at(net, "192.168.0.4")[2] == PROVIDER
    assert registry.remove_node(net, PROVIDER) == [IPv4Address("192.168.0.2"), IPv4Address("192.168.0.4")]
    assert list(network.nodes) == [IPv4Address("192.168.0.3")]
    registry.remove(net)
    assert list(registry) == []


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda r, n: r.add_address(n, "10.0.0.1"), NetConflictError, "outside"),
        (lambda r, n: r.add_address(n, "192.168.0.2"), NetConflictError, "taken"),
        (lambda r, n: r.add_node(n, OTHER, "192.168.0.2"), NetConflictError, "taken"),
        (lambda r, n: r.add_node(n, OTHER, "192.168.0.1"), NetConflictError, REQUESTOR),
        (lambda r, n: r.add_node(n, OTHER, "192.168.0.255"), NetConflictError, "broadcast"),
        (lambda r, n: r.add_node(n, OTHER, "192.168.0.x"), NetBadRequestError, "not an IPv4 address"),
        (lambda r, n: r.add_node(n, "provider-1", "192.168.0.5"), NetBadRequestError, "not a node id"),
        (lambda r, n: r.add_node("nope", OTHER, "192.168.0.5"), NetNotFoundError, "no network"),
        (lambda r, n: r.remove_node(n, OTHER), NetNotFoundError, "not in network"),
        (lambda r, n: r.node_at(n, "192.168.0.1"), NetNotFoundError, "no node holds"),
        (lambda r, n: r.node_at(n, "::1"), NetBadRequestError, "only IPv4"),
        (lambda r, n: r.remove("nope"), NetNotFoundError, "no network"),
    ],
)
def test_refusals_change_nothing(call: object, error: type[Exception], text: str) -> None:
    registry, net = _registry_with_net()
    registry.add_address(net, "192.168.0.1")
    registry.add_node(net, PROVIDER, "192.168.0.2")
    before = (list(registry.get(net).addresses), dict(registry.get(net).nodes))
    with pytest.raises(error, match=text):
        call(registry, net)  # type: ignore[operator]
    assert (registry.get(net).addresses, registry.get(net).nodes) == before


def test_the_daemon_itself_as_a_node_at_its_own_address() -> None:
    # yapapi's refresh_nodes re-adds every node it knows, its own address under its own id included.
    registry = VpnRegistry(owner=OTHER.upper().replace("0X", "0x"))
    net = registry.create("192.168.0.0/24").network_id
    registry.add_address(net, "192.168.0.1")
    registry.add_node(net, OTHER, "192.168.0.1")
    assert registry.get(net).nodes == {}
    with pytest.raises(NetConflictError, match="taken"):
        registry.add_node(net, PROVIDER, "192.168.0.1")


def test_network_ids_and_limits() -> None:
    registry = VpnRegistry(max_networks=2, max_members=2)
    registry.create("10.0.0.0/24", network_id="mine")
    with pytest.raises(NetConflictError, match="already exists"):
        registry.create("10.1.0.0/24", network_id="mine")
    with pytest.raises(NetBadRequestError, match="network id"):
        registry.create("10.1.0.0/24", network_id="no spaces")
    with pytest.raises(NetConflictError, match="gateway"):
        registry.create("10.1.0.0/24", gateway="10.2.0.1")
    with pytest.raises(NetBadRequestError):
        registry.create("10.1.0.0/24", gateway="gateway")
    second = registry.create("10.1.0.0/24", gateway="10.1.0.1")
    with pytest.raises(NetConflictError, match="2 networks"):
        registry.create("10.2.0.0/24")
    with pytest.raises(NetConflictError, match="gateway"):
        registry.add_node(second.network_id, PROVIDER, "10.1.0.1")
    registry.add_address(second.network_id, "10.1.0.2")
    registry.add_node(second.network_id, PROVIDER, "10.1.0.3")
    with pytest.raises(NetConflictError, match="2 members"):
        registry.add_node(second.network_id, OTHER, "10.1.0.4")
    registry.add_node(second.network_id, PROVIDER, "10.1.0.3")  # a repeat is not a new member


# --- deploy's net argument ------------------------------------------------------------------------------


def _deploy(net: dict[str, object]) -> list[object]:
    return parse_exescript([{"deploy": {"net": [net]}}, {"start": {"args": []}}])  # type: ignore[return-value]


YAPAPI_NET = {
    "id": "4e1a",
    "ip": "192.168.0.0",
    "mask": "255.255.255.0",
    "nodeIp": "192.168.0.2",
    "nodes": {"192.168.0.1": OTHER, "192.168.0.2": PROVIDER},
}


def test_deploy_net_as_yapapi_sends_it() -> None:
    deploy = _deploy(YAPAPI_NET)[0]
    assert isinstance(deploy, Deploy) and deploy.net is not None
    (net,) = deploy.net
    assert (net.id, net.network, net.node_ip) == ("4e1a", IPv4Network("192.168.0.0/24"), "192.168.0.2")


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"nodeIp": "10.0.0.2"}, "outside"),
        ({"nodeIp": "192.168.0.255"}, "broadcast"),
        ({"mask": "255.255.0.255"}, "not an IPv4 network"),
        ({"nodes": {"192.168.1.1": PROVIDER}}, "outside"),
        ({"id": ""}, "id"),
        ({"nodeIp": None}, "nodeIp"),
    ],
)
def test_deploy_net_refused_before_anything_runs(change: dict[str, object], text: str) -> None:
    with pytest.raises(ExeScriptError, match=text):
        _deploy({**YAPAPI_NET, **change})


# --- which ports a connection to 127.0.0.1 reaches inside a container ------------------------------------

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0200A8C0:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1
   3: 0100007F:0050 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4 1
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1538 00000000000000000000000000000000:0000 0A 0 0
   1: 0000000000000000FFFF00000100007F:0BB8 00000000000000000000000000000000:0000 0A 0 0
   2: 00000000000000000000000001000000:2328 00000000000000000000000000000000:0000 0A 0 0
garbage line
"""


def test_listening_ports_reachable_over_loopback() -> None:
    # 80 on 0.0.0.0, 8080 on 127.0.0.1, 5432 on ::, 3000 on ::ffff:127.0.0.1; not 22 (bound to
    # 192.168.0.2 only), not 9000 (::1 only: a v4 connection cannot reach it), not an established one.
    assert loopback_listeners(PROC_NET_TCP) == {80, 8080, 5432, 3000}
