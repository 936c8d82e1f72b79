"""``golem provider``: run the provider daemon, manage pricing presets, read its status.

Identity: ``run`` uses the keystore at ``<data dir>/identity/keystore.json`` and creates it on first
run if it is missing. The password comes from ``GOLEM_KEYSTORE_PASSWORD``; if that is unset, a random
password is generated on first run and stored with mode 0600 in ``<data dir>/identity/password``, and
read from there on later runs. (Protect the data dir accordingly, or set the variable.)

Settings: defaults, then ``[provider]`` in ``<data dir>/provider.toml`` (or ``--config``), then
``GOLEM_PROVIDER_*`` environment variables, then flags; ``--show-config`` prints the result.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from market.core.config import load_config
from market.core.errors import ConfigError, GolemError, IdentityError
from market.core.identity import (
    DEFAULT_KDF_WORK,
    PASSWORD_ENV,
    Identity,
    create_keystore,
    load_keystore,
)
from provider.config import (
    CONFIG_FILE_NAME,
    ENV_PREFIX,
    RUNTIMES,
    Pricing,
    ProviderConfig,
    RuntimeName,
    default_data_dir,
)
from provider.presets import Preset, PresetError, PresetStore

PASSWORD_FILE_NAME = "password"


def load_provider_config(
    data_dir: Path | None, config_file: Path | None, overrides: dict[str, Any]
) -> ProviderConfig:
    """The effective configuration: defaults → TOML → environment → flags."""
    base = data_dir or default_data_dir()
    toml = config_file or (base / CONFIG_FILE_NAME)
    return load_config(
        ProviderConfig,
        toml_path=toml if (config_file is not None or toml.exists()) else None,
        section="provider",
        env_prefix=ENV_PREFIX,
        overrides={"data_dir": data_dir, **overrides},
    )


def ensure_identity(config: ProviderConfig, *, kdf_work: int = DEFAULT_KDF_WORK) -> tuple[Identity, bool]:
    """Unlock the provider's keystore, creating it (and maybe a password file) if missing.

    Returns the identity and whether it was created now.
    """
    keystore = config.keystore_path
    password_file = keystore.parent / PASSWORD_FILE_NAME
    password = os.environ.get(PASSWORD_ENV)
    if not keystore.exists():
        if not password:
            password = secrets.token_urlsafe(24)
            keystore.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(password + "\n")
        return create_keystore(keystore, password, kdf_work=kdf_work), True
    if not password:
        try:
            password = password_file.read_text().rstrip("\r\n")
        except FileNotFoundError:
            raise IdentityError(f"no keystore password: set {PASSWORD_ENV} (keystore {keystore})") from None
    return load_keystore(keystore, password), False


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Provider state folder [default: $GOLEM_DATA_DIR/provider].",
)


@click.group()
def provider() -> None:
    """The provider daemon: offers, negotiation, agreements."""


@provider.command()
@click.option(
    "--market", "market_url", default=None, help="Market node WebSocket URL [ws://127.0.0.1:7470/ws]."
)
@data_dir_option
@click.option("--subnet", default=None, help="Subnet to offer in [public].")
@click.option("--name", "node_name", default=None, help="Node name shown to requestors.")
@click.option("--status-port", type=int, default=None, help="Status API port, 0 for any [7466].")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"TOML file with a [provider] table [default: <data dir>/{CONFIG_FILE_NAME} if present].",
)
@click.option("--show-config", is_flag=True, help="Print the effective configuration and exit.")
def run(
    market_url: str | None,
    data_dir: Path | None,
    subnet: str | None,
    node_name: str | None,
    status_port: int | None,
    config_file: Path | None,
    show_config: bool,
) -> None:
    """Run the provider daemon until SIGINT/SIGTERM."""
    try:
        config = load_provider_config(
            data_dir,
            config_file,
            {"market_url": market_url, "subnet": subnet, "node_name": node_name, "status_port": status_port},
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if show_config:
        click.echo(json.dumps(config.model_dump(mode="json"), indent=2))
        return
    try:
        identity, created = ensure_identity(config)
    except IdentityError as exc:
        raise click.ClickException(str(exc)) from exc
    if created:
        click.echo(f"created node identity {identity.node_id} in {config.keystore_path}")
    try:
        asyncio.run(_run(config, identity))
    except (OSError, GolemError) as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc


async def _run(config: ProviderConfig, identity: Identity) -> None:
    from payments.driver import DummyDriver
    from payments.exchange import PaymentExchange
    from payments.service import ProviderPayments
    from payments.store import PaymentStore
    from provider.billing import ProviderBilling
    from provider.daemon import ProviderDaemon
    from provider.execution import ProviderExecution

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    store = PaymentStore.open(config.data_dir / "payments.db")
    # Only the dummy driver exists so far: no chain, so a requestor's dummy payment is taken on trust
    # (the ERC-20 driver, next, verifies receipts and Transfer logs).
    drivers = [DummyDriver(platform_names=("dummy-holesky-tglm", "dummy-glm"), trust_remote_claims=True)]
    payments = ProviderPayments(store, identity=identity.node_id, drivers=drivers)
    async with (
        ProviderDaemon(config, identity) as daemon,
        ProviderExecution(daemon) as execution,
        PaymentExchange(execution.router, payments) as exchange,
        ProviderBilling(
            daemon, execution, payments, exchange, default_interval=float(config.debit_note_interval_sec)
        ),
    ):
        click.echo(
            f"provider {config.node_name} ({daemon.node_id}) on {config.market_url}, "
            f"subnet {config.subnet}, status API {daemon.status_url or 'off'}, "
            f"runtimes {', '.join(sorted(execution.factories)) or 'none'}"
        )
        await stop.wait()
        click.echo("shutting down")
    store.close()


# --- presets ----------------------------------------------------------------------------------------


@provider.group()
def preset() -> None:
    """Named runtime + pricing presets (stored in <data dir>/presets.json)."""


def _store(data_dir: Path | None) -> PresetStore:
    return PresetStore((data_dir or default_data_dir()) / "presets.json")


F = TypeVar("F", bound=Callable[..., Any])


def _pricing_options(fn: F) -> F:
    fn = click.option("--start-price", type=Decimal, default=None, help="GLM once per agreement.")(fn)
    fn = click.option("--duration-per-hour", type=Decimal, default=None, help="GLM per hour of wall time.")(
        fn
    )
    fn = click.option("--cpu-per-hour", type=Decimal, default=None, help="GLM per CPU-hour.")(fn)
    return fn


def _describe(p: Preset) -> str:
    q = p.pricing
    return (
        f"{p.name:<16} {p.runtime:<9} cpu/h {q.cpu_per_hour} GLM, duration/h {q.duration_per_hour} GLM, "
        f"start {q.start_price} GLM"
    )


@preset.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def preset_list(data_dir: Path | None, as_json: bool) -> None:
    """List presets."""
    try:
        presets = _store(data_dir).all()
    except PresetError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps([p.model_dump(mode="json") for p in presets], indent=2))
    elif not presets:
        click.echo("no presets (offers use the pricing in the configuration)")
    else:
        for p in presets:
            click.echo(_describe(p))


@preset.command("create")
@click.argument("name")
@click.option("--runtime", type=click.Choice(RUNTIMES), required=True)
@_pricing_options
@data_dir_option
def preset_create(
    name: str,
    runtime: str,
    cpu_per_hour: Decimal | None,
    duration_per_hour: Decimal | None,
    start_price: Decimal | None,
    data_dir: Path | None,
) -> None:
    """Create a preset; unspecified prices take the defaults."""
    prices = {
        "cpu_per_hour": cpu_per_hour,
        "duration_per_hour": duration_per_hour,
        "start_price": start_price,
    }
    try:
        created = _store(data_dir).create(
            Preset.model_validate(
                {"name": name, "runtime": runtime, "pricing": Pricing.model_validate(_given(prices))}
            )
        )
    except (PresetError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {_describe(created)}")


@preset.command("update")
@click.argument("name")
@click.option("--runtime", type=click.Choice(RUNTIMES), default=None)
@_pricing_options
@data_dir_option
def preset_update(
    name: str,
    runtime: str | None,
    cpu_per_hour: Decimal | None,
    duration_per_hour: Decimal | None,
    start_price: Decimal | None,
    data_dir: Path | None,
) -> None:
    """Change a preset's runtime or prices."""
    prices = {
        "cpu_per_hour": cpu_per_hour,
        "duration_per_hour": duration_per_hour,
        "start_price": start_price,
    }
    try:
        updated = _store(data_dir).update(
            name,
            runtime=cast("RuntimeName | None", runtime),  # click.Choice has checked it
            pricing=_given(prices),
        )
    except (PresetError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"updated {_describe(updated)}")


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --- status -----------------------------------------------------------------------------------------


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {url}: {exc}") from exc


@provider.command()
@click.option(
    "--url",
    default="http://127.0.0.1:7466/provider/v1",
    show_default=True,
    help="Base URL of the provider's status API.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(url: str, as_json: bool) -> None:
    """Show a running provider's health, offers and agreements."""
    base = url.rstrip("/")
    health = _get(f"{base}/health")
    offers = _get(f"{base}/offers")
    agreements = _get(f"{base}/agreements")
    if as_json:
        click.echo(json.dumps({"health": health, "offers": offers, "agreements": agreements}, indent=2))
        return
    click.echo(
        f"{health['nodeName']} ({health['nodeId']}): {health['status']}, "
        f"market {'connected' if health['marketConnected'] else 'DISCONNECTED'}, "
        f"{health['activeAgreements']}/{health['maxAgreements']} agreements active"
    )
    for offer in offers:
        click.echo(f"  offer {offer['subscriptionId']}  {offer['runtime']} (preset {offer['preset']})")
    for a in agreements:
        click.echo(f"  agreement {a['agreementId']}  {a['state']:<10} requestor {a['requestorId']}")
