"""A WebAssembly activity has no network: a deploy that asks to join a VPN is refused, clearly."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from exeunits.errors import RuntimeCommandError
from exeunits.runtime.base import DeployOptions, NetworkAttachment

from .conftest import Activities


async def test_deploy_with_a_vpn_is_refused(activities: Activities) -> None:
    package = activities.module("hello")
    runtime = await activities.factory.create(activities.spec(package))
    net = NetworkAttachment("net-1", IPv4Network("192.168.0.0/24"), IPv4Address("192.168.0.2"))
    with pytest.raises(RuntimeCommandError, match="no network"):
        await runtime.deploy(DeployOptions(networks=(net,)))
    # Nothing was made: the same exe unit still deploys without one.
    await runtime.deploy(DeployOptions())
    await runtime.terminate()
