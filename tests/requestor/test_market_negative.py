"""Refusals of the Market API: each answers the status yagna would, with a JSON message, and
changes no state."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import ya_market
from ya_market.api.requestor_api import RequestorApi

from market.core.clock import SystemClock
from market.core.identity import Identity
from market.protocol.messages import AgreementEventType
from requestor.config import RequestorConfig
from requestor.daemon import RequestorDaemon
from tests.requestor.conftest import Provider, agree, collect, countered, demand_body, negotiate

pytestmark = pytest.mark.integration


async def call(
    daemon: RequestorDaemon, method: str, path: str, key: str | None, data: Any = None, **headers: str
) -> tuple[int, Any]:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{daemon.url}{path}", data=data, headers=headers) as resp,
    ):
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


async def api_error(coro: Any) -> tuple[int, str]:
    with pytest.raises(ya_market.ApiException) as info:
        await coro
    return info.value.status, json.loads(info.value.body)["message"]


async def test_requests_without_a_valid_app_key_are_refused(daemon: RequestorDaemon, app_key: str) -> None:
    for key in (None, "wrong-key", ""):
        for method, path in (
            ("GET", "/me"),
            ("GET", "/market-api/v1/demands"),
            ("POST", "/market-api/v1/demands"),
        ):
            status, body = await call(daemon, method, path, key, data=b"{}")
            assert status == 401 and "app key" in body["message"], (key, path)
    # Not Bearer, or a lowercase header name (what yapapi sends): scheme matters, case does not.
    assert (await call(daemon, "GET", "/me", None, Authorization=f"Basic {app_key}"))[0] == 401
    status, body = await call(daemon, "GET", "/me", None, authorization=f"bearer {app_key}")
    assert status == 200 and body["identity"] == daemon.node_id
    # Nothing was published by the refused POSTs.
    assert (await call(daemon, "GET", "/market-api/v1/demands", app_key))[1] == []


async def test_malformed_bodies_are_400_with_a_message(daemon: RequestorDaemon, app_key: str) -> None:
    for body in (
        b"{not json",
        b"",
        b"[]",
        b'{"properties": {}}',
        b'{"properties": {}, "constraints": "", "x": 1}',
    ):
        status, answer = await call(daemon, "POST", "/market-api/v1/demands", app_key, data=body)
        assert status == 400 and answer["message"], body
    status, answer = await call(
        daemon, "POST", "/market-api/v1/agreements", app_key, data=b'{"proposalId": "p", "validTo": "soon"}'
    )
    assert status == 400 and "validTo" in answer["message"]
    status, answer = await call(
        daemon, "GET", "/market-api/v1/agreementEvents?afterTimestamp=2026-01-01T00:00:00", app_key
    )
    assert status == 400 and "afterTimestamp" in answer["message"]
    status, answer = await call(daemon, "GET", "/market-api/v1/demands/x/events?maxEvents=0", app_key)
    assert status == 400 and "maxEvents" in answer["message"]
    assert (await call(daemon, "GET", "/market-api/v1/demands", app_key))[1] == []


async def test_unknown_ids_are_404(market_api: RequestorApi, daemon: RequestorDaemon) -> None:
    assert (await api_error(market_api.collect_offers("nope", timeout=0)))[0] == 404
    assert (await api_error(market_api.unsubscribe_demand("nope")))[0] == 404
    assert (await api_error(market_api.get_agreement("nope")))[0] == 404
    assert (await api_error(market_api.confirm_agreement("nope")))[0] == 404
    assert (await api_error(market_api.wait_for_approval("nope", timeout=0)))[0] == 404
    assert (await api_error(market_api.terminate_agreement("nope", request_body={"message": "x"})))[0] == 404
    assert (await api_error(agree(market_api, "nope")))[0] == 404
    sub_id = await market_api.subscribe_demand(demand_body(daemon))
    assert (await api_error(market_api.counter_proposal_demand(sub_id, "nope", countered(daemon))))[0] == 404
    assert (await api_error(market_api.get_proposal_offer(sub_id, "nope")))[0] == 404
    assert await market_api.collect_offers(sub_id, timeout=0) == []
    # After unsubscribing, the events long-poll is 404 (yapapi re-subscribes) and a second DELETE 410.
    await market_api.unsubscribe_demand(sub_id)
    assert (await api_error(market_api.collect_offers(sub_id, timeout=0)))[0] == 404
    assert (await api_error(market_api.unsubscribe_demand(sub_id)))[0] == 410


async def test_countering_twice_is_410_and_sends_nothing(
    market_api: RequestorApi, daemon: RequestorDaemon, provider: Provider
) -> None:
    sub_id = await market_api.subscribe_demand(demand_body(daemon))
    (event,) = await collect(market_api, sub_id)
    initial_id = event.proposal.proposal_id
    # An agreement cannot be made from an Initial proposal: no negotiation took place.
    assert (await api_error(agree(market_api, initial_id)))[0] == 400
    await market_api.counter_proposal_demand(sub_id, initial_id, countered(daemon))
    status, message = await api_error(
        market_api.counter_proposal_demand(sub_id, initial_id, countered(daemon))
    )
    assert status == 410 and "already countered" in message
    await provider.client.next_event(provider.offer_id, timeout=5)  # the one Draft
    with pytest.raises(TimeoutError):
        await provider.client.next_event(provider.offer_id, timeout=0.3)


async def test_a_counter_that_does_not_match_is_400(
    market_api: RequestorApi, daemon: RequestorDaemon, provider: Provider
) -> None:
    sub_id = await market_api.subscribe_demand(demand_body(daemon))
    (event,) = await collect(market_api, sub_id)
    body = countered(daemon)
    body.constraints = "(golem.inf.mem.gib>=1000)"
    assert (await api_error(market_api.counter_proposal_demand(sub_id, event.proposal.proposal_id, body)))[
        0
    ] == 400
    # Nothing was countered: the proper counter still goes through.
    await market_api.counter_proposal_demand(sub_id, event.proposal.proposal_id, countered(daemon))


async def test_wait_answers_408_then_410_naming_the_final_state(
    market_api: RequestorApi, daemon: RequestorDaemon, provider: Provider
) -> None:
    _, draft_id = await negotiate(market_api, daemon, provider)
    agreement_id = await agree(market_api, draft_id)
    # Not confirmed yet: a conflict, not a wait.
    assert (await api_error(market_api.wait_for_approval(agreement_id, timeout=0.1)))[0] == 409
    await market_api.confirm_agreement(agreement_id)
    # Confirming twice: the agreement is already Pending.
    assert (await api_error(market_api.confirm_agreement(agreement_id)))[0] == 409
    assert (await api_error(market_api.wait_for_approval(agreement_id, timeout=0.2)))[0] == 408

    proposed = await provider.next_agreement_event(AgreementEventType.PROPOSED)
    waiting = asyncio.create_task(api_error(market_api.wait_for_approval(agreement_id, timeout=10)))
    await provider.client.reject_agreement(proposed.agreement.agreement_id, {"message": "busy"})
    status, message = await waiting
    assert status == 410 and "Rejected" in message
    assert (await market_api.get_agreement(agreement_id)).state == "Rejected"
    assert (await api_error(market_api.terminate_agreement(agreement_id, request_body={"message": "x"})))[
        0
    ] == 410
    assert (await market_api.get_agreement(agreement_id)).state == "Rejected"


async def test_cancel_before_approval(
    market_api: RequestorApi, daemon: RequestorDaemon, provider: Provider
) -> None:
    _, draft_id = await negotiate(market_api, daemon, provider)
    agreement_id = await agree(market_api, draft_id)
    await market_api.cancel_agreement(agreement_id, request_body={"message": "changed my mind"})
    assert (await market_api.get_agreement(agreement_id)).state == "Cancelled"
    status, message = await api_error(market_api.wait_for_approval(agreement_id, timeout=1))
    assert status == 410 and "Cancelled" in message
    # The same Draft cannot make a second agreement.
    valid_to = SystemClock().now() + timedelta(hours=1)
    again = market_api.create_agreement(ya_market.AgreementProposal(proposal_id=draft_id, valid_to=valid_to))
    assert (await api_error(again))[0] in (400, 410)


async def test_rejections_both_ways(
    market_api: RequestorApi, daemon: RequestorDaemon, provider: Provider
) -> None:
    # The requestor rejects an Initial proposal (yapapi: score too low): 204, the provider is told.
    first = await market_api.subscribe_demand(demand_body(daemon))
    (event,) = await collect(market_api, first)
    await market_api.reject_proposal_offer(
        first, event.proposal.proposal_id, request_body={"message": "Score too low"}
    )
    told = await provider.client.next_event(provider.offer_id, timeout=5)
    assert told.type == "proposal_rejected" and told.reason == {"message": "Score too low"}
    assert (await market_api.get_proposal_offer(first, event.proposal.proposal_id)).state == "Rejected"
    # ... and it can no longer be countered.
    body = countered(daemon)
    assert (await api_error(market_api.counter_proposal_demand(first, event.proposal.proposal_id, body)))[
        0
    ] == 410

    # The provider rejects our counter-proposal: a ProposalRejectedEvent on our demand.
    second = await market_api.subscribe_demand(demand_body(daemon))
    (event,) = await collect(market_api, second)
    ours = await market_api.counter_proposal_demand(second, event.proposal.proposal_id, countered(daemon))
    draft = await provider.client.next_event(provider.offer_id, timeout=5)
    assert draft.type == "proposal" and draft.proposal.proposal_id == ours
    await provider.client.reject_proposal(provider.offer_id, ours, {"message": "no", "code": 7})
    (rejected,) = await collect(market_api, second)
    assert type(rejected).__name__ == "ProposalRejectedEvent"
    assert rejected.proposal_id == ours and rejected.reason.message == "no"


async def test_without_a_market_node_the_api_still_answers(tmp_path: Path) -> None:
    """The daemon comes up without its market node; market calls are 503 until it is reachable."""
    config = RequestorConfig(
        port=0,
        market_url="ws://127.0.0.1:9/ws",
        data_dir=tmp_path / "lonely",
        market_request_timeout=0.5,
        payment_platforms="dummy-glm",
    )
    daemon = RequestorDaemon(config, Identity.generate())
    try:
        await daemon.start(market_timeout=0.2)
        _, key = daemon.app_keys.create("k", daemon.node_id)
        assert (await call(daemon, "GET", "/me", key))[0] == 200
        body = json.dumps({"properties": {}, "constraints": ""}).encode()
        status, answer = await call(daemon, "POST", "/market-api/v1/demands", key, data=body)
        assert status == 503 and answer["message"]
        status, answer = await call(daemon, "GET", "/no/such/path", key)
        assert status == 404 and answer == {"message": "Not Found"}
        assert (await call(daemon, "GET", "/no/such/path", None))[0] == 401
    finally:
        await daemon.close()
