"""``GET /market/v1/agreements``: what the console lists, from a real negotiation between real clients."""

from __future__ import annotations

import aiohttp

from market.hub.server import MarketNode
from market.protocol.messages import AgreementEventType
from tests.integration.conftest import ClientFactory, in_an_hour, publish_pair, reach_provider_draft


async def agreements(node: MarketNode, **params: str) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{node.url}/market/v1/agreements", params=params) as response,
    ):
        assert response.status == 200, await response.text()
        page: dict[str, object] = await response.json()
        return page


async def test_agreements_list_parties_state_and_times(
    market_node: MarketNode, connect: ClientFactory
) -> None:
    assert await agreements(market_node) == {"items": [], "total": 0, "offset": 0, "limit": 50}
    provider, requestor = await connect("provider"), await connect("requestor")
    offer_id, demand_id = await publish_pair(provider, requestor)
    answer = await reach_provider_draft(provider, requestor, offer_id, demand_id)
    agreement = await requestor.create_agreement(answer.proposal.proposal_id, in_an_hour())

    page = await agreements(market_node)
    assert page["total"] == 1
    [item] = page["items"]  # type: ignore[misc]
    assert item == {
        "agreementId": agreement.agreement_id,
        "providerId": provider.identity.node_id,
        "requestorId": requestor.identity.node_id,
        "state": "Proposal",
        "timestamp": item["timestamp"],
        "validTo": item["validTo"],
        "approvedDate": None,
    }

    await requestor.confirm_agreement(agreement)
    proposed = await provider.next_agreement_event(timeout=5)
    await provider.approve_agreement(proposed.agreement)
    assert (await requestor.next_agreement_event(timeout=5)).event_type is AgreementEventType.APPROVED

    [item] = (await agreements(market_node))["items"]  # type: ignore[misc]
    assert item["state"] == "Approved" and item["approvedDate"] is not None
    assert (await agreements(market_node, offset="1"))["items"] == []


async def test_agreements_paging_is_checked(market_node: MarketNode) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{market_node.url}/market/v1/agreements", params={"limit": "0"}) as response,
    ):
        assert response.status == 400
        assert "limit" in (await response.json())["message"]
