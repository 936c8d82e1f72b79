"""Bad input at the market node: each gets a clear, typed error, changes no state, and the market
node keeps serving everyone else."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from market.client import MarketClient
from market.core.clock import to_millis
from market.core.identity import Identity
from market.demo import demo_demand
from market.hub.server import CLOSE_AUTH_FAILED, MarketNode, MarketNodeConfig
from market.protocol.errors import (
    BadRequestError,
    GoneError,
    LimitExceededError,
    NotFoundError,
    RateLimitedError,
)
from market.protocol.messages import ProposalEvent, pack_binary, session_challenge_text
from tests.integration.conftest import ClientFactory, in_an_hour, publish_pair, reach_provider_draft


async def _raw_session(
    url: str, identity: Identity
) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    """An authenticated WebSocket driven by hand, to send what MarketClient never would."""
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(url)
    challenge = json.loads(await ws.receive_str(timeout=5))
    signature = identity.sign_text(session_challenge_text(challenge["nonce"]))
    await ws.send_json({"type": "hello", "nodeId": identity.node_id, "signature": signature})
    welcome = json.loads(await ws.receive_str(timeout=5))
    assert welcome["type"] == "welcome"
    return http, ws


@pytest.fixture
async def raw(market_node: MarketNode) -> AsyncIterator[tuple[Identity, aiohttp.ClientWebSocketResponse]]:
    ident = Identity.generate()
    http, ws = await _raw_session(market_node.ws_url, ident)
    yield ident, ws
    await ws.close()
    await http.close()


async def _reply(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    return dict(json.loads(await ws.receive_str(timeout=5)))


async def test_hello_signed_with_another_key_is_refused(market_node: MarketNode) -> None:
    claimed, actual = Identity.generate(), Identity.generate()
    async with aiohttp.ClientSession() as http, http.ws_connect(market_node.ws_url) as ws:
        challenge = json.loads(await ws.receive_str(timeout=5))
        signature = actual.sign_text(session_challenge_text(challenge["nonce"]))
        await ws.send_json({"type": "hello", "nodeId": claimed.node_id, "signature": signature})
        error = json.loads(await ws.receive_str(timeout=5))
        assert error["type"] == "error" and error["code"] == "unauthorized"
        assert actual.node_id in error["message"] and claimed.node_id in error["message"]
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == CLOSE_AUTH_FAILED
    assert market_node.sessions == {}


async def test_hello_replaying_an_old_signature_is_refused(market_node: MarketNode) -> None:
    ident = Identity.generate()
    old = ident.sign_text(session_challenge_text("00" * 32))  # signed for another challenge
    async with aiohttp.ClientSession() as http, http.ws_connect(market_node.ws_url) as ws:
        await ws.receive_str(timeout=5)
        await ws.send_json({"type": "hello", "nodeId": ident.node_id, "signature": old})
        error = json.loads(await ws.receive_str(timeout=5))
        assert error["code"] == "unauthorized"
    assert market_node.sessions == {}


async def test_client_with_refused_key_stops_and_says_why(market_node: MarketNode) -> None:
    class Impostor(Identity):
        @property
        def node_id(self) -> Any:  # claims someone else's address
            return Identity.generate().node_id

    client = MarketClient(market_node.ws_url, Impostor(Identity.generate()._key))
    try:
        with pytest.raises(Exception, match="signed by"):
            await client.connect(timeout=5)
    finally:
        await client.close()


async def test_relay_cannot_claim_another_sender(
    market_node: MarketNode, raw: tuple[Identity, aiohttp.ClientWebSocketResponse], connect: ClientFactory
) -> None:
    sender, ws = raw
    target = await connect("target")
    forged = Identity.generate().node_id
    # A JSON relay with a "from" field is refused outright: requests take no unknown fields.
    await ws.send_json(
        {"type": "relay", "id": "r1", "to": target.node_id, "payload": {"x": 1}, "from": forged}
    )
    error = await _reply(ws)
    assert error["type"] == "error" and error["code"] == "bad_request" and error["corr"] == "r1"
    assert target.relay_messages.empty()
    # A binary frame whose header claims a sender is delivered with the verified sender instead.
    await ws.send_bytes(pack_binary({"to": target.node_id, "from": forged, "channel": "c"}, b"payload"))
    delivered = await asyncio.wait_for(target.binary_messages.get(), 5)
    assert delivered.sender == sender.node_id and delivered.body == b"payload"
    # And a plain relay arrives with the verified sender.
    await ws.send_json({"type": "relay", "id": "r2", "to": target.node_id, "payload": {"x": 2}})
    assert (await _reply(ws))["type"] == "reply"
    message = await asyncio.wait_for(target.relay_messages.get(), 5)
    assert message.sender == sender.node_id and message.payload == {"x": 2}


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ("this is not json", "malformed message"),
        ('{"id": "m1"}', "malformed message"),
        ('{"type": "no_such_type", "id": "m1"}', "malformed message"),
        ('{"type": "subscribe_offer", "id": "m1", "properties": {}}', "constraints"),
        ("[1, 2, 3]", "malformed message"),
    ],
)
async def test_malformed_text_frames(
    market_node: MarketNode, raw: tuple[Identity, aiohttp.ClientWebSocketResponse], frame: str, fragment: str
) -> None:
    _, ws = raw
    await ws.send_str(frame)
    error = await _reply(ws)
    assert error["type"] == "error" and error["code"] == "bad_request"
    assert fragment in error["message"]
    assert market_node.market.subscriptions == {}
    await ws.send_json({"type": "ping", "id": "p"})  # the session lives on
    assert (await _reply(ws)) == {"type": "reply", "corr": "p", "result": {}}


async def test_malformed_binary_frames(raw: tuple[Identity, aiohttp.ClientWebSocketResponse]) -> None:
    _, ws = raw
    for frame in (b"\x00", b"\x00\x10{}", b"\x00\x02[]", pack_binary({"channel": "no target"}, b"")):
        await ws.send_bytes(frame)
        error = await _reply(ws)
        assert error["code"] == "bad_request", frame
    await ws.send_bytes(pack_binary({"to": Identity.generate().node_id}, b"x"))
    assert (await _reply(ws))["code"] == "not_connected"


async def test_oversized_frames() -> None:
    config = MarketNodeConfig(port=0, max_frame_bytes=4096)
    async with MarketNode(config) as node:
        ident = Identity.generate()
        http, ws = await _raw_session(node.ws_url, ident)
        bystander = MarketClient(node.ws_url, Identity.generate())
        try:
            await bystander.connect(timeout=5)
            # Above our limit: a typed error, the frame is dropped, the session lives on.
            big = json.dumps({"type": "ping", "id": "big", "pad": "x" * 5000})
            await ws.send_str(big)
            error = await _reply(ws)
            assert (
                error["code"] == "frame_too_large" and error["corr"] == "big" and "4096" in error["message"]
            )
            await ws.send_bytes(b"\x00\x02{}" + b"x" * 5000)
            assert (await _reply(ws))["code"] == "frame_too_large"
            await ws.send_json({"type": "ping", "id": "p"})
            assert (await _reply(ws))["corr"] == "p"
            # Far above it (past the transport's backstop): the connection is closed with 1009.
            await ws.send_str("x" * 4096 * 5)
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
            # The market node serves everyone else as before.
            await bystander.ping()
        finally:
            await bystander.close()
            await ws.close()
            await http.close()


async def test_invalid_constraint_is_refused_with_position(
    market_node: MarketNode, connect: ClientFactory
) -> None:
    client = await connect()
    with pytest.raises(BadRequestError, match="position"):
        await client.subscribe_demand(
            {"a": 1}, "(&(golem.runtime.name=vm)(golem.inf.mem.gib>=1)", in_an_hour()
        )
    with pytest.raises(BadRequestError, match="position"):
        await client.subscribe_offer({"a": 1}, "(golem.runtime.name~=vm)", in_an_hour())
    assert market_node.market.subscriptions == {}


async def test_limits_on_subscriptions_and_rate() -> None:
    config = MarketNodeConfig(port=0, max_subscriptions_per_node=2, max_messages_per_second=5, rate_burst=5)
    async with MarketNode(config) as node:
        client = MarketClient(node.ws_url, Identity.generate(), request_timeout=5)
        try:
            await client.connect(timeout=5)
            await client.subscribe_offer({"a": 1}, "()", in_an_hour())
            await client.subscribe_offer({"a": 2}, "()", in_an_hour())
            with pytest.raises(LimitExceededError, match="limit is 2"):
                await client.subscribe_offer({"a": 3}, "()", in_an_hour())
            assert len(node.market.subscriptions) == 2
            results = await asyncio.gather(*(client.ping() for _ in range(20)), return_exceptions=True)
            limited = [r for r in results if isinstance(r, RateLimitedError)]
            assert limited, "20 pings at once must exceed a burst of 5"
            assert all(r is None or isinstance(r, RateLimitedError) for r in results)
        finally:
            await client.close()


async def test_no_agreement_on_a_rejected_proposal(market_node: MarketNode, connect: ClientFactory) -> None:
    provider, requestor = await connect("p"), await connect("r")
    offer_id, demand_id = await publish_pair(provider, requestor)
    answer = await reach_provider_draft(provider, requestor, offer_id, demand_id)
    await requestor.reject_proposal(demand_id, answer.proposal.proposal_id, {"message": "Score too low"})
    rejected = await provider.next_event(offer_id, timeout=5)
    assert rejected.type == "proposal_rejected" and rejected.reason == {"message": "Score too low"}
    with pytest.raises(GoneError, match="rejected"):
        await requestor.create_agreement(answer.proposal.proposal_id, in_an_hour())
    assert market_node.market.agreements == {}


async def test_stale_and_unknown_proposal_ids(market_node: MarketNode, connect: ClientFactory) -> None:
    provider, requestor = await connect("p"), await connect("r")
    offer_id, demand_id = await publish_pair(provider, requestor)
    answer = await reach_provider_draft(provider, requestor, offer_id, demand_id)
    props, cons = demo_demand(requestor.identity, to_millis(in_an_hour()))
    with pytest.raises(NotFoundError):
        await requestor.counter_proposal(demand_id, "f" * 32, props, cons)
    with pytest.raises(NotFoundError):
        await requestor.create_agreement("f" * 32, in_an_hour())
    # The provider's draft countered once is stale for a second counter.
    await requestor.counter_proposal(demand_id, answer.proposal.proposal_id, props, cons)
    with pytest.raises(GoneError, match="already countered"):
        await requestor.counter_proposal(demand_id, answer.proposal.proposal_id, props, cons)
    # A proposal addressed to the requestor is not the provider's to counter.
    with pytest.raises(NotFoundError):
        await provider.counter_proposal(offer_id, answer.proposal.proposal_id, props, cons)
    # A counter that no longer matches the proposal it answers is refused and changes nothing.
    draft = await provider.next_event(offer_id, timeout=5)
    assert isinstance(draft, ProposalEvent)
    before = set(market_node.market.proposals)
    with pytest.raises(BadRequestError, match="does not match"):
        await provider.counter_proposal(
            offer_id, draft.proposal.proposal_id, {"golem.runtime.name": "wasm"}, "()"
        )
    assert set(market_node.market.proposals) == before
    assert not market_node.market.proposals[draft.proposal.proposal_id].countered
    assert market_node.market.agreements == {}
    await requestor.ping()
