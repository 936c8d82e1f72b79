"""yapapi's VPN, unchanged, on real processes: a service script creates a network, two instances of
a web server join it on two Docker providers, and the script fetches each one's page through a TCP
tunnel (the WebSocket ``Node.get_websocket_uri(80)`` names). While the instances are up, a second
requestor builds the same network and is refused, and so is a bare node asking the provider
directly. Both agreements end with invoices accepted and paid on the local chain."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from blueprints.localnet import Network, invoices, local_network, wait_settled
from exeunits.vpn import M_CONNECT
from market.client import MarketClient, RelayRouter, RelayRpcError
from market.core.identity import Identity
from market.core.ids import new_id
from payments.devchain import ChainInfo
from requestor.config import RequestorConfig
from requestor.daemon import RequestorDaemon
from tests.e2e.conftest import assert_paid_on_chain

SCRIPT = Path(__file__).resolve().parents[2] / "blueprints" / "scripts" / "vpn_http.py"
INSTANCE = re.compile(
    r"^instance on (provider-\d) \((0x[0-9a-f]{40})\) at ([\d.]+): (ws://\S+)$", re.MULTILINE
)


@pytest.mark.timeout(300)
async def test_pages_through_the_vpn_and_strangers_kept_out(
    tmp_path: Path, busybox: object, chain: ChainInfo
) -> None:
    image, digest = busybox.archive, busybox.sha3_224  # type: ignore[attr-defined]
    async with local_network(tmp_path, image, providers=2, chain=chain) as net:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            *("--image-hash", digest, "--image-url", net.image_url, "--instances", "2", "--hold", "20"),
            env=net.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            text = await _output_until(proc, "holding for", timeout=200)
            assert "holding for" in text, text + net.logs()
            network_id = re.search(r"instances running in network (\S+)", text)
            instances = INSTANCE.findall(text)
            assert network_id is not None and len(instances) == 2, text
            await _strangers_are_refused(net, tmp_path, network_id.group(1), instances)
            text += await _output_until(proc, None, timeout=90)
            assert await proc.wait() == 0, text + net.logs()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

        assert "ERROR" not in text and "Traceback" not in text, text
        assert "Could not refresh node" not in text, text  # yapapi's refresh of every node is accepted
        assert {name for name, *_ in instances} == {"provider-1", "provider-2"}, text
        for name, _, ip, url in instances:
            # yapapi named the tunnel, and what came through it was the page that instance wrote.
            assert url.endswith(f"/net-api/v1/net/{network_id.group(1)}/tcp/{ip}/80"), url
            assert (
                f"response from {name}: HTTP/1.1 200 OK" in text
                or f"response from {name}: HTTP/1.0 200 OK" in text
            )
            assert f"page from {name}: <h1>Hello from {name}</h1>" in text, text
        assert "all instances stopped" in text, text

        received = await invoices(net)
        assert len(received) == 2 and all(i["status"] in ("ACCEPTED", "SETTLED") for i in received), received
        assert_paid_on_chain(net, await wait_settled(net, providers=2))


async def _strangers_are_refused(
    net: Network, tmp_path: Path, network_id: str, instances: list[tuple[str, str, str, str]]
) -> None:
    _, provider_id, ip, _ = instances[0]
    # A second requestor daemon, with its own identity, copies the network (same id, same address).
    config = RequestorConfig(
        port=0,
        market_url=net.market_ws,
        data_dir=tmp_path / "intruder",
        payment_platforms="dummy-holesky-tglm",
    )
    async with RequestorDaemon(config, Identity.generate()) as intruder:
        _, key = intruder.app_keys.create("intruder", intruder.node_id)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
            base = f"{intruder.url}/net-api/v1"
            async with http.post(f"{base}/net", json={"id": network_id, "ip": "192.168.0.0/24"}) as created:
                assert created.status == 200, await created.text()
            async with http.post(
                f"{base}/net/{network_id}/nodes", json={"id": provider_id, "ip": ip}
            ) as added:
                assert added.status == 200, await added.text()
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{base.replace('http', 'ws')}/net/{network_id}/tcp/{ip}/80")
            assert refused.value.status == 403
    # A bare node (not the agreement's requestor) asking the provider itself fares no better.
    stranger = MarketClient(net.market_ws, Identity.generate(), "stranger", request_timeout=10.0)
    await stranger.connect(timeout=10.0)
    try:
        async with RelayRouter(stranger) as router:
            params: dict[str, Any] = {"networkId": network_id, "ip": ip, "port": 80, "streamId": new_id()}
            with pytest.raises(RelayRpcError) as forbidden:
                await router.call(provider_id, M_CONNECT, params)
            assert forbidden.value.code == "forbidden"
    finally:
        await stranger.close()


async def _output_until(proc: asyncio.subprocess.Process, marker: str | None, timeout: float) -> str:
    """The script's output up to the line containing ``marker`` (None: to the end), within ``timeout``."""
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while line := (await proc.stdout.readline()).decode(errors="replace"):
                lines.append(line)
                if marker is not None and marker in line:
                    break
    except TimeoutError:
        lines.append(f"[no {marker or 'end'} within {timeout:g} s]\n")
    return "".join(lines)
