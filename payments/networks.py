"""The network table: every EVM network the ERC-20 driver can pay on, and how configuration moves it.

Values come from Golem's own payment configuration (see ``shared/spec/payments.md`` §A1). A platform
is named ``erc20-<network>-<token>`` (``erc20-holesky-tglm``, ``erc20-polygon-glm``). Nothing here
is read at import time from the environment: :func:`network` applies the overrides yagna itself
honours (``HOLESKY_GETH_ADDR``, ``HOLESKY_TGLM_CONTRACT_ADDRESS``, ...), so a local anvil chain can
stand in for any network under that network's real platform name, and a public testnet is reached
by configuration alone.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from payments.errors import InvalidInputError

DRIVER = "erc20"


@dataclass(frozen=True)
class Network:
    """One EVM network and Golem's token on it."""

    name: str
    chain_id: int
    rpc_urls: tuple[str, ...]
    token_address: str
    token_symbol: str
    """``GLM`` on mainnets, ``tGLM`` on testnets; lower-cased in platform names."""
    gas_coin: str
    multi_transfer_address: str | None
    """The batch contract; ``None`` means every payee gets a plain ``transfer``."""
    faucet_address: str | None
    """The token's mint contract (``create()``), testnets only."""
    confirmations: int
    priority_fee_gwei: Decimal
    max_fee_gwei: Decimal
    """The cap on ``maxFeePerGas``: the driver never offers more than this."""
    testnet: bool
    transaction_timeout: float = 100.0
    """Seconds a sent transaction may stay unmined before it counts as stuck."""
    poa_extra_data: bool = False
    """Blocks carry a long ``extraData`` (Polygon); web3 needs its proof-of-authority middleware."""

    @property
    def token(self) -> str:
        return self.token_symbol.lower()

    @property
    def platform(self) -> str:
        return f"{DRIVER}-{self.name}-{self.token}"

    @property
    def env_prefix(self) -> str:
        return self.name.upper()


# Addresses are Golem's deployments (yagna config-payments.toml); RPC URLs are public endpoints a
# fresh install can start from, replaced with `<NET>_GETH_ADDR`.
NETWORKS: Mapping[str, Network] = {
    n.name: n
    for n in (
        Network(
            name="mainnet",
            chain_id=1,
            rpc_urls=("https://ethereum-rpc.publicnode.com",),
            token_address="0x7DD9c5Cba05E151C895FDe1CF355C9A1D5DA6429",
            token_symbol="GLM",
            gas_coin="ETH",
            multi_transfer_address="0xCfD497F7D111F14c3eF7eBEeE63771d1506f0AF8",
            faucet_address=None,
            confirmations=1,
            priority_fee_gwei=Decimal("1.01"),
            max_fee_gwei=Decimal(40),
            testnet=False,
        ),
        Network(
            name="polygon",
            chain_id=137,
            rpc_urls=("https://polygon-rpc.com",),
            token_address="0x0B220b82F3eA3B7F6d9A1D8ab58930C064A2b5Bf",
            token_symbol="GLM",
            gas_coin="POL",
            multi_transfer_address="0x50100d4faf5f3b09987dea36dc2eddd57a3e561b",
            faucet_address=None,
            confirmations=1,
            priority_fee_gwei=Decimal("25.011"),
            max_fee_gwei=Decimal(500),
            testnet=False,
            poa_extra_data=True,
        ),
        Network(
            name="holesky",
            chain_id=17000,
            rpc_urls=("https://ethereum-holesky-rpc.publicnode.com",),
            token_address="0x8888888815bf4DB87e57B609A50f938311EEd068",
            token_symbol="tGLM",
            gas_coin="tETH",
            multi_transfer_address="0xAaAAAaA00E1841A63342db7188abA84BDeE236c7",
            faucet_address="0xFACe100969FF47EB58d2CF603321B581A84bcEaC",
            confirmations=0,
            priority_fee_gwei=Decimal("0.000001"),
            max_fee_gwei=Decimal(20),
            testnet=True,
        ),
        Network(
            name="hoodi",
            chain_id=560048,
            rpc_urls=("https://ethereum-hoodi-rpc.publicnode.com",),
            token_address="0x55555555555556AcFf9C332Ed151758858bd7a26",
            token_symbol="tGLM",
            gas_coin="tETH",
            multi_transfer_address="0x222222222220C9269Cfb43eD434888F604d1dC21",
            faucet_address="0x500F965199C63865A3E666cA3fF55B64F1c8Bc8b",
            confirmations=0,
            priority_fee_gwei=Decimal("0.000001"),
            max_fee_gwei=Decimal(20),
            testnet=True,
        ),
        Network(
            name="sepolia",
            chain_id=11155111,
            rpc_urls=("https://ethereum-sepolia-rpc.publicnode.com",),
            token_address="0x167b15ada84c63427c6c813B915a42eFC72E7175",
            token_symbol="tGLM",
            gas_coin="tETH",
            multi_transfer_address=None,
            faucet_address="0x31A2a20956a40c2F358Fa5cec59D55a9C5d6fF9A",
            confirmations=0,
            priority_fee_gwei=Decimal("0.000001"),
            max_fee_gwei=Decimal(20),
            testnet=True,
        ),
        Network(
            name="amoy",
            chain_id=80002,
            rpc_urls=("https://rpc-amoy.polygon.technology",),
            token_address="0x2b60e60d3fb0b36a7ccb388f9e71570da4c4594f",
            token_symbol="tGLM",
            gas_coin="POL",
            multi_transfer_address="0xa0a51642a594763d78091bf03ee6bf8e8d663bba",
            faucet_address="0xf29ff8a13211ac33861986e407190ae5c773d53c",
            confirmations=1,
            priority_fee_gwei=Decimal("30.111"),
            max_fee_gwei=Decimal(500),
            testnet=True,
            poa_extra_data=True,
        ),
    )
}

