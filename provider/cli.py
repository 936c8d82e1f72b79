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
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
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
from provider.hardware import Hardware, detect_hardware
from provider.offers import OfferSpec, offer_specs, pricing_from_properties
from provider.presets import Preset, PresetError, PresetStore, describe_pricing, format_glm

PASSWORD_FILE_NAME = "password"
DEFAULT_STATUS_URL = "http://127.0.0.1:7466/provider/v1"


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
    "--preset",
    "presets",
    multiple=True,
    help="Offer this preset (repeatable); replaces active_presets of the configuration.",
)
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
    presets: tuple[str, ...],
    config_file: Path | None,
    show_config: bool,
) -> None:
    """Run the provider daemon until SIGINT/SIGTERM.

    Prints what it will offer first: per offer its runtime, the resources and the prices. Without
    presets (``--preset`` or ``active_presets``) there is one offer per enabled runtime, priced by
    the configuration's ``pricing`` table.
    """
    try:
        config = load_provider_config(
            data_dir,
            config_file,
            {
                "market_url": market_url,
                "subnet": subnet,
                "node_name": node_name,
                "status_port": status_port,
                "active_presets": list(presets) or None,
            },
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
        specs = offer_specs(config, PresetStore(config.presets_path).all())
    except GolemError as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc
    hardware = detect_hardware(
        config.data_dir,
        max_threads=config.max_threads,
        max_memory_gib=config.max_memory_gib,
        max_storage_gib=config.max_storage_gib,
    )
    for spec in specs:
        click.echo(describe_offer(spec, hardware, config.payment_platform))
    try:
        asyncio.run(_run(config, identity))
    except (OSError, GolemError) as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc


async def _run(config: ProviderConfig, identity: Identity) -> None:
    from payments.exchange import PaymentExchange
    from payments.factory import make_drivers
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
    # The provider only checks payments: its ERC-20 driver reads receipts and Transfer logs and holds
    # no key. On a dummy-* platform (tests, explicit opt-in) nothing can be checked, so a dummy
    # payment is taken on trust.
    drivers = make_drivers(
        [config.payment_platform], data_dir=config.data_dir, identity=None, trust_dummy_claims=True
    )
    payments = ProviderPayments(store, identity=identity.node_id, drivers=drivers)
    for driver in drivers:
        await driver.start()
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
    for driver in drivers:
        await driver.close()
    store.close()


def describe_offer(spec: OfferSpec, hardware: Hardware, platform: str) -> str:
    """One offer as ``run`` announces it: runtime, preset, resources, prices and payment platform."""
    return (
        f"offer {spec.runtime} (preset {spec.preset}): {hardware.threads} threads, "
        f"{hardware.memory_gib:g} GiB memory, {hardware.storage_gib:g} GiB storage; "
        f"{describe_pricing(spec.pricing)}; paid on {platform}"
    )


# --- presets ----------------------------------------------------------------------------------------


@provider.group()
def preset() -> None:
    """Named runtime + pricing presets (stored in <data dir>/presets.json)."""


def _store(data_dir: Path | None) -> PresetStore:
    return PresetStore((data_dir or default_data_dir()) / "presets.json")


F = TypeVar("F", bound=Callable[..., Any])


def _glm_amount(ctx: click.Context, param: click.Parameter, value: str | None) -> Decimal | None:
    """A price in GLM as a finite decimal (``0.1``, ``1e-3``), parsed as text, never through a float."""
    if value is None:
        return None
    try:
        amount = Decimal(value.strip())
    except ArithmeticError:
        raise click.BadParameter(f"{value!r} is not a valid decimal amount of GLM") from None
    if not amount.is_finite():
        raise click.BadParameter(f"{value!r} is not a finite amount of GLM")
    return amount


def _pricing_options(fn: F) -> F:
    for flag, text in (
        ("--start-price", "GLM once per agreement."),
        ("--duration-per-hour", "GLM per hour of wall time."),
        ("--cpu-per-hour", "GLM per CPU-hour."),
    ):
        fn = click.option(flag, default=None, callback=_glm_amount, metavar="GLM", help=text)(fn)
    return fn


def _describe(p: Preset) -> str:
    return f"{p.name:<16} {p.runtime:<9} {describe_pricing(p.pricing)}"


def _active_presets(data_dir: Path | None) -> list[str] | None:
    """The presets the configuration offers, or None when the configuration cannot be read."""
    try:
        return load_provider_config(data_dir, None, {}).active_presets
    except ConfigError:
        return None


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
        active = _active_presets(data_dir)
        for p in presets:
            click.echo(_describe(p) + ("  (offered)" if active and p.name in active else ""))
        if active == []:
            click.echo(
                "none is offered: name them in active_presets of provider.toml, or run "
                "`golem provider run --preset NAME`"
            )


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

STATUS_PARTS = ("health", "offers", "agreements", "activities", "documents", "earnings")
"""The status API's resources one snapshot reads, each under its own name."""


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {url}: {exc}") from exc


def fetch_status(url: str) -> dict[str, Any]:
    """One snapshot of a provider's status API at ``url`` (``.../provider/v1``), by part name.

    Raises :class:`click.ClickException` when the provider cannot be read.
    """
    base = url.rstrip("/")
    return {part: _get(f"{base}/{part}") for part in STATUS_PARTS}


def render_status(snapshot: dict[str, Any], now: datetime) -> str:
    """One frame of ``golem provider status``: a snapshot (:func:`fetch_status`) as text, ages
    counted to ``now``."""
    health = snapshot["health"]
    market = "connected" if health["marketConnected"] else "DISCONNECTED"
    lines = [
        f"{health['nodeName']} ({health['nodeId']}): {health['status']}, market {market}, "
        f"{health['activeAgreements']}/{health['maxAgreements']} agreements active, "
        f"up {_span((now - _moment(health['startedAt'])).total_seconds())}",
        "",
        f"offers ({len(snapshot['offers'])})",
    ]
    lines += [_describe_published(o) for o in snapshot["offers"]] or ["  none"]
    agreements = snapshot["agreements"]
    lines += ["", f"agreements ({len(agreements)})"]
    lines += _table(
        ("AGREEMENT", "STATE", "REQUESTOR", "SINCE", "CODE"),
        [
            (
                a["agreementId"],
                a["state"],
                _short_node(a["requestorId"]),
                _ago(a["updatedAt"], now),
                a.get("terminationCode") or "",
            )
            for a in agreements
        ],
    )
    tokens = {a["agreementId"]: _platform_of(a) for a in agreements}
    activities = snapshot["activities"]
    lines += ["", f"activities ({len(activities)})"]
    lines += _table(
        ("ACTIVITY", "AGREEMENT", "STATE", "DURATION", "CPU", "COST"),
        [
            (
                a["activityId"],
                _short(a["agreementId"]),
                a["state"],
                _span(a["durationSec"]),
                "" if a["cpuSec"] is None else f"{a['cpuSec']:.2f} s",
                "" if a["cost"] is None else _money(a["cost"], tokens.get(a["agreementId"], "")),
            )
            for a in activities
        ],
    )
    documents = snapshot["documents"]
    lines += ["", f"documents ({len(documents)})"]
    lines += _table(
        ("KIND", "DOCUMENT", "AGREEMENT", "STATUS", "AMOUNT", "ISSUED"),
        [
            (
                d["kind"],
                d["documentId"],
                _short(d["agreementId"]),
                d["status"],
                _money(d["amount"], d["platform"]),
                _ago(d["issuedAt"], now),
            )
            for d in documents
        ],
    )
    earnings = snapshot["earnings"]
    lines += ["", "earnings"]
    lines += _table(
        ("PLATFORM", "AGREEMENTS", "ISSUED", "ACCEPTED", "SETTLED"),
        [
            (
                e["platform"],
                str(e["agreements"]),
                _money(e["issued"], e["platform"]),
                _money(e["accepted"], e["platform"]),
                _money(e["settled"], e["platform"]),
            )
            for e in earnings
        ],
    )
    return "\n".join(lines)


def _describe_published(offer: dict[str, Any]) -> str:
    props = offer["properties"]
    try:
        linear = pricing_from_properties(props)
        hourly = Pricing(
            cpu_per_hour=_hourly(linear.cpu_sec), duration_per_hour=_hourly(linear.duration_sec),
            start_price=linear.fixed,
        )  # fmt: skip
        prices = describe_pricing(hourly)
    except ValueError:
        prices = "no linear pricing"
    return (
        f"  offer {offer['runtime']:<9} preset {offer['preset']:<12} {prices}; "
        f"{props.get('golem.inf.cpu.threads')} threads, {props.get('golem.inf.mem.gib')} GiB memory, "
        f"{props.get('golem.inf.storage.gib')} GiB storage  ({offer['subscriptionId']})"
    )


def _hourly(per_second: Decimal) -> Decimal:
    # The offer carries per-second floats (yapapi wants floats); nano-GLM is far below any price.
    return (per_second * 3600).quantize(Decimal("1e-9"))


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    if not rows:
        return ["  none"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    return [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def _ago(text: str, now: datetime) -> str:
    return f"{_span(max((now - _moment(text)).total_seconds(), 0))} ago"


def _short(ident: str) -> str:
    return ident if len(ident) <= 12 else ident[:8] + "…"


def _short_node(node_id: str) -> str:
    return node_id if len(node_id) <= 12 else f"{node_id[:6]}…{node_id[-4:]}"


def _token(platform: str) -> str:
    """The token an ``erc20-<network>-<token>`` platform pays in, spelt as people do (tGLM, GLM)."""
    token = platform.rsplit("-", 1)[-1]
    return "t" + token[1:].upper() if token.startswith("t") else token.upper()


def _money(amount: str, platform: str) -> str:
    return f"{format_glm(Decimal(amount))} {_token(platform)}".rstrip()


def _platform_of(agreement: dict[str, Any]) -> str:
    chosen = agreement.get("demandProperties", {}).get("golem.com.payment.chosen-platform")
    return chosen if isinstance(chosen, str) else ""


@provider.command()
@click.option(
    "--url", default=DEFAULT_STATUS_URL, show_default=True, help="Base URL of the provider's status API."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with --watch: one document per line).")
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1),
    is_flag=False,
    flag_value=2.0,
    default=None,
    metavar="[SECONDS]",
    help="Refresh every SECONDS (default 2) until Ctrl-C.",
)
def status(url: str, as_json: bool, watch: float | None) -> None:
    """Show a running provider: health, offers with their prices, agreements (state, requestor, since
    when, termination code), activities, debit notes and invoices, and earnings per payment platform."""
    if watch is None:
        snapshot = fetch_status(url)
        click.echo(json.dumps(snapshot, indent=2) if as_json else render_status(snapshot, datetime.now(UTC)))
        return
    try:
        while True:
            now = datetime.now(UTC)
            try:
                snapshot = fetch_status(url)
            except click.ClickException as exc:
                # A provider restarting is worth watching through: say so and keep polling.
                if as_json:
                    click.echo(f"{exc.message} (retrying)", err=True)
                else:
                    click.clear()
                    click.echo(f"{now:%H:%M:%S}  {exc.message}; retrying every {watch:g} s (Ctrl-C to stop)")
            else:
                if as_json:
                    click.echo(json.dumps(snapshot))
                else:
                    click.clear()
                    click.echo(f"{now:%H:%M:%S}  {url}, every {watch:g} s (Ctrl-C to stop)\n")
                    click.echo(render_status(snapshot, now))
            time.sleep(watch)
    except KeyboardInterrupt:
        return
