"""Asynchronous JSON-RPC access to one EVM network: the driver's only I/O seam towards the chain.

:class:`Chain` wraps web3's ``AsyncWeb3(AsyncHTTPProvider)`` and answers in plain Python values
(ints, bytes, :class:`Receipt`), so nothing above it handles web3 types or exceptions. Foreign
errors are translated here: an endpoint that does not answer is a :class:`ChainUnavailableError`
(after trying every configured URL in turn); a raw transaction the node refuses is a
:class:`TxRefusedError` whose :attr:`~TxRefusedError.kind` says what the sender should make of it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import ClientError, ClientTimeout
from eth_utils.address import to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import (
    BadResponseFormat,
    ContractLogicError,
    ProviderConnectionError,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.middleware import ExtraDataToPOAMiddleware

from payments.erc20.calls import LogEntry, allowance_call, balance_of_call, decode_uint
from payments.errors import DriverError
from payments.networks import Network

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class ChainUnavailableError(DriverError):
    """No RPC endpoint of the network answered (or answered nonsense); try again later."""


class ChainCallError(DriverError):
    """The node answered with an error to a call the driver needed (a reverted ``eth_call``...)."""


class RefusalKind(Enum):
    """How the sender should read a node's refusal of a raw transaction."""

    KNOWN = "known"
    """The node already has this very transaction: nothing to do."""
    NONCE_USED = "nonce used"
    """The nonce is already taken on chain: a receipt will tell which transaction took it."""
    UNDERPRICED = "underpriced"
    """Fees too low for the pool (a same-nonce transaction with higher fees, or under the base fee)."""
    FUNDS = "funds"
    """The account cannot pay ``gas * maxFee``."""
    OTHER = "other"
    """Anything else; the message says what."""


class TxRefusedError(DriverError):
    """The node refused a raw transaction."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.kind = classify_refusal(message)


def classify_refusal(message: str) -> RefusalKind:
    """Read a node's error message (geth, anvil and erigon word these differently)."""
    text = message.lower()
    if "already known" in text or "already imported" in text or "known transaction" in text:
        return RefusalKind.KNOWN
    if "nonce too low" in text or "nonce has already been used" in text:
        return RefusalKind.NONCE_USED
    if "underpriced" in text or "less than block base fee" in text or "fee too low" in text:
        return RefusalKind.UNDERPRICED
    if "insufficient funds" in text:
        return RefusalKind.FUNDS
    return RefusalKind.OTHER


