"""The local chain on a real anvil: start, status, stop, the chain id of the network it stands in
for, and the ``chain.env`` that points a network's real platform name at it."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from web3 import Web3

from payments import devchain
from payments.contracts import load
from payments.devchain import ChainError, ChainInfo
from payments.networks import network
from tests.payments.chains import address_of, local_chain, new_key


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _parse_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        assert line.startswith("export "), line
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value
    return env


def test_start_status_stop(tmp_path: Path) -> None:
    info = devchain.start(tmp_path, network="holesky")
    try:
        assert info.network == "holesky"
        assert info.chain_id == 17000
        assert info.platform == "erc20-holesky-tglm"
        assert devchain.status(tmp_path) == info
        w3 = devchain.connect(info.rpc_url)
        assert w3.eth.chain_id == 17000
        assert w3.eth.get_code(Web3.to_checksum_address(info.token)) != b""
        multi = w3.eth.contract(
            address=Web3.to_checksum_address(info.multi_transfer), abi=load("MultiTransfer").abi
        )
        assert multi.functions.token().call() == Web3.to_checksum_address(info.token)
        assert info.faucet == info.token  # our token is its own faucet (create())
        assert ChainInfo.read(tmp_path) == info
    finally:
        assert devchain.stop(tmp_path) is True
    assert devchain.status(tmp_path) is None
    assert not _process_exists(info.pid)
    assert devchain.stop(tmp_path) is False  # stopping a stopped chain is not an error
    assert (tmp_path / "chain.json").is_file()  # the record stays for inspection


def test_starting_twice_returns_the_running_chain(tmp_path: Path) -> None:
    with local_chain(tmp_path) as first:
        again = devchain.start(tmp_path, network="holesky")
        assert again == first
        assert devchain.status(tmp_path) == first


def test_a_running_chain_for_another_network_is_not_silently_reused(tmp_path: Path) -> None:
    with local_chain(tmp_path, "holesky") as info:
        with pytest.raises(ChainError, match="already running"):
            devchain.start(tmp_path, network="hoodi")
        assert devchain.status(tmp_path) == info


def test_hoodi_chain_has_hoodis_chain_id_and_variables(tmp_path: Path) -> None:
    with local_chain(tmp_path, "hoodi") as info:
        assert info.chain_id == 560048
        assert devchain.connect(info.rpc_url).eth.chain_id == 560048
        assert info.platform == "erc20-hoodi-tglm"
        env = _parse_env_file(tmp_path / "chain.env")
        assert env["HOODI_GETH_ADDR"] == info.rpc_url
        assert not any(name.startswith("HOLESKY") for name in env)


def test_env_file_points_the_real_platform_at_the_chain(tmp_path: Path) -> None:
    with local_chain(tmp_path) as info:
        env = _parse_env_file(tmp_path / "chain.env")
        assert env == {
            "HOLESKY_GETH_ADDR": info.rpc_url,
            "HOLESKY_TGLM_CONTRACT_ADDRESS": info.token,
            "HOLESKY_TGLM_FAUCET_ADDRESS": info.faucet,
            "HOLESKY_MULTI_PAYMENT_CONTRACT_ADDRESS": info.multi_transfer,
            "ERC20_HOLESKY_REQUIRED_CONFIRMATIONS": "0",
        }
        # What a daemon that sourced the file reads: the same platform, this chain's endpoints.
        net = network("holesky", env)
        assert net.platform == "erc20-holesky-tglm"
        assert net.chain_id == info.chain_id
        assert net.rpc_urls == (info.rpc_url,)
        assert (net.token_address, net.faucet_address, net.multi_transfer_address) == (
            info.token,
            info.faucet,
            info.multi_transfer,
        )
        assert devchain.environment(tmp_path, {"OTHER": "1"}) == {"OTHER": "1", **env}


def test_fund_gives_gas_coin_and_faucet_tokens_once(tmp_path: Path) -> None:
    with local_chain(tmp_path) as info:
        w3 = devchain.connect(info.rpc_url)
        key = new_key(w3, Decimal(0))
        assert devchain.fund(info, key) == Decimal(1000)
        assert w3.eth.get_balance(address_of(key)) > 0
        assert devchain.fund(info, key) == Decimal(1000)  # holds enough: no second mint
        assert devchain.token_balance(info, address_of(key)) == Decimal(1000)


def test_a_dead_chain_is_not_running_and_a_new_one_starts(tmp_path: Path) -> None:
    with local_chain(tmp_path) as info:
        pass
    assert devchain.status(tmp_path) is None
    with local_chain(tmp_path) as fresh:
        assert fresh.pid != info.pid
        assert devchain.status(tmp_path) == fresh


def test_bad_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ChainError, match="unknown network"):
        devchain.start(tmp_path, network="nowhere")
    assert not (tmp_path / "chain.json").exists()
    with pytest.raises(ChainError, match="devnet chain up"):
        devchain.environment(tmp_path)
    (tmp_path / "chain.json").write_text(json.dumps({"network": "holesky"}))
    with pytest.raises(ChainError, match="not a chain description"):
        devchain.status(tmp_path)
