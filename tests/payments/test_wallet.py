"""Balances and test funds on a real anvil chain, through the network table and its overrides.

The public-testnet path of :func:`payments.wallet.fund` (gas coin checked first, then the faucet
contract's ``create()`` signed by the account) is the same code whether the RPC is Holesky's or a
local chain; ``devnet=False`` makes it run here instead of the anvil shortcut.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal

import pytest
from web3 import Web3

from payments import devchain, wallet
from payments.contracts import load
from payments.devchain import ChainInfo
from payments.networks import Network, network
from payments.wallet import ChainUnreachableError, FundingError
from tests.payments.chains import address_of, local_chain, new_key


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainInfo]:
    with local_chain(tmp_path_factory.mktemp("chain")) as info:
        yield info


@pytest.fixture(scope="module")
def net(chain: ChainInfo) -> Network:
    return network("holesky", chain.env())


@pytest.fixture(scope="module")
def w3(net: Network) -> Web3:
    return wallet.connect(net)


def test_connect_finds_the_first_url_serving_the_network(chain: ChainInfo) -> None:
    dead = f"http://127.0.0.1:{devchain.free_port()}"
    net = network("holesky", {**chain.env(), "HOLESKY_GETH_ADDR": f"{dead},{chain.rpc_url}"})
    assert wallet.connect(net).eth.chain_id == 17000

    with pytest.raises(ChainUnreachableError) as caught:
        wallet.connect(network("holesky", {"HOLESKY_GETH_ADDR": dead}))
    message = str(caught.value)
    assert dead in message and "Connection refused" in message and "HOLESKY_GETH_ADDR" in message

    with pytest.raises(ChainUnreachableError, match=r"serves chain 17000, not hoodi \(560048\)"):
        wallet.connect(network("hoodi", {"HOODI_GETH_ADDR": chain.rpc_url}))


def test_anvil_is_recognised(w3: Web3) -> None:
    assert wallet.is_anvil(w3)


def test_balances_come_from_the_configured_token(w3: Web3, net: Network, chain: ChainInfo) -> None:
    key = new_key(w3, Decimal("2.5"))
    assert wallet.balances(w3, net, address_of(key)) == wallet.Balances(
        address_of(key), Decimal("2.5"), Decimal(0)
    )
    devchain.fund(chain, key)
    assert wallet.balances(w3, net, address_of(key)).token == Decimal(1000)
    not_a_token = dataclasses.replace(net, token_address=address_of(key))
    with pytest.raises(ChainUnreachableError, match="HOLESKY_TGLM_CONTRACT_ADDRESS"):
        wallet.balances(w3, not_a_token, address_of(key))


def test_from_wei_is_exact() -> None:
    assert wallet.from_wei(10**40 + 1) == Decimal("10000000000000000000000.000000000000000001")
    assert wallet.from_wei(0) == 0


def test_devnet_funding_sets_gas_and_mints(w3: Web3, net: Network) -> None:
    key = new_key(w3, Decimal(0))
    result = wallet.fund(net, key)
    assert result.method == "devnet"
    assert result.before.gas_coin == 0 and result.before.token == 0
    assert result.after.token == Decimal(1000)
    assert result.after.gas_coin > 99


def test_public_testnet_path_wants_gas_coin_first(w3: Web3, net: Network) -> None:
    key = new_key(w3, Decimal(0))
    with pytest.raises(FundingError) as caught:
        wallet.fund(net, key, devnet=False)
    message = str(caught.value)
    assert f"{address_of(key)} holds no tETH on holesky" in message
    assert "holesky-faucet" in message
    assert wallet.balances(w3, net, address_of(key)).token == 0


def test_public_testnet_path_mints_from_the_faucet_contract(w3: Web3, net: Network) -> None:
    key = new_key(w3, Decimal("0.01"))
    result = wallet.fund(net, key, devnet=False)
    assert result.method == "faucet"
    assert result.after.token == Decimal(1000)
    assert Decimal(0) < result.after.gas_coin < Decimal("0.01")  # the account paid its own gas
    assert result.tx_hash is not None
    receipt = w3.eth.get_transaction_receipt(result.tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 1
    assert receipt["to"] == net.faucet_address
    token = w3.eth.contract(address=Web3.to_checksum_address(net.token_address), abi=load("TestGLM").abi)
    minted = [(e.args.receiver, e.args.value) for e in token.events.Transfer().process_receipt(receipt)]
    assert minted == [(address_of(key), 1000 * 10**18)]

    again = wallet.fund(net, key, devnet=False)
    assert (again.method, again.tx_hash, again.after.token) == ("none", None, Decimal(1000))


def test_a_faucet_refusal_is_explained(w3: Web3, chain: ChainInfo) -> None:
    # A faucet contract of another token (a misconfigured HOLESKY_TGLM_FAUCET_ADDRESS) where the
    # account already holds 1000: the contract refuses, the message says so.
    key = new_key(w3, Decimal(1))
    other = devchain.deploy(w3, key, "TestGLM", "Other", "OTH")
    misconfigured = network("holesky", {**chain.env(), "HOLESKY_TGLM_FAUCET_ADDRESS": other})
    wallet.fund(misconfigured, key, devnet=False)  # mints OTH, not tGLM
    with pytest.raises(FundingError, match="faucet refused: Cannot acquire more funds"):
        wallet.fund(misconfigured, key, devnet=False)


def test_too_little_gas_coin_or_a_fee_cap_below_the_base_fee_is_refused(
    w3: Web3, net: Network, chain: ChainInfo
) -> None:
    poor = new_key(w3, Decimal("0.000000001"))
    with pytest.raises(FundingError, match="may cost up to"):
        wallet.fund(net, poor, devnet=False)
    key = new_key(w3, Decimal(1))
    capped = network("holesky", {**chain.env(), "HOLESKY_MAX_FEE_PER_GAS": "0.000001"})
    with pytest.raises(FundingError, match="HOLESKY_MAX_FEE_PER_GAS"):
        wallet.fund(capped, key, devnet=False)
    with pytest.raises(FundingError, match="HOLESKY_TGLM_FAUCET_ADDRESS"):
        wallet.fund(dataclasses.replace(net, faucet_address=None), key, devnet=False)
    assert wallet.balances(w3, net, address_of(key)).token == 0


@pytest.mark.parametrize("name", ["mainnet", "polygon"])
def test_mainnets_are_never_funded_and_not_even_asked(name: str) -> None:
    closed = f"http://127.0.0.1:{devchain.free_port()}"
    net = network(name, {f"{name.upper()}_GETH_ADDR": closed})
    with pytest.raises(FundingError, match=f"network {name} does not support automatic funding"):
        wallet.fund(net, "0x" + "11" * 32)
