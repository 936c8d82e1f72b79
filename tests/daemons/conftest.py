"""A provider daemon and a requestor daemon together, in-process, on a real market node.

The provider is the whole stack ``golem provider run`` builds (daemon, exe units on the real wasmtime
runtime, payment exchange, billing, dummy payments), on its own data dir; it can be closed and
started again on the same folder and identity. The requestor is a real :class:`RequestorDaemon`,
driven through its REST API the way yapapi drives it (:class:`RequestorRest`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exeunits.payloads.wasm import build_module
from exeunits.runtime.wasm import WasmRuntimeFactory
from market.core.identity import Identity
from market.hub.server import MarketNode, MarketNodeConfig
from payments.driver import DummyDriver
from payments.exchange import PaymentExchange
from payments.service import ProviderPayments
from payments.store import PaymentStore
from provider.billing import ProviderBilling
from provider.config import ProviderConfig
from provider.daemon import ProviderDaemon
from provider.execution import ProviderExecution
from requestor.config import RequestorConfig
from requestor.daemon import RequestorDaemon
from tests.daemons.rest import HELLO, PLATFORM, RequestorRest
from tests.exeunits.conftest import FileServer, file_server  # noqa: F401  (fixture)
from tests.provider.factories import HARDWARE

__all__ = ["HELLO", "PLATFORM", "RequestorRest"]

ACCEPT_TIMEOUT = "golem.com.payment.debit-notes.accept-timeout?"
NOTE_INTERVAL = "golem.com.scheme.payu.debit-note.interval-sec?"
PAYMENT_TIMEOUT = "golem.com.scheme.payu.payment-timeout-sec?"


@dataclass
class ProviderStack:
    daemon: ProviderDaemon
    execution: ProviderExecution
    exchange: PaymentExchange
    payments: ProviderPayments
    billing: ProviderBilling
    store: PaymentStore

    @property
    def node_id(self) -> str:
        return self.daemon.node_id

    async def close(self) -> None:
        # The order of `golem provider run` leaving its `async with`.
        await self.billing.close()
        await self.exchange.close()
        await self.execution.close()
        await self.daemon.close()
        self.store.close()

    async def status(self, path: str, **params: str) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.daemon.status_url}{path}", params=params) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()


StartProvider = Callable[..., Awaitable[ProviderStack]]


@pytest.fixture
async def market_node() -> AsyncIterator[MarketNode]:
    async with MarketNode(MarketNodeConfig(port=0, sweep_interval=0.05)) as node:
        yield node


@pytest.fixture
async def start_provider(market_node: MarketNode, tmp_path: Path) -> AsyncIterator[StartProvider]:
    """Start a provider stack; ``data_dir`` and ``identity`` let a test start it again after a close."""
    stacks: list[ProviderStack] = []

    async def start(
        *,
        identity: Identity | None = None,
        data_dir: Path | None = None,
        market_url: str | None = None,
        billing_interval: float = 120.0,
        resume_grace: float = 30.0,
        **settings: Any,
    ) -> ProviderStack:
        config = ProviderConfig(
            market_url=market_url or market_node.ws_url,
            data_dir=data_dir or tmp_path / "provider",
            status_port=0,
            node_name="provider-1",
            runtimes=["wasmtime"],
            payment_platform=PLATFORM,
            **settings,
        )
        identity = identity or Identity.generate()
        store = PaymentStore.open(config.data_dir / "payments.db")
        driver = DummyDriver(platform_names=(PLATFORM,), trust_remote_claims=True)
        payments = ProviderPayments(store, identity=identity.node_id, drivers=[driver])
        daemon = ProviderDaemon(config, identity, hardware=HARDWARE, market_request_timeout=5.0)
        await daemon.start()
        execution = ProviderExecution(daemon, factories={"wasmtime": WasmRuntimeFactory()})
        await execution.start()
        exchange = PaymentExchange(execution.router, payments, retry_interval=0.2)
        exchange.register()
        await exchange.start()
        billing = ProviderBilling(
            daemon,
            execution,
            payments,
            exchange,
            default_interval=billing_interval,
            resume_grace=resume_grace,
        )
        await billing.start()
        stack = ProviderStack(daemon, execution, exchange, payments, billing, store)
        stacks.append(stack)
        await daemon.wait_ready(timeout=5.0)
        return stack

    yield start
    for stack in stacks:
        if stack.daemon._started:
            await stack.close()


@pytest.fixture
async def requestor(market_node: MarketNode, tmp_path: Path) -> AsyncIterator[RequestorRest]:
    config = RequestorConfig(
        port=0, market_url=market_node.ws_url, data_dir=tmp_path / "requestor", payment_platforms=PLATFORM
    )
    async with RequestorDaemon(config, Identity.generate()) as daemon:
        _, key = daemon.app_keys.create("tests", daemon.node_id)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as http:
            yield RequestorRest(daemon.url, daemon.node_id, http)


@pytest.fixture
def package(file_server: FileServer) -> str:  # noqa: F811
    """A real WASI module served over HTTP, named as an agreement's task package."""
    module = build_module("hello")
    file_server.files["hello.wasm"] = module
    return f"hash:sha3:{hashlib.sha3_224(module).hexdigest()}:{file_server.url}/hello.wasm"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "") -> None:
    """Poll ``check`` until it holds (deadline-bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what or check}"
        await asyncio.sleep(0.1)
