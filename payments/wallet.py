"""One account on one network: what it holds, and test funds from the network's faucets.

``golem payments status`` and ``golem payments fund`` stand on this module. The network comes from
:func:`payments.networks.network` (the table plus yagna's environment overrides), so the same code
reads a local anvil chain, Holesky or Hoodi depending on configuration alone. Every failure of the
RPC or the chain is translated here into a :class:`ChainUnreachableError` or a
:class:`FundingError` whose message says what to do about it; web3's own exceptions do not leave
this module.

Funding follows ``yagna payment fund --mint-only``: on a public testnet the account pays the gas of
the faucet contract's ``create()`` itself, so it needs some gas coin first, which only a public
faucet can give. On a local anvil chain both come at once (:func:`payments.devchain.fund_account`).
Mainnets are never funded automatically.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound, Web3Exception
from web3.middleware import ExtraDataToPOAMiddleware
from web3.types import TxParams, Wei

from payments import devchain
from payments.allocation import MONEY
from payments.contracts import load
from payments.errors import DriverError, PaymentError
from payments.networks import Network

FAUCET_LIMIT = Decimal(1000)
"""The faucet mints only to an account holding fewer tokens than this (NGNTFaucet, our TestGLM)."""
GAS_MARGIN = 20_000
"""Added to every gas estimate, as Golem's payment library does: estimates can move before mining."""
RPC_TIMEOUT = 10.0

FAUCET_ABI: list[dict[str, Any]] = [
    {"name": "create", "type": "function", "inputs": [], "outputs": [], "stateMutability": "nonpayable"}
]
"""The one function of Golem's mint contract (``faucet.json``) this module calls."""

GAS_FAUCETS = {
    "holesky": "a Holesky faucet such as https://holesky-faucet.pk910.de",
    "hoodi": "a Hoodi faucet such as https://hoodi-faucet.pk910.de",
    "sepolia": "a Sepolia faucet such as https://sepolia-faucet.pk910.de",
    "amoy": "the Polygon faucet, https://faucet.polygon.technology",
}
"""Where a person gets a testnet's gas coin; no contract can hand it out, so this is advice."""


class ChainUnreachableError(DriverError):
    """No RPC URL of the network answered as that network (down, wrong URL, wrong chain)."""


class FundingError(PaymentError):
    """Test funds could not be obtained; the message says why and what to do instead."""


@dataclass(frozen=True)
class Balances:
    """What one address holds on one network, in whole coins and tokens (not wei)."""

    address: str
    gas_coin: Decimal
    token: Decimal


@dataclass(frozen=True)
class FundResult:
    """What :func:`fund` did."""

    network: str
    method: str
    """``devnet`` (anvil: gas coin set, faucet called), ``faucet`` (public testnet mint contract) or
    ``none`` (the account already held as much as the faucet would allow)."""
    before: Balances
    after: Balances
    tx_hash: str | None = None


def from_wei(wei: int) -> Decimal:
    """An exact decimal amount of an 18-decimal token (no float, no 28-digit rounding)."""
    return MONEY.normalize(Decimal(wei).scaleb(-18, MONEY))


def _gwei_to_wei(gwei: Decimal) -> int:
    return int(MONEY.multiply(gwei, Decimal(10**9)))


def _to_gwei(wei: int) -> Decimal:
    return MONEY.normalize(Decimal(wei).scaleb(-9, MONEY))


def _reason(exc: BaseException) -> str:
    """A one-line reason from requests'/web3's nested messages ("[Errno 111] Connection refused")."""
    text = str(exc)
    if errno := re.search(r"\[Errno -?\d+\] [^'\")\]]+", text):
        return errno.group(0)
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def _hint(net: Network) -> str:
    return (
        f"set {net.env_prefix}_GETH_ADDR to a {net.name} RPC URL, or for a local chain run "
        f"`golem devnet chain up --network {net.name}` and source its chain.env"
    )


