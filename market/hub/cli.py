"""``golem market``: run a market node, or watch a demo negotiation on one."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import click

from market.core.config import load_config
from market.core.errors import ConfigError
from market.hub.server import MarketNode, MarketNodeConfig


@click.group()
def market() -> None:
    """The market node: matching, negotiation, relay, marketplace REST API."""


@market.command()
@click.option("--host", default=None, help="Listen address [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port, 0 for any free one [default: 7470].")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file with a [market] table of settings.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the package registry keeps its files [default: $GOLEM_DATA_DIR/market].",
)
@click.option("--max-frame-bytes", type=int, default=None, help="Largest WebSocket frame accepted.")
@click.option("--max-subscriptions-per-node", type=int, default=None, help="Live offers+demands per node.")
@click.option("--max-messages-per-second", type=float, default=None, help="Per-session message rate.")
@click.option("--show-config", is_flag=True, help="Print the effective configuration and exit.")
def serve(
    host: str | None,
    port: int | None,
    config_file: Path | None,
    data_dir: Path | None,
    max_frame_bytes: int | None,
    max_subscriptions_per_node: int | None,
    max_messages_per_second: float | None,
    show_config: bool,
) -> None:
    """Run a market node until SIGINT/SIGTERM.

    Settings come from defaults, then --config's [market] table, then GOLEM_MARKET_* environment
    variables (GOLEM_MARKET_PORT, ...), then these flags. The package registry's upload token and
    public URL are settings only (GOLEM_MARKET_UPLOAD_TOKEN, GOLEM_MARKET_PUBLIC_URL), never flags:
    a flag would show the token to every user of `ps`.
    """
    try:
        config = load_config(
            MarketNodeConfig,
            toml_path=config_file,
            section="market",
            env_prefix="GOLEM_MARKET_",
            overrides={
                "host": host,
                "port": port,
                "data_dir": data_dir,
                "max_frame_bytes": max_frame_bytes,
                "max_subscriptions_per_node": max_subscriptions_per_node,
                "max_messages_per_second": max_messages_per_second,
            },
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if show_config:
        # JSON mode writes paths as strings and the upload token as asterisks.
        click.echo(json.dumps(config.model_dump(mode="json"), indent=2))
        return
    try:
        asyncio.run(_serve(config))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {config.host}:{config.port}: {exc}") from exc


async def _serve(config: MarketNodeConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with MarketNode(config) as node:
        click.echo(
            f"market node listening on {node.url}  (WebSocket {node.ws_url}, REST {node.url}/market/v1, "
            f"console {node.url}/, packages {node.url}/packages)"
        )
        await stop.wait()
        click.echo("shutting down")


@market.command()
@click.option(
    "--market",
    "market_url",
    default=None,
    help="WebSocket URL of a running market node (ws://HOST:PORT/ws) [default: start one in-process].",
)
def demo(market_url: str | None) -> None:
    """Watch two fresh nodes negotiate, sign and terminate an agreement."""
    from market.demo import run_demo

    try:
        asyncio.run(run_demo(market_url, click.echo))
    except Exception as exc:
        raise click.ClickException(f"demo failed: {exc}") from exc
