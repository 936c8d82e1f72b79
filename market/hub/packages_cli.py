"""``golem packages``: put payloads (Docker archives, WASM packages) in a market node's registry."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from market.hub.registry import RegistryError
from market.hub.registry_client import DEFAULT_MARKET_URL, list_packages, push

market_option = click.option(
    "--market",
    "market_url",
    default=DEFAULT_MARKET_URL,
    envvar="GOLEM_MARKET_URL",
    show_default=True,
    help="The market node, as http://HOST:PORT (its ws://HOST:PORT/ws works too) [env GOLEM_MARKET_URL].",
)


class _Progress:
    """A one-line progress report on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._last = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        line = f"{phase} {done * 100 // max(total, 1):3d}%  ({done // 1024**2} of {total // 1024**2} MiB)"
        if line != self._last:
            self._last = line
            click.echo(f"\r{line}", nl=False, err=True)

    def done(self) -> None:
        if self.enabled and self._last:
            click.echo("", err=True)


@click.group()
def packages() -> None:
    """The market node's package registry: payloads providers download by SHA3-224."""


@packages.command("push")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@market_option
@click.option(
    "--token",
    envvar="GOLEM_MARKET_UPLOAD_TOKEN",
    default=None,
    help="The node's upload token, if it has one [env GOLEM_MARKET_UPLOAD_TOKEN]. Without a token a "
    "node accepts uploads from its own host only.",
)
@click.option(
    "--tag", default=None, help="Also tag the package (name[:version]), for vm.repo(image_tag=...)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the registry's answer as JSON.")
def push_command(file: Path, market_url: str, token: str | None, tag: str | None, as_json: bool) -> None:
    """Upload FILE (a `docker save` archive or a WASM module/zip) and print its SHA3-224 and URL.

    The hash is computed here and checked by the node. Pushing a file the node already holds changes
    nothing. A demand names the package as hash:sha3:<hash>:<url>; yapapi's
    vm.repo(image_hash=<hash>, repository_url=<market>) resolves it through the node.
    """
    progress = _Progress()
    try:
        answer = asyncio.run(push(market_url, file, token=token, tag=tag, progress=progress))
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        progress.done()
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo(answer["hash"])
    click.echo(answer["url"])
    state = "stored" if answer.get("created") else "already stored"
    click.echo(f"{state}: {answer['size']} bytes", err=True)


@packages.command("list")
@market_option
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def list_command(market_url: str, as_json: bool) -> None:
    """List the packages the market node holds."""
    try:
        found = asyncio.run(list_packages(market_url))
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("no packages")
    for package in found:
        tags = ", ".join(package.get("tags") or [])
        click.echo(f"{package['hash']}  {package['size']:>12}  {package.get('name') or ''}  {tags}".rstrip())
