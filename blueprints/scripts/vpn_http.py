"""Web servers inside service instances, reached from the requestor through yapapi's VPN.

    python blueprints/scripts/vpn_http.py --image-hash HASH --image-url URL [--instances 2] [--hold 0]

(with YAGNA_APPKEY / YAGNA_API_URL set as in the README). The requestor creates a VPN, and each
instance joins it, writes a page naming its provider and starts busybox ``httpd`` on port 80 inside
its container. The requestor then opens a TCP tunnel to port 80 of each instance (the WebSocket
``instance.network_node.get_websocket_uri(80)``), sends an HTTP GET through it and prints the
response. ``--hold N`` keeps the instances up N more seconds after that (time to try a tunnel by
hand: the script prints each one's URL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncGenerator, Awaitable

import aiohttp
from yapapi import Golem
from yapapi.events import CommandEvent
from yapapi.payload import Payload, vm
from yapapi.script import Script
from yapapi.services import Service

WWW = "/golem/work/www"
START_DEADLINE = 120.0


class WebServer(Service):
    image_hash = ""
    image_url = ""

    @staticmethod
    async def get_payload() -> Payload:
        return await vm.repo(
            image_hash=WebServer.image_hash, image_url=WebServer.image_url, capabilities=["vpn"]
        )

    async def start(self) -> AsyncGenerator[Script, Awaitable[list[CommandEvent]]]:
        async for script in super().start():  # deploy (joining the VPN) and start
            yield script
        context = self._ctx
        assert context is not None  # yapapi sets it before start()
        script = context.new_script()
        page = f"<h1>Hello from {context.provider_name}</h1>"
        script.run("/bin/sh", "-c", f"mkdir -p {WWW} && echo '{page}' > {WWW}/index.html")
        script.run("/bin/busybox", "httpd", "-p", "80", "-h", WWW)  # forks into the background
        yield script


async def fetch(url: str, app_key: str, path: str = "/index.html") -> str:
    """An HTTP/1.0 GET through the tunnel at ``url``; the raw response as text."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers={"Authorization": f"Bearer {app_key}"}) as ws,
    ):
        await ws.send_bytes(f"GET {path} HTTP/1.0\r\nHost: vpn\r\n\r\n".encode())
        response = bytearray()
        while True:  # the server closes the connection after its answer, and the WebSocket with it
            message = await ws.receive()
            if message.type is aiohttp.WSMsgType.BINARY:
                response += message.data
            elif message.type is aiohttp.WSMsgType.CLOSE and message.data == aiohttp.WSCloseCode.OK:
                break
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                raise RuntimeError(f"the tunnel broke: {message.data} {message.extra or ''}".strip())
        return response.decode(errors="replace")


async def main(image_hash: str, image_url: str, instances: int, hold: float) -> int:
    WebServer.image_hash, WebServer.image_url = image_hash, image_url
    app_key = os.environ["YAGNA_APPKEY"]
    failures = 0
    async with Golem(budget=1.0, subnet_tag="public") as golem:
        network = await golem.create_network("192.168.0.1/24")
        async with network:  # removed at the end
            cluster = await golem.run_service(
                WebServer, network=network, num_instances=instances, expiration=None
            )
            deadline = asyncio.get_running_loop().time() + START_DEADLINE
            while not all(i.state.value == "running" for i in cluster.instances):
                if asyncio.get_running_loop().time() > deadline:
                    print("the instances did not all start in time", file=sys.stderr)
                    return 1
                await asyncio.sleep(0.2)
            print(f"{len(cluster.instances)} instances running in network {network.network_id}")
            for instance in cluster.instances:
                node = instance.network_node
                assert node is not None
                url = node.get_websocket_uri(80)
                print(f"instance on {instance.provider_name} ({instance.provider_id}) at {node.ip}: {url}")
                try:
                    response = await fetch(url, app_key)
                except (aiohttp.ClientError, RuntimeError) as exc:
                    print(f"cannot reach {node.ip}:80 on {instance.provider_name}: {exc}", file=sys.stderr)
                    failures += 1
                    continue
                status, _, body = response.partition("\r\n\r\n")
                print(f"response from {instance.provider_name}: {status.splitlines()[0]}")
                print(f"page from {instance.provider_name}: {body.strip()}")
            if hold > 0:
                print(f"holding for {hold:g} s")
                await asyncio.sleep(hold)
            cluster.stop()  # type: ignore[no-untyped-call]
            while any(i.state.value != "terminated" for i in cluster.instances):
                await asyncio.sleep(0.2)
            print("all instances stopped")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--image-hash", required=True)
    parser.add_argument("--image-url", required=True)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to keep the instances up at the end")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.image_hash, args.image_url, args.instances, args.hold)))
