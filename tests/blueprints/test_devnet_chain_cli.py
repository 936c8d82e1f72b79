"""``golem devnet chain up|down|status`` on a real anvil, in a test's own folder."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from blueprints.devnet import devnet
from payments import devchain
from payments.devchain import ChainInfo


def run(args: Sequence[str | Path], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(devnet, ["chain", *(str(a) for a in args)], env=env)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    chain_dir = tmp_path / "chain"
    yield chain_dir
    devchain.stop(chain_dir)  # whatever a failing test left running


def test_up_status_down(folder: Path) -> None:
    up = run(["up", "--dir", folder, "--port", "0"])
    assert up.exit_code == 0, up.output
    info = ChainInfo.read(folder)
    assert info is not None and devchain.status(folder) == info
    assert f"chain started in {folder}" in up.output
    for expected in (
        f"rpc url      {info.rpc_url}",
        "chain id     17000 (holesky)",
        "platform     erc20-holesky-tglm",
        f"token        {info.token}",
        f"multi        {info.multi_transfer}",
        f"source {folder / 'chain.env'}",
    ):
        assert expected in up.output

    again = run(["up", "--dir", folder, "--port", "0"])
    assert again.exit_code == 0 and "chain already running" in again.output
    assert ChainInfo.read(folder) == info  # the same process, the same contracts

    other = run(["up", "--dir", folder, "--network", "hoodi"])
    assert other.exit_code == 1
    assert "already running in" in other.output and "Traceback" not in other.output

    status = json.loads(run(["status", "--dir", folder, "--json"]).output)
    assert status["running"] is True
    assert (status["chainId"], status["platform"], status["rpcUrl"]) == (
        17000,
        "erc20-holesky-tglm",
        info.rpc_url,
    )
    assert status["env"]["HOLESKY_TGLM_CONTRACT_ADDRESS"] == info.token
    assert "chain running in" in run(["status", "--dir", folder]).output

    down = run(["down", "--dir", folder])
    assert down.exit_code == 0 and f"chain in {folder} stopped" in down.output
    assert devchain.status(folder) is None
    down_again = run(["down", "--dir", folder])
    assert down_again.exit_code == 0 and f"no chain running in {folder}" in down_again.output
    assert json.loads(run(["status", "--dir", folder, "--json"]).output) == {
        "running": False,
        "dir": str(folder),
    }


def test_up_for_hoodi_uses_its_chain_id(folder: Path) -> None:
    up = run(["up", "--dir", folder, "--port", "0", "--network", "hoodi", "--block-time", "1"])
    assert up.exit_code == 0, up.output
    assert "chain id     560048 (hoodi)" in up.output and "erc20-hoodi-tglm" in up.output
    info = ChainInfo.read(folder)
    assert info is not None and info.block_time == 1.0
    assert devchain.connect(info.rpc_url).eth.chain_id == 560048
    assert "HOODI_GETH_ADDR" in (folder / "chain.env").read_text()


def test_a_busy_port_is_a_clear_error(folder: Path, tmp_path: Path) -> None:
    with_port = tmp_path / "first"
    first = devchain.start(with_port)
    try:
        port = first.rpc_url.rsplit(":", 1)[1]
        result = run(["up", "--dir", folder, "--port", port])
        assert result.exit_code == 1
        assert f"port {port} on 127.0.0.1 is in use" in result.output and "Traceback" not in result.output
        assert not (folder / "chain.json").exists()
        assert devchain.connect(first.rpc_url).eth.block_number == 2  # nothing was deployed to it
        assert devchain.status(folder) is None
    finally:
        devchain.stop(with_port)


def test_the_default_folder_is_under_the_data_dir(tmp_path: Path) -> None:
    result = run(["status"], env={"GOLEM_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0
    assert f"no chain running in {tmp_path / 'devnet' / 'chain'}" in result.output


def test_up_funds_accounts_by_address(folder: Path) -> None:
    first, second = "0x" + "12" * 20, "0x" + "AB" * 20
    up = run(["up", "--dir", folder, "--port", "0", "--fund", first, "--fund", second])
    assert up.exit_code == 0, up.output
    info = ChainInfo.read(folder)
    assert info is not None
    for address in (first, second):
        assert f"funded       {address.lower()}: 1000 tGLM" in up.output
        assert devchain.token_balance(info, address) == 1000
        assert devchain.connect(info.rpc_url).eth.get_balance(devchain.Web3.to_checksum_address(address)) > 0
    # Funding again keeps what the account has (the faucet gives only to those holding < 1000).
    again = run(["up", "--dir", folder, "--fund", first])
    assert again.exit_code == 0 and f"funded       {first}: 1000 tGLM" in again.output
    # A malformed address is refused before anything starts or changes.
    bad = run(["up", "--dir", folder, "--fund", "0x123"])
    assert bad.exit_code == 2 and "not a node id" in bad.output
