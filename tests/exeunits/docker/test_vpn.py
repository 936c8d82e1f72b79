"""A vm activity that joined a VPN: its ports are reachable from the provider through ``connect``,
while the container itself still has no network (real Docker, real busybox servers inside)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from ipaddress import IPv4Address, IPv4Network

import pytest

from exeunits.errors import RuntimeCommandError
from exeunits.runtime.base import ByteChannel, DeployOptions, NetworkAttachment
from exeunits.runtime.docker import DockerRuntime

from .conftest import SMALL, Activities, Output

VPN = (NetworkAttachment("net-1", IPv4Network("192.168.0.0/24"), IPv4Address("192.168.0.2")),)
ECHO_PORT = 9000


async def _vpn_activity(
    activities: Activities, capabilities: frozenset[str] = frozenset({"vpn"})
) -> DockerRuntime:
    spec = dataclasses.replace(activities.spec(SMALL), capabilities=capabilities)
    runtime = await activities.factory.create(spec)
    await runtime.deploy(DeployOptions(networks=VPN))
    await runtime.start([])
    return runtime


async def _sh(runtime: DockerRuntime, script: str) -> bytes:
    result = await runtime.run("/bin/sh", ["-c", script], Output())
    assert result.return_code == 0, result.stderr
    return result.stdout


async def _read_all(channel: ByteChannel) -> bytes:
    parts = []
    while chunk := await asyncio.wait_for(channel.read(), 10):
        parts.append(chunk)
    return b"".join(parts)


async def _wait_listening(runtime: DockerRuntime, port: int) -> None:
    for _ in range(100):
        if port in await asyncio.to_thread(runtime._listening_ports):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing came to listen on {port}")


async def test_a_web_page_through_the_tunnel_and_still_no_network(activities: Activities) -> None:
    runtime = await _vpn_activity(activities)
    await _sh(runtime, "mkdir -p /tmp/www && echo 'hello through the VPN' > /tmp/www/index.html")
    await _sh(runtime, "busybox httpd -p 80 -h /tmp/www")
    await _wait_listening(runtime, 80)

    channel = await runtime.connect(80)
    await channel.write(b"GET /index.html HTTP/1.0\r\nHost: vpn\r\n\r\n")
    await channel.write_eof()
    response = await _read_all(channel)
    await channel.close()
    assert response.startswith(b"HTTP/1.1 200 OK") or response.startswith(b"HTTP/1.0 200 OK"), response
    assert response.endswith(b"hello through the VPN\n")

    # The VPN gave the requestor a way in, not the container a way out.
    assert (await _sh(runtime, "ls /sys/class/net")).split() == [b"lo"]
    assert await _sh(runtime, "ip route") == b""
    inspect = await asyncio.to_thread(runtime._client.api.inspect_container, runtime.container_id)
    assert inspect["HostConfig"]["NetworkMode"] == "none"
    # The tunnel's helper process is gone once the channel is closed.
    processes = await _sh(runtime, "ps -o args")
    assert b"nc 127.0.0.1" not in processes, processes
    await runtime.terminate()


async def test_megabytes_echoed_both_ways_with_backpressure(activities: Activities) -> None:
    runtime = await _vpn_activity(activities)
    await _sh(runtime, f"busybox nc -ll -p {ECHO_PORT} -e /bin/cat > /dev/null 2>&1 &")
    await _wait_listening(runtime, ECHO_PORT)
    data = os.urandom(3 * 1024 * 1024 + 11)

    channel = await runtime.connect(ECHO_PORT)

    async def send() -> None:
        for start in range(0, len(data), 100_000):
            await channel.write(data[start : start + 100_000])
        await channel.write_eof()

    _, echoed = await asyncio.gather(send(), _read_all(channel))
    await channel.close()
    assert echoed == data
    await runtime.terminate()


async def test_refusals(activities: Activities) -> None:
    # A deploy may join a VPN only when the offer said vpn.
    plain = await activities.factory.create(activities.spec(SMALL))
    with pytest.raises(RuntimeCommandError, match="vpn capability"):
        await plain.deploy(DeployOptions(networks=VPN))
    await plain.terminate()

    # An activity without a VPN serves no ports.
    runtime = await activities.started()
    with pytest.raises(RuntimeCommandError, match="joined no VPN"):
        await runtime.connect(80)
    await runtime.terminate()

    vpn = await _vpn_activity(activities)
    with pytest.raises(RuntimeCommandError, match="nothing listens on TCP port 81"):
        await vpn.connect(81)
    with pytest.raises(RuntimeCommandError, match="not a TCP port"):
        await vpn.connect(70000)
    await vpn.terminate()
    with pytest.raises(Exception, match="terminated"):
        await vpn.connect(80)


async def test_terminate_ends_open_connections(activities: Activities) -> None:
    runtime = await _vpn_activity(activities)
    await _sh(runtime, f"busybox nc -ll -p {ECHO_PORT} -e /bin/cat > /dev/null 2>&1 &")
    await _wait_listening(runtime, ECHO_PORT)
    channel = await runtime.connect(ECHO_PORT)
    await channel.write(b"ping")
    assert await asyncio.wait_for(channel.read(), 10) == b"ping"
    assert f"nc 127.0.0.1 {ECHO_PORT}".encode() in await _sh(runtime, "ps -o args")  # the tunnel's helper
    pending = asyncio.create_task(channel.read())
    await runtime.terminate()
    assert await asyncio.wait_for(pending, 10) == b""
