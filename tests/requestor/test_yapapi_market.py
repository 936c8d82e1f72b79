"""yapapi's own market layer (``yapapi.rest.market``) negotiates through our daemon unchanged.

This is the code path a yapapi script's engine runs: ``Market.subscribe`` → ``Subscription.events``
→ ``OfferProposal.respond`` → ``create_agreement`` → ``Agreement.get_details`` / ``confirm`` (which
includes ``wait?timeout=15``) → ``terminate`` → ``Subscription.delete``. The provider answers on its
own in a background task, as a provider daemon would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import ya_market
from yapapi.props import NodeInfo
from yapapi.props.com import ComLinear
from yapapi.rest.market import Market

from market.protocol.messages import AgreementEventType
from requestor.daemon import RequestorDaemon
from tests.requestor.conftest import Provider, countered, demand_body

pytestmark = pytest.mark.integration


@pytest.fixture
async def auto_provider(provider: Provider) -> AsyncIterator[Provider]:
    """The provider counters one draft and approves one agreement without being told."""

    async def run() -> None:
        await provider.answer_draft()
        await provider.approve_next()

    task = asyncio.create_task(run())
    yield provider
    task.cancel()  # a no-op when it already finished; its own failure, if any, surfaces here
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_yapapi_market_layer_runs_unchanged(
    daemon: RequestorDaemon, app_key: str, auto_provider: Provider
) -> None:
    api_client = ya_market.ApiClient(
        configuration=ya_market.Configuration(host=f"{daemon.url}/market-api/v1"),
        header_name="authorization",
        header_value=f"Bearer {app_key}",
    )
    market = Market(api_client)
    demand = demand_body(daemon)
    try:
        async with market.subscribe(demand.properties, demand.constraints) as subscription:
            events = subscription.events()
            initial = await asyncio.wait_for(events.__anext__(), 10)
            assert not initial.is_draft and initial.issuer == auto_provider.client.node_id
            linear = ComLinear.from_properties(initial.props)  # asserts float coefficients
            assert linear.linear_coeffs == [0.0001, 0.00005, 0.0]
            body = countered(daemon)
            await initial.respond(body.properties, body.constraints)

            draft = await asyncio.wait_for(events.__anext__(), 10)
            assert draft.is_draft
            agreement = await draft.create_agreement()
            details = await agreement.get_details()
            assert details.provider_node_info.name == "provider-1"
            assert isinstance(details.provider_node_info, NodeInfo)
            assert await agreement.confirm()  # confirm + wait(timeout=15) → 204

            reason = {"message": "Successfully finished all work", "golem.requestor.code": "Success"}
            assert await agreement.terminate(reason)
            terminated = await auto_provider.next_agreement_event(AgreementEventType.TERMINATED)
            assert terminated.reason == reason
            await events.aclose()
        # Leaving the block deleted the demand: its events are gone (404 makes yapapi re-subscribe).
        assert daemon.market.demands() == []
    finally:
        await api_client.close()