DEFAULT_NETWORK = "holesky"
"""What yapapi 0.13.1 asks for when ``YAGNA_PAYMENT_NETWORK`` is unset."""


def _decimal(value: str, variable: str) -> Decimal:
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise InvalidInputError(f"{variable}={value!r} is not a number") from None
    if not parsed.is_finite() or parsed < 0:
        raise InvalidInputError(f"{variable}={value!r} must be a non-negative number")
    return parsed


def _address(value: str, variable: str) -> str:
    text = value.strip()
    body = text.removeprefix("0x")
    if len(body) != 40 or not all(c in "0123456789abcdefABCDEF" for c in body):
        raise InvalidInputError(f"{variable}={value!r} is not a 20-byte hex address")
    return "0x" + body


def _rpc_urls(value: str, variable: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in value.split(",") if u.strip())
    if not urls:
        raise InvalidInputError(f"{variable}={value!r} names no RPC URL")
    for url in urls:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest:
            raise InvalidInputError(f"{variable}={value!r}: {url!r} is not an http(s) URL")
    return urls


def network(name: str, env: Mapping[str, str] | None = None) -> Network:
    """The named network with yagna's environment overrides applied (``env`` defaults to os.environ).

    ``<NET>_GETH_ADDR`` (comma-separated RPC URLs), ``<NET>_<TGLM|GLM>_CONTRACT_ADDRESS``,
    ``<NET>_TGLM_FAUCET_ADDRESS``, ``<NET>_MULTI_PAYMENT_CONTRACT_ADDRESS``, ``<NET>_PRIORITY_FEE``
    and ``<NET>_MAX_FEE_PER_GAS`` (gwei), ``ERC20_<NET>_REQUIRED_CONFIRMATIONS``. A malformed value
    is an :class:`InvalidInputError` naming the variable, never silently ignored.
    """
    base = NETWORKS.get(name.lower())
    if base is None:
        raise InvalidInputError(f"unknown payment network {name!r}; known: {', '.join(NETWORKS)}")
    env = os.environ if env is None else env
    prefix = base.env_prefix
    changes: dict[str, object] = {}
    variable = f"{prefix}_GETH_ADDR"
    if urls := env.get(variable):
        changes["rpc_urls"] = _rpc_urls(urls, variable)
    token_var = f"{prefix}_{base.token_symbol.upper()}_CONTRACT_ADDRESS"
    if value := env.get(token_var):
        changes["token_address"] = _address(value, token_var)
    for variable, field in (
        (f"{prefix}_TGLM_FAUCET_ADDRESS", "faucet_address"),
        (f"{prefix}_MULTI_PAYMENT_CONTRACT_ADDRESS", "multi_transfer_address"),
    ):
        if value := env.get(variable):
            changes[field] = _address(value, variable)
    for variable, field in (
        (f"{prefix}_PRIORITY_FEE", "priority_fee_gwei"),
        (f"{prefix}_MAX_FEE_PER_GAS", "max_fee_gwei"),
    ):
        if value := env.get(variable):
            changes[field] = _decimal(value, variable)
    variable = f"ERC20_{prefix}_REQUIRED_CONFIRMATIONS"
    if value := env.get(variable):
        if not (value.isascii() and value.isdigit()):
            raise InvalidInputError(f"{variable}={value!r} must be a whole number of blocks")
        changes["confirmations"] = int(value)
    return dataclasses.replace(base, **changes) if changes else base  # type: ignore[arg-type]


def parse_platform(platform: str) -> tuple[str, str]:
    """``erc20-holesky-tglm`` → ``("holesky", "tglm")``; an error for anything else."""
    parts = platform.split("-")
    if len(parts) != 3 or parts[0] != DRIVER:
        raise InvalidInputError(f"{platform!r} is not an ERC-20 platform (erc20-<network>-<token>)")
    return parts[1], parts[2]


def network_for_platform(platform: str, env: Mapping[str, str] | None = None) -> Network:
    """The network a platform string names, checking its token matches the table's."""
    name, token = parse_platform(platform)
    net = network(name, env)
    if net.token != token:
        raise InvalidInputError(f"network {name} pays in {net.token}, not {token} ({platform!r})")
    return net


def env_overrides(name: str, *, rpc_url: str, token: str, faucet: str, multi: str) -> dict[str, str]:
    """The environment that points network ``name`` at a local chain (what the devnet exports)."""
    prefix = NETWORKS[name].env_prefix
    symbol = NETWORKS[name].token_symbol.upper()
    return {
        f"{prefix}_GETH_ADDR": rpc_url,
        f"{prefix}_{symbol}_CONTRACT_ADDRESS": token,
        f"{prefix}_TGLM_FAUCET_ADDRESS": faucet,
        f"{prefix}_MULTI_PAYMENT_CONTRACT_ADDRESS": multi,
        f"ERC20_{prefix}_REQUIRED_CONFIRMATIONS": "0",
    }
