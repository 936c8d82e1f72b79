"""Calldata for the few contract calls the driver makes, and decoding of ERC-20 ``Transfer`` logs.

Encoded by hand with ``eth_abi`` rather than through web3 contract objects: the driver needs five
fixed signatures, and plain functions keep this pure (no provider) and cheap inside a payment cycle.
The signatures are those of any ERC-20 token and of Golem's multi-transfer contract, so the same
calls work against Golem's deployments and against our own test contracts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eth_abi.abi import decode, encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.crypto import keccak

from payments.erc20.batching import Entry, pack_entry
from payments.erc20.units import MAX_UINT256, normalize_address

TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")
"""topic0 of an ERC-20 ``Transfer`` event (``0xddf252ad...``)."""

_TRANSFER = function_signature_to_4byte_selector("transfer(address,uint256)")
_APPROVE = function_signature_to_4byte_selector("approve(address,uint256)")
_BALANCE_OF = function_signature_to_4byte_selector("balanceOf(address)")
_ALLOWANCE = function_signature_to_4byte_selector("allowance(address,address)")
_BATCH = function_signature_to_4byte_selector("golemTransferDirectPacked(bytes32[])")

UNLIMITED_ALLOWANCE = MAX_UINT256
ALLOWANCE_ENOUGH = 2**255
"""An allowance at least this large counts as the one-time approval (as Golem's library checks)."""


def transfer_call(payee: str, amount_wei: int) -> bytes:
    return _TRANSFER + encode(["address", "uint256"], [normalize_address(payee), amount_wei])


def batch_call(entries: Sequence[Entry]) -> bytes:
    return _BATCH + encode(["bytes32[]"], [[pack_entry(e.payee, e.amount_wei) for e in entries]])


def approve_call(spender: str, amount_wei: int = UNLIMITED_ALLOWANCE) -> bytes:
    return _APPROVE + encode(["address", "uint256"], [normalize_address(spender), amount_wei])


def balance_of_call(owner: str) -> bytes:
    return _BALANCE_OF + encode(["address"], [normalize_address(owner)])


def allowance_call(owner: str, spender: str) -> bytes:
    return _ALLOWANCE + encode(["address", "address"], [normalize_address(owner), normalize_address(spender)])


def decode_uint(result: bytes) -> int:
    """The single ``uint256`` an ``eth_call`` of ``balanceOf``/``allowance`` returns."""
    if len(result) != 32:
        raise ValueError(f"expected one 32-byte word, got {len(result)} bytes")
    (value,) = decode(["uint256"], result)
    return int(value)


@dataclass(frozen=True)
class LogEntry:
    """One log of a receipt, as the node reported it."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class TokenTransfer:
    """A decoded ERC-20 ``Transfer`` log."""

    token: str
    sender: str
    receiver: str
    value: int


def transfers_in(logs: Iterable[LogEntry]) -> list[TokenTransfer]:
    """Every well-formed ``Transfer(address,address,uint256)`` log, of any contract, lower-case addresses.

    A log with the right topic but the wrong shape (an ERC-721 ``Transfer`` indexes its third
    argument) is skipped rather than guessed at.
    """
    found = []
    for log in logs:
        if len(log.topics) != 3 or log.topics[0] != TRANSFER_TOPIC or len(log.data) != 32:
            continue
        found.append(
            TokenTransfer(
                token=log.address.lower(),
                sender="0x" + log.topics[1][-20:].hex(),
                receiver="0x" + log.topics[2][-20:].hex(),
                value=int.from_bytes(log.data, "big"),
            )
        )
    return found
