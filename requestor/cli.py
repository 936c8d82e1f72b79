"""``golem requestor``: run the requestor daemon and manage its app keys.

Keystore password decision: ``serve`` unlocks ``<data dir>/keystore.json`` with, in order, the
``--password-file`` (or ``password_file`` setting), ``$GOLEM_KEYSTORE_PASSWORD``, or
``<data dir>/keystore.password``. On first run, when no keystore exists, it creates one; if neither
a password file nor the environment variable gives a password it generates a random one and stores
it 0600 beside the keystore. That keeps ``golem requestor serve`` a one-command start (devnets, CI,
a laptop) while an operator who wants the password elsewhere sets the variable or the file; the key
itself is always encrypted at rest.

``app-key`` works on the daemon's SQLite file directly, so keys can be made before the daemon runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from market.core.config import load_config
from market.core.errors import ConfigError, GolemError
from market.core.identity import (
    PASSWORD_ENV,
    Identity,
    create_keystore,
    keystore_address,
    load_keystore,
)
from requestor.appkeys import AppKeyStore
from requestor.config import ENV_PREFIX, RequestorConfig


def _config(data_dir: Path | None, config_file: Path | None = None, **flags: Any) -> RequestorConfig:
    try:
        return load_config(
            RequestorConfig,
            toml_path=config_file,
            section="requestor",
            env_prefix=ENV_PREFIX,
            overrides={"data_dir": data_dir, **flags},
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _password(config: RequestorConfig, *, create: bool) -> str:
    if config.password_file is not None:
        try:
            return config.password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise click.ClickException(f"cannot read password file {config.password_file}: {exc}") from exc
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    stored = config.default_password_file
    if stored.exists():
        return stored.read_text().rstrip("\r\n")
    if not create:
        raise click.ClickException(
            f"no keystore password: set {PASSWORD_ENV}, pass --password-file, or put it in {stored}"
        )
    password = secrets.token_urlsafe(24)
    stored.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


def ensure_keystore(config: RequestorConfig) -> str:
    """The node id of the daemon's keystore, creating the keystore on first use."""
    path = config.keystore_path
    try:
        if path.exists():
            return keystore_address(path)
        created = create_keystore(path, _password(config, create=True))
        click.echo(f"created node identity {created.node_id} in {path}", err=True)
        return created.node_id
    except GolemError as exc:
        raise click.ClickException(str(exc)) from exc


def unlock(config: RequestorConfig) -> Identity:
    ensure_keystore(config)
    try:
        return load_keystore(config.keystore_path, _password(config, create=False))
    except GolemError as exc:
        raise click.ClickException(str(exc)) from exc


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the daemon keeps its keystore and database [default: $GOLEM_DATA_DIR/requestor].",
)


@click.group()
def requestor() -> None:
    """The requestor daemon: the yagna-compatible REST API yapapi scripts use."""


@requestor.command()
@click.option("--host", default=None, help="Listen address [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port, 0 for any free one [default: 7465].")
@click.option(
    "--market", "market_url", default=None, help="Market node WebSocket [default: ws://127.0.0.1:7470/ws]."
)
@data_dir_option
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Keystore password file [default: ${PASSWORD_ENV}, else <data dir>/keystore.password].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file with a [requestor] table of settings.",
)
@click.option("--show-config", is_flag=True, help="Print the effective configuration and exit.")
def serve(
    host: str | None,
    port: int | None,
    market_url: str | None,
    data_dir: Path | None,
    password_file: Path | None,
    config_file: Path | None,
    show_config: bool,
) -> None:
    """Run the requestor daemon until SIGINT/SIGTERM.

    Settings: defaults, then --config's [requestor] table, then GOLEM_REQUESTOR_* environment
    variables, then these flags. Creates the node identity on first run (see `golem requestor --help`).
    """
    config = _config(
        data_dir, config_file, host=host, port=port, market_url=market_url, password_file=password_file
    )
    if show_config:
        click.echo(config.model_dump_json(indent=2))
        return
    identity = unlock(config)
    try:
        asyncio.run(_serve(config, identity))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {config.host}:{config.port}: {exc}") from exc
    except GolemError as exc:
        raise click.ClickException(str(exc)) from exc


async def _serve(config: RequestorConfig, identity: Identity) -> None:
    from requestor.daemon import RequestorDaemon

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with RequestorDaemon(config, identity) as daemon:
        click.echo(
            f"requestor daemon {daemon.node_id} listening on {daemon.url} (market {config.market_url})"
        )
        await stop.wait()
        click.echo("shutting down")


@requestor.group("app-key")
def app_key() -> None:
    """App keys for the REST API (YAGNA_APPKEY); work without a running daemon."""


def _store(config: RequestorConfig) -> AppKeyStore:
    from requestor.daemon import open_store

    try:
        return AppKeyStore(open_store(config))
    except GolemError as exc:
        raise click.ClickException(str(exc)) from exc


@app_key.command("create")
@click.argument("name")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def app_key_create(name: str, data_dir: Path | None, as_json: bool) -> None:
    """Create an app key called NAME and print it (it is shown only this once)."""
    config = _config(data_dir)
    identity = ensure_keystore(config)
    try:
        key, secret = _store(config).create(name, identity)
    except GolemError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"name": key.name, "key": secret, "identity": key.identity}))
    else:
        click.echo(secret)


@app_key.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def app_key_list(data_dir: Path | None, as_json: bool) -> None:
    """List app keys (names and identities; the keys themselves are not stored)."""
    keys = _store(_config(data_dir)).list()
    if as_json:
        rows = [{"name": k.name, "identity": k.identity, "created": k.created.isoformat()} for k in keys]
        click.echo(json.dumps(rows))
        return
    if not keys:
        click.echo("no app keys; create one with `golem requestor app-key create NAME`")
    for k in keys:
        click.echo(f"{k.name:<24} {k.identity}  {k.created.isoformat(timespec='seconds')}")


@requestor.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@data_dir_option
@click.option("--market", default=None, help="Market node WebSocket, for a daemon started here.")
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(data_dir: Path | None, market: str | None, script: Path, args: tuple[str, ...]) -> None:
    """Run a yapapi SCRIPT with ARGS against this node's requestor daemon.

    Sets YAGNA_APPKEY and YAGNA_API_URL, puts our gftp on PATH, and starts a daemon for the length
    of the script if none answers at the configured address. Exits with the script's exit code.
    """
    from requestor.runner import (
        RunnerError,
        daemon_answers,
        run_key,
        script_environment,
        start_daemon,
        stop_daemon,
    )

    config = _config(data_dir, market_url=market)
    identity = ensure_keystore(config)
    key = run_key(config, identity, _store(config))
    url = f"http://{config.host}:{config.port}"
    started = None
    try:
        if not daemon_answers(url, key):
            click.echo(
                f"no requestor daemon at {url}; starting one (log: {config.data_dir / 'daemon.log'})",
                err=True,
            )
            started, url = start_daemon(config, config.data_dir / "daemon.log")
        platform = config.payment_platforms.split(",")[0].strip()
        env = script_environment(url, key, platform)
        code = subprocess.call([sys.executable, str(script), *args], env=env)
    except RunnerError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if started is not None:
            stop_daemon(started)
    sys.exit(code)
