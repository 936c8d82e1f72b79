"""``golem devnet``: a local Golem network for development and tests.

``golem devnet up|status|down`` runs the whole network on loopback (see
:mod:`blueprints.devnet_runner`): chain, market node, providers and a funded requestor.
``golem devnet chain up|down|status`` runs only the local EVM chain (anvil, see
:mod:`payments.devchain`) with our test GLM token, its faucet and the batch-transfer contract
deployed, standing in for a real network under that network's chain id and platform name. The
chain outlives the command; its folder (default ``$GOLEM_DATA_DIR/devnet/chain``) holds
``chain.json`` and ``chain.env``, the yagna-style variables (``HOLESKY_GETH_ADDR``,
``HOLESKY_TGLM_CONTRACT_ADDRESS``, ...) that point daemons and ``golem payments`` at it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from market.core.config import data_dir
from market.core.errors import GolemError
from market.core.ids import node_id
from payments import devchain
from payments.devchain import ChainInfo
from payments.errors import PaymentError
from payments.networks import DEFAULT_NETWORK, NETWORKS

DEFAULT_CHAIN_PORT = 8545


def default_chain_dir() -> Path:
    return data_dir() / "devnet" / "chain"


def chain_json(info: ChainInfo, folder: Path) -> dict[str, Any]:
    """What ``status --json`` prints about a running chain."""
    return {
        "running": True,
        "dir": str(folder),
        "network": info.network,
        "chainId": info.chain_id,
        "platform": info.platform,
        "rpcUrl": info.rpc_url,
        "token": info.token,
        "faucet": info.faucet,
        "multiTransfer": info.multi_transfer,
        "pid": info.pid,
        "blockTime": info.block_time,
        "envFile": str(folder / "chain.env"),
        "env": info.env(),
    }


def describe(info: ChainInfo, folder: Path) -> str:
    """The human summary of a running chain, ending with how to point a shell at it."""
    return "\n".join(
        [
            f"rpc url      {info.rpc_url}",
            f"chain id     {info.chain_id} ({info.network})",
            f"platform     {info.platform}",
            f"token        {info.token} (faucet: create())",
            f"multi        {info.multi_transfer}",
            f"pid          {info.pid}",
            f"use it       source {folder / 'chain.env'}",
        ]
    )


dir_option = click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The chain's folder (chain.json, chain.env, anvil.log) [default: $GOLEM_DATA_DIR/devnet/chain].",
)


@click.group()
def devnet() -> None:
    """A local Golem network on loopback, for development and tests."""


@devnet.group()
def chain() -> None:
    """The local EVM chain (anvil) that payments run on, standing in for a real network."""


@chain.command()
@dir_option
@click.option(
    "--network",
    "network_name",
    type=click.Choice(list(NETWORKS), case_sensitive=False),
    default=DEFAULT_NETWORK,
    show_default=True,
    help="The network the chain stands in for: its chain id and platform name are used.",
)
@click.option(
    "--port", type=int, default=DEFAULT_CHAIN_PORT, show_default=True, help="RPC port; 0 picks a free one."
)
@click.option(
    "--block-time",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds per block [default: a block per transaction].",
)
@click.option(
    "--fund",
    "addresses",
    multiple=True,
    metavar="ADDRESS",
    help="Give this account gas coin and 1000 test GLM from the faucet (repeatable).",
)
def up(
    folder: Path | None, network_name: str, port: int, block_time: float | None, addresses: tuple[str, ...]
) -> None:
    """Start the chain, deploy the contracts and write chain.env; harmless when already up."""
    folder = folder or default_chain_dir()
    try:
        checked = [node_id(a) for a in addresses]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fund") from None
    try:
        running = devchain.status(folder)
        info = devchain.start(folder, network=network_name.lower(), port=port or None, block_time=block_time)
        funded = [(a, devchain.fund_address(info, a)) for a in checked]
    except PaymentError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"chain {'already running' if running else 'started'} in {folder}")
    click.echo(describe(info, folder))
    for address, balance in funded:
        click.echo(f"funded       {address}: {balance} {NETWORKS[info.network].token_symbol}")


@chain.command()
@dir_option
def down(folder: Path | None) -> None:
    """Stop the chain (its folder stays); says so when none was running."""
    folder = folder or default_chain_dir()
    if devchain.stop(folder):
        click.echo(f"chain in {folder} stopped")
    else:
        click.echo(f"no chain running in {folder}")


@chain.command()
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(folder: Path | None, as_json: bool) -> None:
    """Whether the chain is up, and where to reach it."""
    folder = folder or default_chain_dir()
    try:
        info = devchain.status(folder)
    except PaymentError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        body = chain_json(info, folder) if info else {"running": False, "dir": str(folder)}
        click.echo(json.dumps(body, indent=2))
    elif info is None:
        click.echo(f"no chain running in {folder}")
    else:
        click.echo(f"chain running in {folder}")
        click.echo(describe(info, folder))


# --- the whole network --------------------------------------------------------------------------------


def default_devnet_dir() -> Path:
    return data_dir() / "devnet"


devnet_dir_option = click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The devnet's folder (state, logs, data dirs) [default: $GOLEM_DATA_DIR/devnet].",
)


@devnet.command("up")
@devnet_dir_option
@click.option("--providers", type=click.IntRange(min=0), default=2, show_default=True)
@click.option(
    "--runtimes",
    default="vm,wasmtime",
    show_default=True,
    help="Comma-separated runtimes every provider offers (vm, wasmtime).",
)
@click.option("--subnet", default="public", show_default=True, help="The subnet the providers offer in.")
@click.option("--market-port", type=int, default=7470, show_default=True, help="0 picks a free port.")
@click.option("--requestor-port", type=int, default=7465, show_default=True, help="0 picks a free port.")
@click.option(
    "--chain-port", type=int, default=DEFAULT_CHAIN_PORT, show_default=True, help="0 picks a free port."
)
def devnet_up(
    folder: Path | None,
    providers: int,
    runtimes: str,
    subnet: str,
    market_port: int,
    requestor_port: int,
    chain_port: int,
) -> None:
    """Start a local chain, a market node, N providers and a funded requestor; harmless when up."""
    from blueprints import devnet_runner

    folder = folder or default_devnet_dir()
    started = time.perf_counter()
    try:
        net = devnet_runner.up(
            folder,
            providers=providers,
            runtimes=[r.strip() for r in runtimes.split(",") if r.strip()],
            subnet=subnet,
            market_port=market_port,
            requestor_port=requestor_port,
            chain_port=chain_port,
            say=click.echo,
        )
    except GolemError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"devnet up in {time.perf_counter() - started:.1f} s; "
        f"the offers of {providers} provider(s) are on the market"
    )
    click.echo(f"logs         {net.folder}/*.log")
    click.echo(f"to use it    source {Path(net.folder) / devnet_runner.ENV_FILE}")
    click.echo("             (exports YAGNA_APPKEY, YAGNA_API_URL and the chain's variables), then e.g.")
    click.echo("             python blueprints/scripts/hello.py --image-hash ... --image-url ...")
    click.echo("stop it      golem devnet down")


@devnet.command("status")
@devnet_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def devnet_status(folder: Path | None, as_json: bool) -> None:
    """Every part of the devnet: its process and whether it answers. Exit 1 if any part is down."""
    from blueprints import devnet_runner

    folder = folder or default_devnet_dir()
    try:
        state = devnet_runner.state_of(folder)
    except GolemError as exc:
        raise click.ClickException(str(exc)) from None
    parts = state["parts"]
    if as_json:
        click.echo(json.dumps(state, indent=2))
    elif not parts:
        click.echo(f"no devnet in {folder}")
    else:
        for part in parts:
            health = (
                "ok"
                if part["running"] and part["answering"]
                else ("not answering" if part["running"] else "down")
            )
            click.echo(
                f"{part['name']:<12} {health:<14} pid {part['pid']:<8} {part['url']}  {part['detail']}"
            )
    if parts and not all(p["running"] and p["answering"] for p in parts):
        raise SystemExit(1)


@devnet.command("down")
@devnet_dir_option
def devnet_down(folder: Path | None) -> None:
    """Stop every part of the devnet and remove what its providers left (containers)."""
    from blueprints import devnet_runner

    folder = folder or default_devnet_dir()
    started = time.perf_counter()
    try:
        stopped = devnet_runner.down(folder, say=click.echo)
    except GolemError as exc:
        raise click.ClickException(str(exc)) from None
    if stopped:
        click.echo(f"devnet in {folder} is down ({time.perf_counter() - started:.1f} s)")
    else:
        click.echo(f"no devnet running in {folder}")
