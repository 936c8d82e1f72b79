"""Fixtures of the ERC-20 driver tests: one real anvil chain for the session, funded accounts, drivers.

The chain stands in for Holesky (chain id 17000) with our token and batch contract deployed; each
test gets a fresh payer (so its nonce, allowance and balances start clean) and drivers on its own
SQLite files. Tests that stop automining or move the base fee restore the chain when they end, so
the next test finds a chain that mines every transaction at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from market.core.clock import Clock, FakeClock
from payments import devchain
from payments.contracts import load
from payments.devchain import ChainInfo
from payments.erc20 import Erc20Driver, SenderSettings
from payments.networks import Network, network

WEI = 10**18

FAST = SenderSettings(cycle_interval=60, due_margin=30, poll_interval=0.02, retry_interval=5)
"""Test settings: cycles every 60 s of the test's (fake) clock, the chain polled every 20 ms."""


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainInfo]:
    folder = tmp_path_factory.mktemp("anvil")
    info = devchain.start(folder)
    yield info
    devchain.stop(folder)


@pytest.fixture(scope="session")
def w3(chain: ChainInfo) -> Web3:
    return devchain.connect(chain.rpc_url)


@pytest.fixture
def holesky(chain: ChainInfo) -> Network:
    return network("holesky", chain.env())


@pytest.fixture
def payer(chain: ChainInfo) -> LocalAccount:
    account: LocalAccount = Account.create()
    devchain.fund(chain, account.key.hex())
    return account


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


DriverFactory = Callable[..., Awaitable[Erc20Driver]]


@pytest.fixture
async def make_driver(tmp_path: Path, holesky: Network, payer: LocalAccount) -> AsyncIterator[DriverFactory]:
    """``await make_driver(name, account=payer, clock=None, settings=FAST, net=holesky, start=True)``."""
    made: list[Erc20Driver] = []

    async def make(
        name: str = "requestor",
        *,
        account: LocalAccount | None = payer,
        clock: Clock | None = None,
        settings: SenderSettings = FAST,
        net: Network = holesky,
        start: bool = True,
    ) -> Erc20Driver:
        driver = Erc20Driver(
            database=tmp_path / f"{name}.db", networks=[net], account=account, clock=clock, settings=settings
        )
        made.append(driver)
        if start:
            await driver.start()
        return driver

    yield make
    for driver in made:
        await driver.close()


class Confirmations:
    """A listener that records ``(order_id, tx_hash)`` and can be told to fail."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.failures_left = 0

    async def __call__(self, order_id: str, details: str) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("listener down")
        self.seen.append((order_id, details))

    @property
    def orders(self) -> dict[str, str]:
        return dict(self.seen)

    async def wait(self, count: int, timeout: float = 15.0) -> list[tuple[str, str]]:
        await wait_for(lambda: len(self.seen) >= count, timeout, f"{count} confirmation(s), got {self.seen}")
        return self.seen


async def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def token(w3: Web3, info: ChainInfo, address: str | None = None) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(address or info.token), abi=load("TestGLM").abi)


def token_wei(w3: Web3, info: ChainInfo, holder: str) -> int:
    return int(token(w3, info).functions.balanceOf(Web3.to_checksum_address(holder)).call())


def nonce(w3: Web3, address: str, block: str = "pending") -> int:
    return int(w3.eth.get_transaction_count(Web3.to_checksum_address(address), block))  # type: ignore[arg-type]


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    response = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response["result"]


def send(w3: Web3, account: LocalAccount, tx: dict[str, Any], *, mined: bool = True) -> str:
    """Sign and send a transaction from ``account``, as something other than the driver would; wait
    until it is mined unless ``mined`` is false (anvil mines just after it answers, not before)."""
    tx = {"chainId": w3.eth.chain_id, "from": account.address, **tx}
    tx.setdefault("nonce", nonce(w3, account.address))
    tx.setdefault("maxPriorityFeePerGas", 1000)
    tx.setdefault("maxFeePerGas", 2 * int(w3.eth.get_block("latest")["baseFeePerGas"]) + 1000)
    if "gas" not in tx:
        tx["gas"] = w3.eth.estimate_gas(tx) + 20_000  # type: ignore[arg-type]
    tx.pop("from")
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    if mined:
        w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10, poll_latency=0.01)
    return "0x" + bytes(tx_hash).hex()


@pytest.fixture
def manual_mining(w3: Web3) -> Iterator[Callable[[], None]]:
    """Stop automining for one test; the fixture's value mines one block. Restored afterwards."""
    rpc(w3, "anvil_setAutomine", False)
    yield lambda: rpc(w3, "evm_mine")
    rpc(w3, "evm_mine")
    rpc(w3, "anvil_setAutomine", True)


def set_base_fee(w3: Web3, wei: int) -> None:
    """Mine a block whose base fee is ``wei`` (the latest block is what the driver prices against)."""
    rpc(w3, "anvil_setNextBlockBaseFeePerGas", hex(wei))
    rpc(w3, "evm_mine")
    assert int(w3.eth.get_block("latest")["baseFeePerGas"]) == wei


def with_cap(net: Network, gwei: Decimal) -> Network:
    return dataclasses.replace(net, max_fee_gwei=gwei)
