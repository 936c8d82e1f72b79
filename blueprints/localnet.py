"""A whole local network of real processes on loopback: a market node, providers (Docker and
wasmtime) and a requestor daemon, plus an HTTP server for payload images, paying in test GLM on a
local chain.

The quickstart (``python -m blueprints.quickstart``) and the end-to-end tests run on it; it is the
seed of ``golem devnet up``. Give it a running chain (:func:`payments.devchain.start`): every daemon
gets the chain's overrides, so the real platform name (``erc20-holesky-tglm``) pays on it, and the
requestor is funded from the faucet. Without a chain it falls back to the dummy driver, which pays
nobody (only for tests that are not about payment). Each process logs to ``<root>/<name>.log``;
everything is stopped (SIGTERM, then SIGKILL) when the context ends.
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
from typing import IO, Any

import aiohttp
from aiohttp import web

from blueprints.devnet_runner import remove_containers
from market.core.identity import Identity, keystore_address
from payments.devchain import ChainInfo, fund

GOLEM = [sys.executable, "-c", "from market.cli import main; main()"]
DUMMY_PLATFORM = "dummy-holesky-tglm"
PAYMENT_CYCLE_SECS = "1"
"""How often the devnet requestor pays what it owes (a real network: minutes to hours)."""
BIN = Path(sys.executable).parent


@dataclass
class Process:
    name: str
    proc: asyncio.subprocess.Process
    log: Path
    handle: IO[str]
    args: tuple[str, ...] = ()
    pattern: str = ""
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Network:
    root: Path
    market_ws: str = ""
    requestor_url: str = ""
    app_key: str = ""
    image_url: str = ""
    chain: ChainInfo | None = None
    requestor_id: str = ""
    processes: list[Process] = field(default_factory=list)

    @property
    def platform(self) -> str:
        return self.chain.platform if self.chain is not None else DUMMY_PLATFORM

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a yapapi script needs to use this network."""
        driver, network = self.platform.split("-")[:2]
        return dict(
            os.environ,
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            YAGNA_APPKEY=self.app_key,
            YAGNA_API_URL=self.requestor_url,
            YAGNA_PAYMENT_DRIVER=driver,
            YAGNA_PAYMENT_NETWORK=network,
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
    out = log.open("a")
    env = env or dict(os.environ)
    proc = await asyncio.create_subprocess_exec(
        *GOLEM, *args, stdout=asyncio.subprocess.PIPE, stderr=out, env=env
    )
    network.processes.append(Process(name, proc, log, out, args, pattern, env))
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
    requestor_env: dict[str, str] | None = None,
    chain: ChainInfo | None = None,
) -> AsyncIterator[Network]:
    network = Network(root, chain=chain)
    chain_env = chain.env() if chain is not None else {}
    app = web.Application()
    app.router.add_static("/images", image.parent)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    network.image_url = f"http://127.0.0.1:{runner.addresses[0][1]}/images/{image.name}"
    try:
        url = await _start(
            network,
            "market",
            "market",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(root / "market"),
            pattern=r"listening on (http://\S+)",
        )
        network.market_ws = url.replace("http://", "ws://") + "/ws"
        for n in range(1, providers + 1):
            env = {
                **os.environ,
                "GOLEM_PROVIDER_PAYMENT_PLATFORM": network.platform,
                "GOLEM_LOG_LEVEL": "INFO",
                **chain_env,
                **(provider_env or {}),
            }
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
        identity = _requestor_identity(data)
        network.requestor_id = identity.node_id
        if chain is not None:
            await asyncio.to_thread(fund, chain, identity.private_key_hex())
        env = {
            **os.environ,
            "GOLEM_LOG_LEVEL": "INFO",
            "GOLEM_REQUESTOR_PAYMENT_PLATFORMS": network.platform,
            "GOLEM_PAYMENT_CYCLE_SECS": PAYMENT_CYCLE_SECS,
            **chain_env,
            **(requestor_env or {}),
        }
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
        # A provider that was killed (a test's crash) leaves its exe units' containers behind.
        keystores = sorted(root.glob("provider-*/identity/keystore.json"))
        await asyncio.to_thread(remove_containers, [keystore_address(k) for k in keystores])
        await runner.cleanup()


async def kill(net: Network, name: str) -> None:
    """SIGKILL process ``name`` (no chance to clean up, as in a crash) and wait for it to go."""
    process = next(p for p in net.processes if p.name == name)
    if process.proc.returncode is None:
        process.proc.kill()
        await process.proc.wait()


async def restart(net: Network, name: str, **env: str) -> None:
    """Start process ``name`` again with its old arguments, its environment updated by ``env``.

    The requestor gets a new port (it listens on port 0); :attr:`Network.requestor_url` follows.
    """
    old = next(p for p in net.processes if p.name == name)
    if old.proc.returncode is None:
        raise RuntimeError(f"{name} is still running; kill it first")
    old.handle.close()
    net.processes.remove(old)
    found = await _start(net, name, *old.args, pattern=old.pattern, env={**old.env, **env})
    if name == "requestor":
        net.requestor_url = found


def _requestor_identity(data: Path) -> Identity:
    from requestor.cli import _config, unlock

    return unlock(_config(data))


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
    found: list[dict[str, object]] = await requestor_api(net, f"/payment-api/v1/{path}")
    return found


async def requestor_api(net: Network, path: str) -> Any:
    """GET ``path`` (``/market-api/v1/agreements``...) from the requestor daemon with the app key;
    the JSON answer. Anything but 200 is an AssertionError with the body."""
    headers = {"Authorization": f"Bearer {net.app_key}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.get(f"{net.requestor_url}{path}") as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


def documents(root: Path, daemon: str, role: str, kind: str = "Invoice") -> list[dict[str, object]]:
    """The documents in the books of one daemon under ``root`` (``<root>/<daemon>/payments.db``; a
    local network and a devnet lay their daemons out alike), as wire bodies with their current
    status; read while the daemon runs (SQLite WAL allows it)."""
    from payments.store import PaymentStore

    store = PaymentStore.open(root / daemon / "payments.db")
    try:
        return [{**row.body, "status": row.status} for row in store.documents(role, kind)]
    finally:
        store.close()


def provider_documents(net: Network, n: int, kind: str = "Invoice") -> list[dict[str, object]]:
    """Provider ``n``'s own record of the documents it issued."""
    return documents(net.root, f"provider-{n}", "provider", kind)


def provider_payments(net: Network, n: int) -> list[dict[str, object]]:
    """The payment confirmations provider ``n`` verified and recorded, as wire bodies."""
    from payments.store import PaymentStore

    store = PaymentStore.open(net.root / f"provider-{n}" / "payments.db")
    try:
        return [row.body for row in store.payments("provider")]
    finally:
        store.close()


async def wait_settled(
    net: Network | Path, providers: int, *, timeout: float = 60.0
) -> list[dict[str, object]]:
    """Wait until every invoice each provider issued is SETTLED in its own books; the invoices.

    ``net`` is a local network or the folder of a devnet. Raises TimeoutError (with what is still
    open) if that does not happen in ``timeout`` seconds.
    """
    root = net.root if isinstance(net, Network) else net
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [i for n in range(1, providers + 1) for i in documents(root, f"provider-{n}", "provider")]
        open_ = [i for i in found if i["status"] != "SETTLED"]
        if found and not open_:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"invoices not settled after {timeout:.0f} s: {open_ or 'no invoices'}")
        await asyncio.sleep(0.5)
