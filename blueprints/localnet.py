"""A whole local network of real processes on loopback: a market node, providers (Docker and
wasmtime, dummy payments) and a requestor daemon, plus an HTTP server for payload images.

The quickstart (``python -m blueprints.quickstart``) and the end-to-end tests run on it; it is the
seed of ``golem devnet up``. Each process logs to ``<root>/<name>.log``; everything is stopped (SIGTERM,
then SIGKILL) when the context ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp
from aiohttp import web

GOLEM = [sys.executable, "-c", "from market.cli import main; main()"]
BIN = Path(sys.executable).parent


@dataclass
class Process:
    name: str
    proc: asyncio.subprocess.Process
    log: Path
    handle: IO[str]


@dataclass
class Network:
    root: Path
    market_ws: str = ""
    requestor_url: str = ""
    app_key: str = ""
    image_url: str = ""
    processes: list[Process] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a yapapi script needs to use this network (dummy payments)."""
        return dict(
            os.environ,
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            YAGNA_APPKEY=self.app_key,
            YAGNA_API_URL=self.requestor_url,
            YAGNA_PAYMENT_DRIVER="dummy",
            YAGNA_PAYMENT_NETWORK="holesky",
            YAGNA_SUBNET="public",
            PYTHONUNBUFFERED="1",
            **extra,
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n{p.log.read_text(errors='replace')[-4000:]}" for p in self.processes
        )


async def _start(
    network: Network, name: str, *args: str, pattern: str, env: dict[str, str] | None = None
) -> str:
    log = network.root / f"{name}.log"
    out = log.open("w")
    proc = await asyncio.create_subprocess_exec(
        *GOLEM, *args, stdout=asyncio.subprocess.PIPE, stderr=out, env=env or dict(os.environ)
    )
    network.processes.append(Process(name, proc, log, out))
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
            found = re.search(pattern, line)
            if found:
                return found.group(1) if found.groups() else line
    return ""


@asynccontextmanager
async def local_network(
    root: Path,
    image: Path,
    *,
    providers: int = 1,
    requestor: bool = True,
    provider_env: dict[str, str] | None = None,
) -> AsyncIterator[Network]:
    network = Network(root)
    app = web.Application()
    app.router.add_static("/images", image.parent)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    network.image_url = f"http://127.0.0.1:{runner.addresses[0][1]}/images/{image.name}"
    try:
        url = await _start(
            network, "market", "market", "serve", "--port", "0", pattern=r"listening on (http://\S+)"
        )
        network.market_ws = url.replace("http://", "ws://") + "/ws"
        for n in range(1, providers + 1):
            env = dict(
                os.environ,
                GOLEM_PROVIDER_PAYMENT_PLATFORM="dummy-holesky-tglm",
                GOLEM_LOG_LEVEL="INFO",
                **(provider_env or {}),
            )
            await _start(
                network,
                f"provider-{n}",
                "provider",
                "run",
                "--market",
                network.market_ws,
                "--data-dir",
                str(root / f"provider-{n}"),
                "--name",
                f"provider-{n}",
                "--status-port",
                "0",
                pattern=r"(provider-\d+)",
                env=env,
            )
        if not requestor:
            yield network
            return
        data = root / "requestor"
        key = await asyncio.create_subprocess_exec(
            *GOLEM,
            "requestor",
            "app-key",
            "create",
            "e2e",
            "--json",
            "--data-dir",
            str(data),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await key.communicate()
        network.app_key = json.loads(out)["key"] if out.strip().startswith(b"{") else out.decode().strip()
        env = dict(os.environ, GOLEM_LOG_LEVEL="INFO")
        network.requestor_url = await _start(
            network,
            "requestor",
            "requestor",
            "serve",
            "--port",
            "0",
            "--market",
            network.market_ws,
            "--data-dir",
            str(data),
            pattern=r"(http://127\.0\.0\.1:\d+)",
            env=env,
        )
        yield network
    finally:
        for process in reversed(network.processes):
            if process.proc.returncode is None:
                process.proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.proc.wait(), 20)
                except TimeoutError:
                    process.proc.kill()
                    await process.proc.wait()
            process.handle.close()
        await runner.cleanup()


async def run_script(net: Network, script: Path, *args: str, timeout: float = 180) -> tuple[int, str]:
    """Run a yapapi script against ``net``; its exit code and combined output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *args,
        env=net.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def invoices(net: Network) -> list[dict[str, object]]:
    """The invoices the requestor received, through its Payment API."""
    return await _payment_api(net, "invoices")


async def debit_notes(net: Network) -> list[dict[str, object]]:
    """The debit notes the requestor received, through its Payment API."""
    return await _payment_api(net, "debitNotes")


async def _payment_api(net: Network, path: str) -> list[dict[str, object]]:
    headers = {"Authorization": f"Bearer {net.app_key}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.get(f"{net.requestor_url}/payment-api/v1/{path}") as response,
    ):
        found: list[dict[str, object]] = await response.json()
        return found
