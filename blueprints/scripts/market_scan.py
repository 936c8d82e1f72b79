"""Market scan: the offers on the network, with each provider's runtime, resources and prices.

    python blueprints/scripts/market_scan.py [--seconds 5] [--runtime vm|wasmtime] [--json]

(with YAGNA_APPKEY / YAGNA_API_URL set as in the README; ``python -m blueprints.run scan`` runs it
against the devnet). yapapi 0.13.1 has no scanner of its own (``Golem.scan`` and ``yapapi.Scanner``
came later), so this uses its REST layer, as its ``list-offers`` example does: it publishes a
demand that asks for nothing but the subnet (and a runtime, if given), collects the offers the
requestor daemon's Market API streams back for ``--seconds``, and withdraws the demand. No
agreement is made and nothing is paid.

Prices are the linear model's coefficients in human units: per CPU-hour (``golem.usage.cpu_sec``),
per hour of activity (``golem.usage.duration_sec``) and per start (the fixed term), in the token of
the provider's payment platform (tGLM on test networks). ``--json`` prints a list of objects with
the same fields, amounts as decimal strings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Any

from yapapi.config import ApiConfig
from yapapi.props import Activity, NodeInfo
from yapapi.props.builder import DemandBuilder
from yapapi.rest import Configuration, Market

PLATFORM_PREFIX = "golem.com.payment.platform."
HOUR = Decimal(3600)
SIGNIFICANT = Context(prec=12)


@dataclass
class OfferRow:
    """One offer, as printed."""

    provider_id: str
    name: str
    runtime: str
    threads: int | None
    memory_gib: float | None
    storage_gib: float | None
    per_cpu_hour: str | None
    per_hour: str | None
    start: str | None
    token: str
    platforms: list[str]


def _decimal(value: Any) -> Decimal | None:
    """A coefficient as a Decimal (offers carry JSON floats; str() keeps their shortest form)."""
    try:
        return Decimal(str(value)) if isinstance(value, int | float) and not isinstance(value, bool) else None
    except ArithmeticError:
        return None


def _amount(value: Decimal | None) -> str | None:
    # Twelve significant digits: a per-second float times 3600 otherwise shows its binary noise
    # (0.1000000000000008 for 0.1 per CPU-hour).
    return None if value is None else f"{SIGNIFICANT.plus(value).normalize():f}"


def describe(provider_id: str, props: Mapping[str, Any]) -> OfferRow:
    """The row of an offer from its (flat) properties; what an offer lacks is None."""
    vector = props.get("golem.com.usage.vector") or []
    coeffs = props.get("golem.com.pricing.model.linear.coeffs") or []
    prices = dict(zip(vector, coeffs, strict=False)) if isinstance(vector, list) else {}
    fixed = coeffs[len(vector)] if isinstance(coeffs, list) and len(coeffs) == len(vector) + 1 else None
    cpu = _decimal(prices.get("golem.usage.cpu_sec"))
    duration = _decimal(prices.get("golem.usage.duration_sec"))
    start = _decimal(fixed)
    platforms = sorted(
        key[len(PLATFORM_PREFIX) :].split(".")[0] for key in props if key.startswith(PLATFORM_PREFIX)
    )
    tokens = {p.rsplit("-", 1)[-1] for p in platforms}
    token = {"tglm": "tGLM", "glm": "GLM"}.get(tokens.pop(), "?") if len(tokens) == 1 else "?"
    threads = props.get("golem.inf.cpu.threads")
    memory, storage = props.get("golem.inf.mem.gib"), props.get("golem.inf.storage.gib")
    return OfferRow(
        provider_id=provider_id,
        name=str(props.get("golem.node.id.name", "?")),
        runtime=str(props.get("golem.runtime.name", "?")),
        threads=threads if isinstance(threads, int) else None,
        memory_gib=float(memory) if isinstance(memory, int | float) else None,
        storage_gib=float(storage) if isinstance(storage, int | float) else None,
        per_cpu_hour=_amount(None if cpu is None else cpu * HOUR),
        per_hour=_amount(None if duration is None else duration * HOUR),
        start=_amount(start),
        token=token,
        platforms=platforms,
    )


async def scan(subnet: str, runtime: str | None, seconds: float) -> list[OfferRow]:
    """The offers that match a bare demand in ``subnet`` within ``seconds``, one per offer id."""
    demand = DemandBuilder()  # type: ignore[no-untyped-call]
    demand.add(NodeInfo(name="market-scan", subnet_tag=subnet))
    # Providers refuse demands that expire too soon or too late (5 to 30 minutes is safe).
    demand.add(Activity(expiration=datetime.now(UTC) + timedelta(minutes=10)))
    demand.ensure(f"(golem.node.debug.subnet={subnet})")
    if runtime:
        demand.ensure(f"(golem.runtime.name={runtime})")
    found: dict[str, OfferRow] = {}
    async with Configuration(api_config=ApiConfig()).market() as client:
        market = Market(client)
        async with market.subscribe(demand.properties, demand.constraints) as subscription:
            try:
                async with asyncio.timeout(seconds):
                    async for offer in subscription.events():
                        found.setdefault(offer.id, describe(offer.issuer, offer.props))
            except TimeoutError:
                pass
    return sorted(found.values(), key=lambda r: (r.name, r.runtime, r.provider_id))


def table(rows: list[OfferRow]) -> str:
    def show(value: object, unit: str = "") -> str:
        return "-" if value is None else f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"

    header = ("provider", "id", "runtime", "cpu", "memory", "disk", "per CPU-hour", "per hour", "start")
    lines = [header] + [
        (
            r.name,
            r.provider_id[:10],
            r.runtime,
            show(r.threads),
            show(r.memory_gib, " GiB"),
            show(r.storage_gib, " GiB"),
            show(r.per_cpu_hour, f" {r.token}"),
            show(r.per_hour, f" {r.token}"),
            show(r.start, f" {r.token}"),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    padded = ("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)
    return "\n".join(line.rstrip() for line in padded)


async def main(args: argparse.Namespace) -> int:
    rows = await scan(args.subnet_tag, args.runtime, args.seconds)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    providers = {r.provider_id for r in rows}
    print(f"{len(rows)} offer(s) from {len(providers)} provider(s) in subnet {args.subnet_tag}:")
    if rows:
        print(table(rows))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to collect (default: 5)")
    parser.add_argument("--runtime", help="only offers of this runtime (vm, wasmtime)")
    parser.add_argument("--subnet-tag", default=os.environ.get("YAGNA_SUBNET", "public"))
    parser.add_argument("--json", action="store_true", help="print the offers as JSON")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