def connect(net: Network, *, timeout: float = RPC_TIMEOUT) -> Web3:
    """A client for the first RPC URL of ``net`` that answers with ``net``'s chain id."""
    problems = []
    for url in net.rpc_urls:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
        if net.poa_extra_data:
            w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        try:
            chain_id = w3.eth.chain_id
        except Exception as exc:  # requests, web3 and JSON errors alike: the URL does not serve us
            problems.append(f"{url}: {_reason(exc)}")
            continue
        if chain_id != net.chain_id:
            problems.append(f"{url} serves chain {chain_id}, not {net.name} ({net.chain_id})")
            continue
        return w3
    raise ChainUnreachableError(f"cannot reach the {net.name} network ({'; '.join(problems)}); {_hint(net)}")


def is_anvil(w3: Web3) -> bool:
    """True when the node is anvil, a local development chain whose balances can be set at will."""
    try:
        return "anvil" in str(w3.client_version).lower()
    except Exception:  # a node without web3_clientVersion is certainly not anvil
        return False


def balances(w3: Web3, net: Network, address: str) -> Balances:
    """Gas coin and token balance of ``address`` on ``net``."""
    checksum = Web3.to_checksum_address(address)
    token = w3.eth.contract(address=Web3.to_checksum_address(net.token_address), abi=load("TestGLM").abi)
    try:
        gas = w3.eth.get_balance(checksum)
        held = token.functions.balanceOf(checksum).call()
    except Web3Exception as exc:  # the node answered, but not as a token contract would
        raise ChainUnreachableError(
            f"cannot read balances of {address} on {net.name}: {_reason(exc)} "
            f"(is {net.token_address} the {net.token_symbol} contract? {net.env_prefix}_"
            f"{net.token_symbol.upper()}_CONTRACT_ADDRESS overrides it)"
        ) from None
    except Exception as exc:
        raise ChainUnreachableError(f"{net.name} RPC failed: {_reason(exc)}") from None
    return Balances(checksum, from_wei(gas), from_wei(held))


def check_fundable(net: Network) -> None:
    """Refuse a mainnet at once, before a key is unlocked or an RPC is asked anything."""
    if not net.testnet:
        raise FundingError(
            f"network {net.name} does not support automatic funding: {net.token_symbol} and "
            f"{net.gas_coin} have to be bought and sent to the account"
        )


def fund(net: Network, key: str, *, devnet: bool | None = None) -> FundResult:
    """Get test funds for the account of ``key`` on ``net``.

    ``devnet`` says whether ``net``'s RPC is a local anvil chain; ``None`` asks the node. Raises
    :class:`FundingError` for a mainnet, an account without gas coin on a public testnet, a network
    without a faucet contract, or a faucet that refuses; :class:`ChainUnreachableError` when the
    RPC cannot be reached.
    """
    check_fundable(net)
    w3 = connect(net)
    address = Account.from_key(key).address
    before = balances(w3, net, address)
    local = is_anvil(w3) if devnet is None else devnet
    if local:
        faucet = net.faucet_address or net.token_address
        try:
            devchain.fund_account(w3, net.token_address, faucet, key)
        except devchain.ChainError as exc:
            raise FundingError(str(exc)) from None
        except Exception as exc:
            raise FundingError(f"funding {address} on the local chain failed: {_reason(exc)}") from None
        return FundResult(net.name, "devnet", before, balances(w3, net, address))
    if before.token >= FAUCET_LIMIT:
        return FundResult(net.name, "none", before, before)
    if before.gas_coin <= 0:
        where = GAS_FAUCETS.get(net.name, f"a {net.name} faucet")
        raise FundingError(
            f"{address} holds no {net.gas_coin} on {net.name}, and the {net.token_symbol} faucet "
            f"contract is called with the account's own gas: get some {net.gas_coin} from {where}, "
            "then run this again"
        )
    if net.faucet_address is None:
        raise FundingError(
            f"{net.name} has no {net.token_symbol} faucet contract; set "
            f"{net.env_prefix}_TGLM_FAUCET_ADDRESS to one"
        )
    tx_hash = _mint(w3, net, key, before)
    return FundResult(net.name, "faucet", before, balances(w3, net, address), tx_hash)


