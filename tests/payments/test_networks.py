"""The network table and yagna's environment overrides.

The table must hold Golem's own deployments (yagna ``config-payments.toml``), and every override
variable must move exactly its field, so that a local chain or a public testnet is reached by
configuration alone while the platform name stays the real one.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from payments.errors import InvalidInputError
from payments.networks import (
    DEFAULT_NETWORK,
    NETWORKS,
    env_overrides,
    network,
    network_for_platform,
    parse_platform,
)

# name: (chain id, platform, token, symbol, gas coin, multi-transfer, faucet, confirmations,
#        priority fee, max fee (gwei), testnet)
GOLEM = {
    "mainnet": (1, "erc20-mainnet-glm", "0x7DD9c5Cba05E151C895FDe1CF355C9A1D5DA6429", "GLM", "ETH",
                "0xCfD497F7D111F14c3eF7eBEeE63771d1506f0AF8", None, 1, "1.01", "40", False),
    "polygon": (137, "erc20-polygon-glm", "0x0B220b82F3eA3B7F6d9A1D8ab58930C064A2b5Bf", "GLM", "POL",
                "0x50100d4faf5f3b09987dea36dc2eddd57a3e561b", None, 1, "25.011", "500", False),
    "holesky": (17000, "erc20-holesky-tglm", "0x8888888815bf4DB87e57B609A50f938311EEd068", "tGLM", "tETH",
                "0xAaAAAaA00E1841A63342db7188abA84BDeE236c7", "0xFACe100969FF47EB58d2CF603321B581A84bcEaC",
                0, "0.000001", "20", True),
    "hoodi": (560048, "erc20-hoodi-tglm", "0x55555555555556AcFf9C332Ed151758858bd7a26", "tGLM", "tETH",
              "0x222222222220C9269Cfb43eD434888F604d1dC21", "0x500F965199C63865A3E666cA3fF55B64F1c8Bc8b",
              0, "0.000001", "20", True),
    "sepolia": (11155111, "erc20-sepolia-tglm", "0x167b15ada84c63427c6c813B915a42eFC72E7175", "tGLM", "tETH",
                None, "0x31A2a20956a40c2F358Fa5cec59D55a9C5d6fF9A", 0, "0.000001", "20", True),
    "amoy": (80002, "erc20-amoy-tglm", "0x2b60e60d3fb0b36a7ccb388f9e71570da4c4594f", "tGLM", "POL",
             "0xa0a51642a594763d78091bf03ee6bf8e8d663bba", "0xf29ff8a13211ac33861986e407190ae5c773d53c",
             1, "30.111", "500", True),
}  # fmt: skip

ADDRESS_A = "0x" + "a1" * 20
ADDRESS_B = "0x" + "b2" * 20
ADDRESS_C = "0x" + "c3" * 20


def test_the_table_holds_exactly_the_six_networks() -> None:
    assert set(NETWORKS) == set(GOLEM)
    assert DEFAULT_NETWORK == "holesky"


@pytest.mark.parametrize("name", sorted(GOLEM))
def test_table_values_are_golems_deployments(name: str) -> None:
    chain_id, platform, token, symbol, gas, multi, faucet, confirmations, priority, cap, testnet = GOLEM[name]
    net = network(name, {})
    assert net.name == name
    assert net.chain_id == chain_id
    assert net.platform == platform
    assert net.token_address == token
    assert net.token_symbol == symbol
    assert net.gas_coin == gas
    assert net.multi_transfer_address == multi
    assert net.faucet_address == faucet
    assert net.confirmations == confirmations
    assert net.priority_fee_gwei == Decimal(priority)
    assert net.max_fee_gwei == Decimal(cap)
    assert net.testnet is testnet
    assert net.rpc_urls and all(url.startswith("https://") for url in net.rpc_urls)
    assert net.env_prefix == name.upper()
    assert network_for_platform(platform, {}) == net
    assert parse_platform(platform) == (name, symbol.lower())


def test_polygon_chains_need_the_proof_of_authority_middleware() -> None:
    assert {n.name for n in NETWORKS.values() if n.poa_extra_data} == {"polygon", "amoy"}


def test_network_names_are_case_insensitive() -> None:
    assert network("Holesky", {}) == network("holesky", {})


# variable suffix → (field, value given, value expected)
OVERRIDES = [
    ("GETH_ADDR", "rpc_urls", "http://127.0.0.1:8545", ("http://127.0.0.1:8545",)),
    ("GETH_ADDR", "rpc_urls", " https://a.example/rpc , http://b.example:8545 ,",
     ("https://a.example/rpc", "http://b.example:8545")),
    ("{TOKEN}_CONTRACT_ADDRESS", "token_address", ADDRESS_A, ADDRESS_A),
    ("{TOKEN}_CONTRACT_ADDRESS", "token_address", ADDRESS_A.removeprefix("0x"), ADDRESS_A),
    ("TGLM_FAUCET_ADDRESS", "faucet_address", ADDRESS_B, ADDRESS_B),
    ("MULTI_PAYMENT_CONTRACT_ADDRESS", "multi_transfer_address", ADDRESS_C, ADDRESS_C),
    ("PRIORITY_FEE", "priority_fee_gwei", "1.5", Decimal("1.5")),
    ("MAX_FEE_PER_GAS", "max_fee_gwei", "123", Decimal(123)),
    ("ERC20_{NET}_REQUIRED_CONFIRMATIONS", "confirmations", "3", 3),
]  # fmt: skip


def _variable(suffix: str, name: str) -> str:
    net = NETWORKS[name]
    suffix = suffix.replace("{TOKEN}", net.token_symbol.upper())
    if "{NET}" in suffix:
        return suffix.replace("{NET}", net.env_prefix)
    return f"{net.env_prefix}_{suffix}"


@pytest.mark.parametrize("name", ["holesky", "mainnet", "amoy"])
@pytest.mark.parametrize(("suffix", "field", "given", "expected"), OVERRIDES)
def test_each_override_moves_exactly_its_field(
    name: str, suffix: str, field: str, given: str, expected: object
) -> None:
    variable = _variable(suffix, name)
    base = network(name, {})
    moved = network(name, {variable: given})
    assert getattr(moved, field) == expected
    untouched = {f: getattr(base, f) for f in base.__dataclass_fields__ if f != field}
    assert {f: getattr(moved, f) for f in untouched} == untouched
    assert moved.platform == base.platform


def test_variable_names_follow_yagna() -> None:
    env = {
        "HOLESKY_GETH_ADDR": "http://h:1",
        "HOLESKY_TGLM_CONTRACT_ADDRESS": ADDRESS_A,
        "MAINNET_GLM_CONTRACT_ADDRESS": ADDRESS_B,
        "ERC20_HOODI_REQUIRED_CONFIRMATIONS": "7",
    }
    assert network("holesky", env).rpc_urls == ("http://h:1",)
    assert network("holesky", env).token_address == ADDRESS_A
    assert network("mainnet", env).token_address == ADDRESS_B
    assert network("hoodi", env).confirmations == 7
    # A variable names one network and one token: nothing leaks to the others.
    assert network("hoodi", env).rpc_urls == NETWORKS["hoodi"].rpc_urls
    assert network("sepolia", env) == NETWORKS["sepolia"]
    assert network("mainnet", {"MAINNET_TGLM_CONTRACT_ADDRESS": ADDRESS_A}) == NETWORKS["mainnet"]


def test_an_empty_variable_counts_as_unset() -> None:
    assert network("holesky", {"HOLESKY_GETH_ADDR": "", "HOLESKY_PRIORITY_FEE": ""}) == NETWORKS["holesky"]


MALFORMED = [
    ("GETH_ADDR", ","),
    ("GETH_ADDR", "localhost:8545"),
    ("GETH_ADDR", "ftp://example.org"),
    ("GETH_ADDR", "http://ok.example, http://"),
    ("{TOKEN}_CONTRACT_ADDRESS", "0x1234"),
    ("{TOKEN}_CONTRACT_ADDRESS", "0x" + "zz" * 20),
    ("TGLM_FAUCET_ADDRESS", ADDRESS_A + "00"),
    ("MULTI_PAYMENT_CONTRACT_ADDRESS", "not an address"),
    ("PRIORITY_FEE", "cheap"),
    ("PRIORITY_FEE", "-1"),
    ("MAX_FEE_PER_GAS", "NaN"),
    ("MAX_FEE_PER_GAS", "Infinity"),
    ("ERC20_{NET}_REQUIRED_CONFIRMATIONS", "-1"),
    ("ERC20_{NET}_REQUIRED_CONFIRMATIONS", "1.5"),
    ("ERC20_{NET}_REQUIRED_CONFIRMATIONS", "two"),
    ("ERC20_{NET}_REQUIRED_CONFIRMATIONS", "²"),
]


@pytest.mark.parametrize(("suffix", "value"), MALFORMED)
def test_a_malformed_override_is_an_error_naming_the_variable(suffix: str, value: str) -> None:
    variable = _variable(suffix, "holesky")
    with pytest.raises(InvalidInputError) as caught:
        network("holesky", {variable: value})
    assert variable in str(caught.value)


def test_unknown_networks_and_platforms_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown payment network 'goerli'"):
        network("goerli", {})
    for platform in ("dummy-holesky-tglm", "erc20-holesky", "erc20-holesky-tglm-x"):
        with pytest.raises(InvalidInputError, match="not an ERC-20 platform"):
            parse_platform(platform)
    with pytest.raises(InvalidInputError, match="pays in tglm, not glm"):
        network_for_platform("erc20-holesky-glm", {})
    with pytest.raises(InvalidInputError, match="unknown payment network"):
        network_for_platform("erc20-rinkeby-tglm", {})


def test_a_public_testnet_is_reached_by_configuration_alone() -> None:
    """What moves a node from the local chain to Holesky (or back) is the environment, not code."""
    # Nothing set: Golem's own Holesky deployment, under the real platform name.
    default = network_for_platform("erc20-holesky-tglm", {})
    assert default.rpc_urls == ("https://ethereum-holesky-rpc.publicnode.com",)
    assert default.token_address == "0x8888888815bf4DB87e57B609A50f938311EEd068"
    assert default.faucet_address == "0xFACe100969FF47EB58d2CF603321B581A84bcEaC"
    assert default.multi_transfer_address == "0xAaAAAaA00E1841A63342db7188abA84BDeE236c7"

    # An operator's own Holesky RPC: only the endpoint changes.
    own_rpc = network_for_platform("erc20-holesky-tglm", {"HOLESKY_GETH_ADDR": "https://rpc.example.org/h"})
    assert own_rpc.rpc_urls == ("https://rpc.example.org/h",)
    assert own_rpc.token_address == default.token_address

    # A local chain standing in for Holesky (what `golem devnet chain up` writes to chain.env): the
    # platform name and chain id stay Holesky's, every endpoint and address comes from the variables.
    local = env_overrides(
        "holesky", rpc_url="http://127.0.0.1:8545", token=ADDRESS_A, faucet=ADDRESS_B, multi=ADDRESS_C
    )
    assert set(local) == {
        "HOLESKY_GETH_ADDR",
        "HOLESKY_TGLM_CONTRACT_ADDRESS",
        "HOLESKY_TGLM_FAUCET_ADDRESS",
        "HOLESKY_MULTI_PAYMENT_CONTRACT_ADDRESS",
        "ERC20_HOLESKY_REQUIRED_CONFIRMATIONS",
    }
    stand_in = network_for_platform("erc20-holesky-tglm", local)
    assert stand_in.platform == "erc20-holesky-tglm"
    assert stand_in.chain_id == 17000
    assert stand_in.rpc_urls == ("http://127.0.0.1:8545",)
    assert (stand_in.token_address, stand_in.faucet_address, stand_in.multi_transfer_address) == (
        ADDRESS_A,
        ADDRESS_B,
        ADDRESS_C,
    )
    assert stand_in.confirmations == 0

    # The same for Hoodi, yagna's current default testnet.
    hoodi = network_for_platform(
        "erc20-hoodi-tglm",
        env_overrides(
            "hoodi", rpc_url="http://127.0.0.1:9545", token=ADDRESS_A, faucet=ADDRESS_A, multi=ADDRESS_C
        ),
    )
    assert (hoodi.platform, hoodi.chain_id, hoodi.rpc_urls) == (
        "erc20-hoodi-tglm",
        560048,
        ("http://127.0.0.1:9545",),
    )


def test_the_environment_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOLESKY_GETH_ADDR", raising=False)
    assert network("holesky").rpc_urls == NETWORKS["holesky"].rpc_urls
    monkeypatch.setenv("HOLESKY_GETH_ADDR", "http://127.0.0.1:1")
    assert network("holesky").rpc_urls == ("http://127.0.0.1:1",)
    monkeypatch.delenv("HOLESKY_GETH_ADDR")
    assert network("holesky").rpc_urls == NETWORKS["holesky"].rpc_urls
