"""The market node's web console in a real headless Chromium, against a real node with real clients.

Two providers publish offers over authenticated WebSocket sessions and a requestor negotiates an
agreement with one of them; the page must show the offers, the nodes, the agreement and the
statistics, follow changes without being reloaded, filter offers by a constraint (from the URL and
from its filter box), and show hostile data as text. A screenshot is saved in the test's temporary
folder (its path is printed; run with ``-s`` to see it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from market.client import MarketClient
from market.core.clock import SystemClock, to_millis
from market.core.identity import Identity
from market.demo import demo_demand, demo_offer
from market.hub.server import MarketNode, MarketNodeConfig
from market.protocol.messages import AgreementEventType
from tests.integration.chromium import Page, chromium, find_chromium
from tests.integration.conftest import in_an_hour, reach_provider_draft

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="chromium is not installed (scripts/setup-system installs Debian's chromium as root)",
)

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"

ROWS = (
    "[...document.querySelectorAll('#{table} tbody tr')].map(tr => [...tr.cells].map(td => td.textContent))"
)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[MarketNode]:
    config = MarketNodeConfig(port=0, sweep_interval=0.05, data_dir=tmp_path / "market")
    async with MarketNode(config) as market_node:
        yield market_node


@pytest.fixture
async def clients(node: MarketNode) -> AsyncIterator[list[MarketClient]]:
    opened: list[MarketClient] = []
    for name in ("alpha-node", "beta-node", "requestor-node"):
        client = MarketClient(node.ws_url, Identity.generate(), name, request_timeout=5.0)
        await client.connect(timeout=5.0)
        opened.append(client)
    yield opened
    for client in opened:
        await client.close()


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    async with chromium(tmp_path / "chromium-profile") as tab:
        yield tab


def offer(client: MarketClient, **changes: Any) -> tuple[dict[str, Any], str]:
    props, constraints = demo_offer(client.identity, to_millis(SystemClock().now()))
    return {**props, **changes}, constraints


async def rows(page: Page, table: str) -> list[list[str]]:
    value = await page.evaluate(ROWS.format(table=table))
    assert isinstance(value, list)
    return value


async def offer_names(page: Page) -> list[str]:
    return sorted(row[0] for row in await rows(page, "offers") if len(row) > 1)


async def wait_offer_names(page: Page, names: list[str]) -> None:
    expression = (
        f"JSON.stringify([...document.querySelectorAll('#offers tbody tr')]"
        f".filter(tr => tr.cells.length > 1).map(tr => tr.cells[0].textContent).sort()) === "
        f"{json.dumps(json.dumps(sorted(names), separators=(',', ':')))}"
    )
    try:
        await page.wait_for(expression)
    except AssertionError:
        raise AssertionError(f"offers shown: {await offer_names(page)}, expected {sorted(names)}") from None


async def text_of(page: Page, element_id: str) -> str:
    value = await page.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent")
    return str(value)


async def test_console_shows_the_market_live_and_filters_offers(
    node: MarketNode, clients: list[MarketClient], page: Page, tmp_path: Path
) -> None:
    alpha, beta, requestor = clients
    alpha_props, alpha_cons = offer(alpha, **{"golem.node.id.name": "provider-alpha"})
    alpha_offer = await alpha.subscribe_offer(alpha_props, alpha_cons, in_an_hour())
    beta_props, beta_cons = offer(
        beta,
        **{
            "golem.node.id.name": "provider-beta",
            "golem.runtime.name": "wasmtime",
            "golem.inf.cpu.threads": 2,
        },
    )
    await beta.subscribe_offer(beta_props, beta_cons, in_an_hour())

    # 1. The page lists both offers, the three nodes and the counts.
    await page.navigate(f"{node.url}/")
    await wait_offer_names(page, ["provider-alpha", "provider-beta"])
    offers = {row[0]: row for row in await rows(page, "offers")}
    assert offers["provider-alpha"][1] == alpha.identity.node_id
    assert offers["provider-alpha"][2].startswith("vm ")
    assert offers["provider-beta"][1] == beta.identity.node_id
    assert offers["provider-beta"][2].startswith("wasmtime ")
    assert offers["provider-beta"][3] == "2"
    nodes = {row[1]: row[0] for row in await rows(page, "nodes")}
    assert nodes == {
        alpha.identity.node_id: "alpha-node",
        beta.identity.node_id: "beta-node",
        requestor.identity.node_id: "requestor-node",
    }
    assert await text_of(page, "stat-offers") == "2"
    assert await text_of(page, "stat-nodes") == "3"
    assert await text_of(page, "offers-count") == "(2)"
    assert (await text_of(page, "status")).startswith("live")

    # 2. Without a reload, the page follows a negotiation to an approved agreement.
    await page.evaluate("window.__sameDocument = true")
    demand_props, demand_cons = demo_demand(requestor.identity, to_millis(in_an_hour()))
    demand_id = await requestor.subscribe_demand(demand_props, demand_cons, in_an_hour())
    answer = await reach_provider_draft(alpha, requestor, alpha_offer, demand_id)
    agreement = await requestor.create_agreement(answer.proposal.proposal_id, in_an_hour())
    await requestor.confirm_agreement(agreement)
    proposed = await alpha.next_agreement_event(timeout=5)
    await alpha.approve_agreement(proposed.agreement)
    approved = await requestor.next_agreement_event(timeout=5)
    assert approved.event_type is AgreementEventType.APPROVED

    await page.wait_for("document.getElementById('stat-approved').textContent === '1'")
    await page.wait_for("document.querySelectorAll('#agreements tbody tr[data-key]').length === 1")
    [shown] = await rows(page, "agreements")
    assert shown[1:4] == [alpha.identity.node_id, requestor.identity.node_id, "Approved"]
    assert shown[0].startswith(agreement.agreement_id[:16])
    assert await text_of(page, "stat-demands") == "1"
    assert await text_of(page, "stat-latency-count") == "1"
    assert await page.evaluate("window.__sameDocument === true")

    screenshot = await page.screenshot(tmp_path / "console.png")
    print(f"console screenshot: {screenshot}")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000

    # 3. A constraint in the URL filters the offers through the API.
    await page.navigate(f"{node.url}/?constraint={quote('(golem.runtime.name=wasmtime)')}")
    await wait_offer_names(page, ["provider-beta"])
    assert (
        await page.evaluate("document.getElementById('constraint').value") == "(golem.runtime.name=wasmtime)"
    )
    assert await text_of(page, "offers-count") == "(1)"
    await page.screenshot(tmp_path / "console-filtered.png")

    # 4. So does the filter box; the URL follows it, and a bad constraint is explained, not fatal.
    await page.evaluate(
        "document.getElementById('constraint').value = '(golem.inf.cpu.threads>=4)';"
        "document.getElementById('filter-form').requestSubmit()"
    )
    await wait_offer_names(page, ["provider-alpha"])
    search = "new URLSearchParams(location.search).get('constraint')"
    assert await page.evaluate(search) == "(golem.inf.cpu.threads>=4)"
    await page.evaluate(
        "document.getElementById('constraint').value = '(golem.inf.cpu.threads>=';"
        "document.getElementById('filter-form').requestSubmit()"
    )
    await page.wait_for("!document.getElementById('filter-error').hidden")
    assert "invalid constraint" in await text_of(page, "filter-error")
    assert await offer_names(page) == []
    await page.evaluate("document.getElementById('clear-filter').click()")
    await wait_offer_names(page, ["provider-alpha", "provider-beta"])
    assert await page.evaluate(search) is None

    # 5. Hostile property values are shown as text: no element is created, no script runs.
    hostile_props, hostile_cons = offer(beta, **{"golem.node.id.name": HOSTILE})
    await beta.subscribe_offer(hostile_props, hostile_cons, in_an_hour())
    await wait_offer_names(page, ["provider-alpha", "provider-beta", HOSTILE])
    assert await page.evaluate("document.querySelectorAll('#offers img').length") == 0
    assert await page.evaluate("document.title") == "Golem market node"


async def test_console_page_is_self_contained(node: MarketNode) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        policy = response.headers["Content-Security-Policy"]
        html = await response.text()

    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "'unsafe-inline'" not in policy and "'sha256-" in policy
    assert "http://" not in html and "https://" not in html and "//cdn" not in html  # no external resources
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html and "document.write" not in html
