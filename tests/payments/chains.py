"""A real anvil chain for the payment tests, and small helpers to send transactions on it.

The chain is :func:`payments.devchain.start`'s, in a test's own folder on a free port; it is
stopped when the test (or module) ends. There is no skip when anvil is missing: ``scripts/setup``
installs it, and a test that quietly skips cannot fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_typing import ChecksumAddress
from web3 import Web3

from payments import devchain
from payments.devchain import ChainInfo

WEI = 10**18


@contextmanager
def local_chain(folder: Path, network: str = "holesky") -> Iterator[ChainInfo]:
    info = devchain.start(folder, network=network)
    try:
        yield info
    finally:
        devchain.stop(folder)


def new_key(w3: Web3, gas_coin: Decimal = Decimal(10)) -> str:
    """A fresh account with ``gas_coin`` ETH (anvil_setBalance) and no tokens."""
    account = Account.create()
    if gas_coin:
        devchain.set_gas_balance(w3, account.address, gas_coin)
    return str(account.key.to_0x_hex())


def address_of(key: str) -> ChecksumAddress:
    return Web3.to_checksum_address(Account.from_key(key).address)


def send(w3: Web3, key: str, call: Any, *, gas: int | None = None) -> Any:
    """Sign and send a contract call from ``key``; its receipt, whatever its status.

    With ``gas`` given the node does not estimate first, so a call that reverts is mined (status 0)
    instead of being refused at estimation.
    """
    sender = address_of(key)
    params: dict[str, Any] = {"from": sender, "nonce": w3.eth.get_transaction_count(sender, "pending")}
    if gas is not None:
        params["gas"] = gas
    tx = call.build_transaction(params)
    signed = Account.from_key(key).sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
