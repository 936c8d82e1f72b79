"""Tutorial: a yapapi run's market steps (spec §5, steps 1 and 6-10, 16) through the real ya-aioclient.

The pieces: a market node (``MarketNode``) on a free port; our requestor daemon connected to it,
serving yagna's REST API on another free port; a provider node played by a bare ``MarketClient``;
and ya-aioclient's ``RequestorApi``, the very client yapapi uses, carrying an app key. Every
response below passed ya_market's own validation (required fields, enum values), which is what
makes it safe for unchanged yapapi scripts.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from ya_market.api.requestor_api import RequestorApi

from market.demo import PLATFORM
from market.protocol.messages import AgreementEventType, Party
from requestor.daemon import RequestorDaemon
from tests.requestor.conftest import Provider, agree, collect, countered, demand_body, negotiate

pytestmark = pytest.mark.integration


async def raw_get(daemon: RequestorDaemon, key: str, path: str, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{daemon.url}{path}", params=params, headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_a_yapapi_negotiation_end_to_end(
    daemon: RequestorDaemon, app_key: str, market_api: RequestorApi, provider: Provider
) -> None:
    # 1. yapapi asks who it is: the identity becomes its allocation's payer address.
    me = await raw_get(daemon, app_key, "/me")
    assert me == {"identity": daemon.node_id, "name": "tests", "role": "manager"}

    # 6. Publish the demand; the id comes back as a JSON string (ya_market json-decodes it).
    sub_id = await market_api.subscribe_demand(demand_body(daemon))
    assert isinstance(sub_id, str) and sub_id
    listed = await market_api.get_demands()
    assert [d.demand_id for d in listed] == [sub_id] and listed[0].requestor_id == daemon.node_id

    # 7-8. Long-poll the events: the market matched the provider's offer into an Initial proposal.
    (event,) = await collect(market_api, sub_id)
    initial = event.proposal
    assert type(event).__name__ == "ProposalEvent" and initial.state == "Initial"
    assert initial.issuer_id == provider.client.node_id
    props = initial.properties
    # Flat dotted keys, and floats stay floats (yapapi asserts float pricing coefficients).
    assert props["golem.node.id.name"] == "provider-1"
    assert props["golem.com.pricing.model.linear.coeffs"] == [0.0001, 0.00005, 0.0]
    assert all(isinstance(c, float) for c in props["golem.com.pricing.model.linear.coeffs"])
    assert isinstance(props["golem.inf.mem.gib"], float)

    # Counter with the chosen payment platform; our new proposal's id is a JSON string.
    ours = await market_api.counter_proposal_demand(sub_id, initial.proposal_id, countered(daemon))
    assert isinstance(ours, str) and ours != initial.proposal_id

    # 9. The provider answers with a Draft that points back at our proposal.
    assert await provider.answer_draft() == ours
    (event,) = await collect(market_api, sub_id)
    draft = event.proposal
    assert draft.state == "Draft" and draft.prev_proposal_id == ours
    fetched = await market_api.get_proposal_offer(sub_id, draft.proposal_id)
    assert fetched.proposal_id == draft.proposal_id and fetched.issuer_id == provider.client.node_id

    # 10. Agreement: create from the Draft, read it, confirm (we sign), wait for the provider.
    agreement_id = await agree(market_api, draft.proposal_id)
    agreement = await market_api.get_agreement(agreement_id)
    assert agreement.state == "Proposal"
    assert agreement.demand.properties["golem.com.payment.chosen-platform"] == PLATFORM
    assert agreement.offer.properties["golem.node.id.name"] == "provider-1"
    assert agreement.offer.provider_id == provider.client.node_id
    assert agreement.demand.demand_id == sub_id and agreement.offer.offer_id == provider.offer_id

    await market_api.confirm_agreement(agreement_id)
    await provider.approve_next()  # the provider verifies our signature, then counter-signs
    await market_api.wait_for_approval(agreement_id, timeout=15)  # 204

    approved = await market_api.get_agreement(agreement_id)
    assert approved.state == "Approved" and approved.approved_signature and approved.proposed_signature
    assert isinstance(approved.approved_date, datetime) and approved.approved_date.tzinfo is not None

    # The agreement feed (yapapi does not read it; provider agents do). ya-aioclient's model for it
    # predates the spec's AgreementOperationEvent, so it is read as plain JSON.
    feed = await raw_get(daemon, app_key, "/market-api/v1/agreementEvents", timeout="1")
    assert [(e["eventType"], e["agreementId"]) for e in feed] == [("AgreementApprovedEvent", agreement_id)]
    assert feed[0]["eventDate"].endswith("Z")

    # 16. Done: unsubscribe, then terminate with yapapi's reason (extra keys survive).
    await market_api.unsubscribe_demand(sub_id)
    reason = {"message": "Successfully finished all work", "golem.requestor.code": "Success"}
    await market_api.terminate_agreement(agreement_id, request_body=reason)
    terminated = await provider.next_agreement_event(AgreementEventType.TERMINATED)
    assert terminated.terminator is Party.REQUESTOR and terminated.reason == reason

    assert (await market_api.get_agreement(agreement_id)).state == "Terminated"
    assert (
        await raw_get(daemon, app_key, f"/market-api/v1/agreements/{agreement_id}/terminate/reason") == reason
    )

    # Strictly after the approval's eventDate: only the termination (passed back as yapapi does, +00:00).
    after = datetime.fromisoformat(feed[0]["eventDate"]).isoformat()
    later = await raw_get(
        daemon, app_key, "/market-api/v1/agreementEvents", afterTimestamp=after, timeout="1"
    )
    assert [e["eventType"] for e in later] == ["AgreementTerminatedEvent"]
    assert later[0]["terminator"] == "Requestor" and later[0]["signature"].startswith("0x")
    assert later[0]["reason"] == reason

    listing = await raw_get(daemon, app_key, "/market-api/v1/agreements")
    assert [(a["id"], a["role"]) for a in listing] == [(agreement_id, "Requestor")]

    # The agreement, with both signatures, is on disk.
    row = daemon.db.execute(
        "SELECT provider_id, state, proposed_signature, approved_signature FROM agreements"
    ).fetchone()
    assert row["provider_id"] == provider.client.node_id and row["state"] == "Terminated"
    assert row["proposed_signature"] == approved.proposed_signature
    assert row["approved_signature"] == approved.approved_signature


async def test_agreement_feed_long_poll_wakes_on_a_change(
    daemon: RequestorDaemon, app_key: str, market_api: RequestorApi, provider: Provider
) -> None:
    """A long-polling ``/agreementEvents`` answers as soon as the provider approves, not at its timeout."""
    _, draft_id = await negotiate(market_api, daemon, provider)
    agreement_id = await agree(market_api, draft_id)
    await market_api.confirm_agreement(agreement_id)
    since = datetime.now(UTC).isoformat()
    poll = asyncio.create_task(
        raw_get(daemon, app_key, "/market-api/v1/agreementEvents", afterTimestamp=since, timeout="8")
    )
    proposed = await provider.next_agreement_event(AgreementEventType.PROPOSED)
    started = asyncio.get_running_loop().time()
    await provider.client.approve_agreement(proposed.agreement)
    events = await poll
    assert asyncio.get_running_loop().time() - started < 3
    assert [e["eventType"] for e in events] == ["AgreementApprovedEvent"]


async def test_events_long_poll_wakes_on_a_proposal(
    daemon: RequestorDaemon, market_api: RequestorApi, provider: Provider
) -> None:
    """``/demands/{id}/events`` answers when the provider's Draft arrives, not at its timeout."""
    sub_id = await market_api.subscribe_demand(demand_body(daemon))
    (event,) = await collect(market_api, sub_id)
    await market_api.counter_proposal_demand(sub_id, event.proposal.proposal_id, countered(daemon))
    loop = asyncio.get_running_loop()
    poll = asyncio.create_task(market_api.collect_offers(sub_id, timeout=8, max_events=10))
    await asyncio.sleep(0.1)  # let the poll reach the daemon and start waiting
    started = loop.time()
    await provider.answer_draft()
    (draft,) = await poll
    assert loop.time() - started < 3 and draft.proposal.state == "Draft"
    # Nothing is delivered twice: the buffer is empty now.
    assert await market_api.collect_offers(sub_id, timeout=0, max_events=10) == []
