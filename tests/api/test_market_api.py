"""The market node's REST API (``/market/v1``) through a real server on a loopback port.

Offers and demands are put straight into the node's market (no WebSocket clients), so these tests
exercise only the REST edge: paging, constraint filtering, error mapping, statistics and the served
OpenAPI document.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from market.core.ids import NodeId, node_id
from market.hub.api import HTTP_STATUS
from market.hub.market import SubscriptionKind
from market.hub.openapi import COMMITTED_PATH
from market.hub.server import MarketNode, MarketNodeConfig
from market.protocol.errors import ErrorCode
from market.protocol.messages import AgreementState, ProposalState

PROVIDER_A = node_id("0x" + "a1" * 20)
PROVIDER_B = node_id("0x" + "b2" * 20)
REQUESTOR = node_id("0x" + "c3" * 20)


@pytest.fixture
async def node() -> AsyncIterator[MarketNode]:
    async with MarketNode(MarketNodeConfig(port=0)) as market_node:
        yield market_node


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def publish(
    node: MarketNode,
    owner: NodeId,
    properties: dict[str, Any],
    constraints: str = "(golem.srv.comp.expiration>0)",
    kind: SubscriptionKind = SubscriptionKind.OFFER,
) -> str:
    now = node.clock.now()
    sub_id, _ = node.market.subscribe(
        owner,
        kind,
        properties,
        constraints,
        now + timedelta(hours=1),
        now=now,
        monotonic=node.clock.monotonic(),
    )
    return sub_id


def vm_offer(cores: int, runtime: str = "vm") -> dict[str, Any]:
    # Nested on purpose: the API must list the flat form the market stores.
    return {"golem": {"runtime": {"name": runtime}, "inf": {"cpu": {"cores": cores}}}}


async def get(http: aiohttp.ClientSession, node: MarketNode, path: str, **params: str) -> tuple[int, Any]:
    async with http.get(f"{node.url}/market/v1{path}", params=params) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


# --- offers -----------------------------------------------------------------------------------------


async def test_offer_has_the_documented_shape(node: MarketNode, http: aiohttp.ClientSession) -> None:
    offer_id = publish(node, PROVIDER_A, vm_offer(4))

    status, page = await get(http, node, "/offers")

    assert status == 200
    assert page["total"] == 1 and page["offset"] == 0 and page["limit"] == 50
    [offer] = page["items"]
    assert offer["offerId"] == offer_id
    assert offer["providerId"] == PROVIDER_A
    assert offer["properties"] == {"golem.runtime.name": "vm", "golem.inf.cpu.cores": 4}
    assert offer["constraints"] == "(golem.srv.comp.expiration>0)"
    assert offer["timestamp"].endswith("Z") and offer["expiration"].endswith("Z")
    assert offer["timestamp"] < offer["expiration"]

    status, single = await get(http, node, f"/offers/{offer_id}")
    assert status == 200
    assert single == offer


async def test_offers_page_by_offset_and_limit(node: MarketNode, http: aiohttp.ClientSession) -> None:
    ids = [publish(node, PROVIDER_A, vm_offer(cores)) for cores in range(1, 8)]

    pages = []
    for offset in (0, 3, 6):
        status, page = await get(http, node, "/offers", offset=str(offset), limit="3")
        assert status == 200
        assert (page["total"], page["offset"], page["limit"]) == (7, offset, 3)
        pages.append([item["offerId"] for item in page["items"]])

    assert pages == [ids[0:3], ids[3:6], ids[6:7]]
    status, beyond = await get(http, node, "/offers", offset="50")
    assert status == 200
    assert beyond["items"] == [] and beyond["total"] == 7


async def test_offers_filter_by_runtime_name(node: MarketNode, http: aiohttp.ClientSession) -> None:
    vm = [publish(node, PROVIDER_A, vm_offer(2)), publish(node, PROVIDER_B, vm_offer(8))]
    publish(node, PROVIDER_B, vm_offer(16, runtime="wasmtime"))

    status, page = await get(http, node, "/offers", constraint="(golem.runtime.name=vm)")

    assert status == 200
    assert page["total"] == 2
    assert [item["offerId"] for item in page["items"]] == vm


async def test_offers_filter_by_number(node: MarketNode, http: aiohttp.ClientSession) -> None:
    small = publish(node, PROVIDER_A, vm_offer(2))
    big = publish(node, PROVIDER_A, vm_offer(8))
    huge = publish(node, PROVIDER_B, vm_offer(16, runtime="wasmtime"))

    _, at_least_8 = await get(http, node, "/offers", constraint="(golem.inf.cpu.cores>=8)")
    _, vm_at_least_4 = await get(
        http, node, "/offers", constraint="(&(golem.inf.cpu.cores>=4)(golem.runtime.name=vm))"
    )
    _, none = await get(http, node, "/offers", constraint="(golem.inf.cpu.cores>=64)")

    assert [item["offerId"] for item in at_least_8["items"]] == [big, huge]
    assert [item["offerId"] for item in vm_at_least_4["items"]] == [big]
    assert none == {"items": [], "total": 0, "offset": 0, "limit": 50}
    assert small not in {item["offerId"] for item in at_least_8["items"]}


async def test_filter_and_paging_combine(node: MarketNode, http: aiohttp.ClientSession) -> None:
    vm = [publish(node, PROVIDER_A, vm_offer(cores)) for cores in range(1, 6)]
    for cores in range(1, 6):
        publish(node, PROVIDER_B, vm_offer(cores, runtime="wasmtime"))

    _, page = await get(http, node, "/offers", constraint="(golem.runtime.name=vm)", offset="1", limit="2")

    assert page["total"] == 5
    assert [item["offerId"] for item in page["items"]] == vm[1:3]


async def test_blank_constraint_lists_everything(node: MarketNode, http: aiohttp.ClientSession) -> None:
    publish(node, PROVIDER_A, vm_offer(1))
    publish(node, PROVIDER_A, vm_offer(1, runtime="wasmtime"))

    _, page = await get(http, node, "/offers", constraint="  ")

    assert page["total"] == 2


async def test_bad_constraint_is_400_with_its_position(node: MarketNode, http: aiohttp.ClientSession) -> None:
    publish(node, PROVIDER_A, vm_offer(1))

    status, body = await get(http, node, "/offers", constraint="(golem.runtime.name=vm")

    assert status == 400
    assert set(body) == {"message"}
    assert "position" in body["message"]
    assert any(ch.isdigit() for ch in body["message"].split("position", 1)[1])


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"limt": "10"}, "limt"),
    ],
)
async def test_bad_paging_is_400(
    node: MarketNode, http: aiohttp.ClientSession, params: dict[str, str], mentions: str
) -> None:
    status, body = await get(http, node, "/offers", **params)

    assert status == 400
    assert set(body) == {"message"}
    assert mentions in body["message"]


async def test_repeated_parameter_is_400(node: MarketNode, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{node.url}/market/v1/offers?limit=5&limit=6") as response:
        assert response.status == 400
        assert "limit" in (await response.json())["message"]


async def test_limit_bounds_are_inclusive(node: MarketNode, http: aiohttp.ClientSession) -> None:
    for limit in ("1", "500"):
        status, page = await get(http, node, "/offers", limit=limit)
        assert status == 200
        assert page["limit"] == int(limit)


async def test_unknown_offer_is_404_json(node: MarketNode, http: aiohttp.ClientSession) -> None:
    demand_id = publish(node, REQUESTOR, {"golem.srv.comp.expiration": 1}, "", kind=SubscriptionKind.DEMAND)

    status, body = await get(http, node, "/offers/" + "0" * 32)
    assert status == 404
    assert set(body) == {"message"} and "0" * 32 in body["message"]

    # A demand's id is not an offer's.
    status, body = await get(http, node, f"/offers/{demand_id}")
    assert status == 404


async def test_withdrawn_offer_disappears(node: MarketNode, http: aiohttp.ClientSession) -> None:
    offer_id = publish(node, PROVIDER_A, vm_offer(2))
    node.market.unsubscribe(PROVIDER_A, offer_id)

    status, _ = await get(http, node, f"/offers/{offer_id}")
    _, page = await get(http, node, "/offers", constraint="(golem.runtime.name=vm)")

    assert status == 404
    assert page["total"] == 0


# --- demands, nodes ---------------------------------------------------------------------------------


async def test_demands_are_listed_and_paged(node: MarketNode, http: aiohttp.ClientSession) -> None:
    ids = [
        publish(
            node,
            REQUESTOR,
            {"golem.srv.comp.expiration": n},
            "(golem.runtime.name=vm)",
            SubscriptionKind.DEMAND,
        )
        for n in range(3)
    ]
    publish(node, PROVIDER_A, vm_offer(1, runtime="wasmtime"))

    status, page = await get(http, node, "/demands", limit="2")

    assert status == 200
    assert (page["total"], page["offset"], page["limit"]) == (3, 0, 2)
    assert [item["demandId"] for item in page["items"]] == ids[:2]
    demand = page["items"][0]
    assert set(demand) == {"demandId", "requestorId", "properties", "constraints", "timestamp", "expiration"}
    assert demand["requestorId"] == REQUESTOR
    assert demand["properties"] == {"golem.srv.comp.expiration": 0}
    assert demand["constraints"] == "(golem.runtime.name=vm)"

    status, body = await get(http, node, "/demands", limit="1000")
    assert status == 400 and "limit" in body["message"]


async def test_nodes_is_an_empty_list_without_sessions(node: MarketNode, http: aiohttp.ClientSession) -> None:
    status, body = await get(http, node, "/nodes")

    assert status == 200
    assert body == []


# --- stats ------------------------------------------------------------------------------------------


async def test_stats_shape_when_idle(node: MarketNode, http: aiohttp.ClientSession) -> None:
    status, stats = await get(http, node, "/stats")

    assert status == 200
    assert stats == {
        "offers": 0,
        "demands": 0,
        "connectedNodes": 0,
        "proposals": {
            "live": {state.value: 0 for state in ProposalState},
            "total": {state.value: 0 for state in ProposalState},
        },
        "agreements": {
            "live": {state.value: 0 for state in AgreementState},
            "total": {state.value: 0 for state in AgreementState},
        },
        "negotiationLatencyMs": {"count": 0, "p50": None, "p90": None, "p99": None},
    }


async def test_stats_count_matches_as_proposals(node: MarketNode, http: aiohttp.ClientSession) -> None:
    publish(node, PROVIDER_A, vm_offer(4))
    publish(node, PROVIDER_B, vm_offer(4, runtime="wasmtime"))
    publish(
        node, REQUESTOR, {"golem.srv.comp.expiration": 1}, "(golem.runtime.name=vm)", SubscriptionKind.DEMAND
    )

    _, stats = await get(http, node, "/stats")

    assert (stats["offers"], stats["demands"]) == (2, 1)
    # The demand matched one offer: the market node made one Initial proposal for the requestor.
    assert stats["proposals"]["live"]["Initial"] == 1
    assert stats["proposals"]["total"]["Initial"] == 1
    assert sum(stats["agreements"]["total"].values()) == 0


async def test_stats_latency_percentiles_are_nearest_rank(
    node: MarketNode, http: aiohttp.ClientSession
) -> None:
    # 1..100 in shuffled order: the deque is not sorted, the summary must sort it.
    node.market.negotiation_latency_ms.extend(float((n * 37) % 100 + 1) for n in range(100))

    _, stats = await get(http, node, "/stats")

    assert stats["negotiationLatencyMs"] == {"count": 100, "p50": 50.0, "p90": 90.0, "p99": 99.0}


async def test_stats_latency_with_few_values(node: MarketNode, http: aiohttp.ClientSession) -> None:
    node.market.negotiation_latency_ms.extend([30.0, 10.0, 20.0])

    _, stats = await get(http, node, "/stats")

    # ranks: ceil(0.5 * 3) = 2, ceil(0.9 * 3) = 3, ceil(0.99 * 3) = 3
    assert stats["negotiationLatencyMs"] == {"count": 3, "p50": 20.0, "p90": 30.0, "p99": 30.0}


# --- errors and the document ------------------------------------------------------------------------


async def test_unknown_path_and_method_get_json_errors(node: MarketNode, http: aiohttp.ClientSession) -> None:
    status, body = await get(http, node, "/nothing-here")
    assert status == 404
    assert set(body) == {"message"}

    async with http.post(f"{node.url}/market/v1/offers") as response:
        assert response.status == 405
        assert response.content_type == "application/json"
        assert set(await response.json()) == {"message"}
        assert "GET" in response.headers["Allow"]


async def test_unexpected_failure_is_500_without_details(
    node: MarketNode, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    # A latency that is not a number makes the percentile sort fail inside the handler.
    node.market.negotiation_latency_ms.extend([1.0, "not a number"])  # type: ignore[list-item]

    with caplog.at_level("ERROR", logger="market.hub.api"):
        status, body = await get(http, node, "/stats")

    assert status == 500
    assert body == {"message": "internal error"}
    assert any(record.exc_info for record in caplog.records)


def test_every_market_error_code_has_a_status() -> None:
    assert set(HTTP_STATUS) == set(ErrorCode)
    assert HTTP_STATUS[ErrorCode.BAD_REQUEST] == 400
    assert HTTP_STATUS[ErrorCode.UNAUTHORIZED] == 401
    assert HTTP_STATUS[ErrorCode.NOT_FOUND] == 404
    assert HTTP_STATUS[ErrorCode.CONFLICT] == 409
    assert HTTP_STATUS[ErrorCode.GONE] == 410
    assert HTTP_STATUS[ErrorCode.LIMIT_EXCEEDED] == HTTP_STATUS[ErrorCode.RATE_LIMITED] == 429


async def test_served_openapi_equals_the_committed_file(
    node: MarketNode, http: aiohttp.ClientSession
) -> None:
    committed = COMMITTED_PATH.read_text(encoding="utf-8")

    async with http.get(f"{node.url}/market/v1/openapi.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        text = await response.text()

    assert text == committed
    served = json.loads(text)
    assert served["openapi"].startswith("3.1")
    assert set(served["paths"]) == {
        "/offers",
        "/offers/{offerId}",
        "/demands",
        "/nodes",
        "/stats",
        "/agreements",
        "/openapi.json",
        # The package registry, served from the root (each of these paths names its own server).
        "/packages",
        "/packages/{hash}",
        "/v1/image/info",
    }
