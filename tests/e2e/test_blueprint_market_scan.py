"""The market scan blueprint against a real requestor daemon: it lists every provider's offers
(one per runtime) with resources and prices in human units that agree with the offers the market
node itself holds, and it signs nothing (no agreement, no invoice)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from blueprints.localnet import invoices, local_network, run_script
from market.hub.registry_client import registry_base
from tests.e2e.blueprint_support import SCRIPTS, provider_id

SCAN = SCRIPTS / "market_scan.py"


@pytest.mark.timeout(180)
async def test_scan_lists_every_provider_with_prices(tmp_path: Path, busybox: object) -> None:
    image = busybox.archive  # type: ignore[attr-defined]
    async with local_network(tmp_path, image, providers=3) as net:
        code, text = await run_script(net, SCAN, "--json", "--seconds", "3")
        assert code == 0, text + net.logs()
        rows = json.loads(text[text.index("[") :])
        ids = {n: provider_id(net, f"provider-{n}") for n in (1, 2, 3)}
        assert {(r["name"], r["runtime"]) for r in rows} == {
            (f"provider-{n}", runtime) for n in (1, 2, 3) for runtime in ("vm", "wasmtime")
        }, rows
        assert all(r["provider_id"].lower() == ids[int(r["name"].rsplit("-", 1)[1])] for r in rows), rows

        # What the market node holds for the same offers, in its own units (per second).
        base = registry_base(net.market_ws)
        async with aiohttp.ClientSession() as http, http.get(f"{base}market/v1/offers?limit=100") as response:
            offers = (await response.json())["items"]
        for row in rows:
            [offer] = [
                o for o in offers
                if o["providerId"].lower() == row["provider_id"].lower()
                and o["properties"]["golem.runtime.name"] == row["runtime"]
            ]  # fmt: skip
            props = offer["properties"]
            prices = dict(
                zip(
                    props["golem.com.usage.vector"],
                    props["golem.com.pricing.model.linear.coeffs"],
                    strict=False,
                )
            )
            hourly = Decimal(str(prices["golem.usage.cpu_sec"])) * 3600
            assert abs(Decimal(row["per_cpu_hour"]) - hourly) < Decimal("1e-9"), (row, props)
            assert Decimal(row["per_hour"]) >= 0 and Decimal(row["start"]) >= 0, row
            assert row["threads"] == props["golem.inf.cpu.threads"] and row["memory_gib"] > 0, row
            assert row["platforms"] == [net.platform], row

        # The table form says the same, in human units.
        code, table = await run_script(net, SCAN, "--seconds", "2", "--runtime", "wasmtime")
        assert code == 0, table
        assert "3 offer(s) from 3 provider(s) in subnet public:" in table, table
        assert "per CPU-hour" in table and " GiB" in table, table
        assert await invoices(net) == []