def public_url(url: str) -> str:
    """An RPC URL without what may be a secret (API keys ride in paths, queries and user info)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "<rpc>"
    port = f":{parts.port}" if parts.port else ""
    hidden = "/…" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{parts.hostname}{port}{hidden}"


@dataclass(frozen=True)
class Receipt:
    """The parts of a transaction receipt the driver reads."""

    tx_hash: str
    status: int
    block_number: int
    sender: str
    to: str | None
    gas_used: int
    effective_gas_price: int
    logs: tuple[LogEntry, ...]


@dataclass(frozen=True)
class Head:
    """The latest block: its number and base fee."""

    number: int
    base_fee: int


def _without_urls(text: str) -> str:
    # aiohttp names the URL it failed on, secrets and all.
    return re.sub(r"[a-z][a-z0-9+.-]*://\S+", lambda m: public_url(m.group(0)), text)


def _rpc_message(exc: Web3RPCError) -> str:
    response = exc.rpc_response or {}
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(exc.message if hasattr(exc, "message") else exc)


class Chain:
    """JSON-RPC access to one network, failing over between its RPC URLs in order."""

    def __init__(self, network: Network, *, timeout: float = 10.0) -> None:
        if not network.rpc_urls:
            raise DriverError(f"network {network.name} has no RPC URL")
        self.network = network
        self._timeout = timeout
        self._clients = [self._client(url) for url in network.rpc_urls]
        self._current = 0

    def _client(self, url: str) -> AsyncWeb3[AsyncHTTPProvider]:
        provider = AsyncHTTPProvider(
            url,
            request_kwargs={"timeout": ClientTimeout(total=self._timeout)},
            # We fail over between URLs ourselves; web3's own retries would multiply the wait.
            exception_retry_configuration=None,
        )
        # No default middleware: we format our own requests, and the validation and ENS layers
        # cost extra round trips (eth_chainId) on every call.
        w3: AsyncWeb3[AsyncHTTPProvider] = AsyncWeb3(provider, middleware=[])
        if self.network.poa_extra_data:
            w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        return w3

    @property
    def rpc_url(self) -> str:
        """The endpoint in use, safe to show (see :func:`public_url`)."""
        return public_url(self.network.rpc_urls[self._current])

    async def close(self) -> None:
        for w3 in self._clients:
            await w3.provider.disconnect()

    async def _use(self, call: Callable[[AsyncWeb3[AsyncHTTPProvider]], Awaitable[_T]], what: str) -> _T:
        errors = []
        for step in range(len(self._clients)):
            index = (self._current + step) % len(self._clients)
            try:
                result = await call(self._clients[index])
            except (Web3RPCError, ContractLogicError):
                raise  # the node answered; the caller reads the error
            except (ClientError, OSError, ProviderConnectionError, BadResponseFormat) as exc:
                where = public_url(self.network.rpc_urls[index])
                errors.append(f"{where}: {type(exc).__name__}: {_without_urls(str(exc))}".rstrip(": "))
                continue
            if index != self._current:
                log.warning(
                    "%s: RPC failed over to %s", self.network.name, public_url(self.network.rpc_urls[index])
                )
                self._current = index
            return result
        raise ChainUnavailableError(f"{self.network.name}: {what} failed: {'; '.join(errors)}")

    async def _read(self, call: Callable[[AsyncWeb3[AsyncHTTPProvider]], Awaitable[_T]], what: str) -> _T:
        try:
            return await self._use(call, what)
        except Web3RPCError as exc:
            raise ChainCallError(f"{self.network.name}: {what}: {_rpc_message(exc)}") from None
        except Web3Exception as exc:
            raise ChainCallError(f"{self.network.name}: {what}: {exc}") from None

    # --- reads ------------------------------------------------------------------------------------

    async def chain_id(self) -> int:
        return await self._read(lambda w3: w3.eth.chain_id, "eth_chainId")

    async def head(self) -> Head:
        block = await self._read(lambda w3: w3.eth.get_block("latest"), "eth_getBlockByNumber")
        return Head(number=int(block["number"]), base_fee=int(block.get("baseFeePerGas", 0)))

    async def block_number(self) -> int:
        return int(await self._read(lambda w3: w3.eth.block_number, "eth_blockNumber"))

    async def gas_balance(self, address: str) -> int:
        checksum = to_checksum_address(address)
        return int(await self._read(lambda w3: w3.eth.get_balance(checksum, "latest"), "eth_getBalance"))

    async def nonce(self, address: str, block: str = "latest") -> int:
        """Transactions ``address`` has sent: mined (``latest``) or also in the pool (``pending``)."""
        checksum = to_checksum_address(address)
        return int(
            await self._read(
                lambda w3: w3.eth.get_transaction_count(checksum, block),  # type: ignore[arg-type]
                "eth_getTransactionCount",
            )
        )

    async def _call(self, to: str, data: bytes, what: str) -> bytes:
        params: Any = {"to": to_checksum_address(to), "data": data}
        result = await self._read(lambda w3: w3.eth.call(params, "latest"), what)
        return bytes(result)

    async def token_balance(self, owner: str) -> int:
        result = await self._call(self.network.token_address, balance_of_call(owner), "balanceOf")
        try:
            return decode_uint(result)
        except ValueError as exc:
            raise ChainCallError(
                f"{self.network.name}: balanceOf on {self.network.token_address} answered "
                f"{result.hex()}: {exc}"
            ) from None

    async def allowance(self, owner: str, spender: str) -> int:
        result = await self._call(self.network.token_address, allowance_call(owner, spender), "allowance")
        try:
            return decode_uint(result)
        except ValueError as exc:
            raise ChainCallError(f"{self.network.name}: allowance answered {result.hex()}: {exc}") from None

    async def estimate_gas(self, sender: str, to: str, data: bytes) -> int:
        params: Any = {"from": to_checksum_address(sender), "to": to_checksum_address(to), "data": data}
        return int(await self._read(lambda w3: w3.eth.estimate_gas(params), "eth_estimateGas"))

    async def knows(self, tx_hash: str) -> bool:
        """Whether the node has this transaction, pending or mined."""

        async def get(w3: AsyncWeb3[AsyncHTTPProvider]) -> bool:
            try:
                await w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                return False
            return True

        return await self._read(get, "eth_getTransactionByHash")

    async def receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt of a mined transaction; ``None`` while it is pending or if it is unknown."""

        async def get(w3: AsyncWeb3[AsyncHTTPProvider]) -> Any:
            try:
                return await w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                return None

        raw = await self._read(get, "eth_getTransactionReceipt")
        if raw is None or raw.get("blockNumber") is None:
            return None
        try:
            return Receipt(
                tx_hash=tx_hash.lower(),
                status=int(raw["status"]),
                block_number=int(raw["blockNumber"]),
                sender=str(raw["from"]).lower(),
                to=None if raw.get("to") is None else str(raw["to"]).lower(),
                gas_used=int(raw["gasUsed"]),
                effective_gas_price=int(raw.get("effectiveGasPrice", 0)),
                logs=tuple(
                    LogEntry(
                        address=str(entry["address"]).lower(),
                        topics=tuple(bytes(t) for t in entry["topics"]),
                        data=bytes(entry["data"]),
                    )
                    for entry in raw["logs"]
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainUnavailableError(
                f"{self.network.name}: malformed receipt for {tx_hash}: {exc}"
            ) from None

    # --- writes -----------------------------------------------------------------------------------

    async def send_raw(self, raw: bytes) -> str:
        """Broadcast a signed transaction; its hash. :class:`TxRefusedError` if the node refuses it."""
        try:
            tx_hash = await self._use(lambda w3: w3.eth.send_raw_transaction(raw), "eth_sendRawTransaction")
        except Web3RPCError as exc:
            raise TxRefusedError(_rpc_message(exc)) from None
        return "0x" + bytes(tx_hash).hex()

    async def rpc(self, method: str, *params: Any) -> Any:
        """Any other JSON-RPC method (tests and tools: ``anvil_*``, ``evm_mine``, ``txpool_status``)."""

        async def request(w3: AsyncWeb3[AsyncHTTPProvider]) -> Any:
            response = await w3.provider.make_request(method, list(params))
            if "error" in response:
                raise ChainCallError(f"{self.network.name}: {method}: {response['error']}")
            return response.get("result")

        return await self._use(request, method)