def _mint(w3: Web3, net: Network, key: str, before: Balances) -> str:
    """Call the faucet contract's ``create()`` from ``key``, wait until mined; the tx hash."""
    assert net.faucet_address is not None
    account = Account.from_key(key)
    faucet = w3.eth.contract(address=Web3.to_checksum_address(net.faucet_address), abi=FAUCET_ABI)
    try:
        call = faucet.functions.create()
        gas = call.estimate_gas({"from": account.address}) + GAS_MARGIN
        base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas", 0))
        nonce = w3.eth.get_transaction_count(account.address, "pending")
    except ContractLogicError as exc:
        raise FundingError(_refusal(net, before, exc)) from None
    except Web3Exception as exc:
        raise FundingError(f"the {net.name} node refused the faucet call: {_reason(exc)}") from None
    except Exception as exc:
        raise ChainUnreachableError(f"{net.name} RPC failed: {_reason(exc)}") from None
    priority = _gwei_to_wei(net.priority_fee_gwei)
    cap = _gwei_to_wei(net.max_fee_gwei)
    if base_fee + priority > cap:
        raise FundingError(
            f"the {net.name} base fee ({_to_gwei(base_fee)} gwei) is above the fee cap "
            f"({net.max_fee_gwei} gwei); wait, or raise {net.env_prefix}_MAX_FEE_PER_GAS"
        )
    max_fee = min(cap, 2 * base_fee + priority)
    cost = from_wei(gas * max_fee)
    if cost > before.gas_coin:
        raise FundingError(
            f"{account.address} holds {before.gas_coin} {net.gas_coin}, the faucet call may cost up to "
            f"{cost} {net.gas_coin}: get more from {GAS_FAUCETS.get(net.name, f'a {net.name} faucet')}"
        )
    params: TxParams = {
        "from": account.address,
        "nonce": nonce,
        "gas": gas,
        "maxFeePerGas": Wei(max_fee),
        "maxPriorityFeePerGas": Wei(priority),
        "chainId": net.chain_id,
    }
    tx = call.build_transaction(params)
    signed = account.sign_transaction(tx)
    try:
        sent = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = _wait_mined(w3, net, sent)
    except TimeExhausted:
        raise FundingError(
            f"the faucet transaction {signed.hash.to_0x_hex()} was not mined within "
            f"{net.transaction_timeout:.0f} s; check it later with `golem payments status`"
        ) from None
    except Web3Exception as exc:
        raise FundingError(f"the {net.name} node refused the faucet transaction: {_reason(exc)}") from None
    except Exception as exc:
        raise ChainUnreachableError(f"{net.name} RPC failed: {_reason(exc)}") from None
    tx_hash = str(signed.hash.to_0x_hex())
    if receipt["status"] != 1:
        raise FundingError(f"the faucet transaction {tx_hash} failed on chain")
    return tx_hash


def _refusal(net: Network, before: Balances, exc: ContractLogicError) -> str:
    reason = str(exc.message or exc)
    if "Cannot acquire more funds" in reason:
        return (
            f"the {net.token_symbol} faucet refused: Cannot acquire more funds (it mints only to "
            f"accounts holding fewer than {FAUCET_LIMIT} {net.token_symbol}; "
            f"{before.address} holds {before.token})"
        )
    return f"the {net.token_symbol} faucet refused: {reason}"


def _wait_mined(w3: Web3, net: Network, tx_hash: HexBytes) -> Any:
    """The receipt once the transaction has ``net.confirmations`` blocks on top of it.

    Polls quickly at first (a local chain mines at once) and backs off to one poll every 2 s, so a
    public RPC with a 12 s block time is not hammered.
    """
    deadline = time.monotonic() + net.transaction_timeout
    delay = 0.02
    receipt: Any = None
    while True:
        if receipt is None:
            with contextlib.suppress(TransactionNotFound):
                receipt = w3.eth.get_transaction_receipt(tx_hash)
        if receipt is not None and w3.eth.block_number >= receipt["blockNumber"] + net.confirmations:
            return receipt
        if time.monotonic() > deadline:
            raise TimeExhausted(f"not mined with {net.confirmations} confirmations in time")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
