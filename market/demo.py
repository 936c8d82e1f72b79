"""``golem market demo``: watch a provider and a requestor negotiate on a market node.

Two nodes with fresh identities connect to a market node (an in-process one unless ``--market`` names
another), publish an offer and a demand shaped like yapapi's, counter each other once, sign an
agreement and terminate it, printing each step with its latency. It is the smallest end-to-end
picture of the market protocol, and what the README's first command runs for now.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from market.client import MarketClient
from market.core.clock import SystemClock, to_millis
from market.core.identity import Identity
from market.hub.server import MarketNode, MarketNodeConfig
from market.protocol.messages import AgreementEventType, ProposalEvent

PLATFORM = "erc20-holesky-tglm"


def demo_offer(provider: Identity, now_ms: int) -> tuple[dict[str, Any], str]:
    """An offer shaped like ya-provider's for a small vm."""
    props: dict[str, Any] = {
        "golem.node.id.name": "demo-provider",
        "golem.node.debug.subnet": "public",
        "golem.runtime.name": "vm",
        "golem.runtime.version": "0.1.0",
        "golem.runtime.capabilities": ["vpn", "start-entrypoint"],
        "golem.inf.cpu.threads": 4,
        "golem.inf.mem.gib": 8.0,
        "golem.inf.storage.gib": 40.0,
        "golem.com.scheme": "payu",
        "golem.com.scheme.payu.debit-note.interval-sec?": 120,
        "golem.com.scheme.payu.payment-timeout-sec?": 120,
        "golem.com.pricing.model": "linear",
        "golem.com.pricing.model.linear.coeffs": [0.0001, 0.00005, 0.0],
        "golem.com.usage.vector": ["golem.usage.cpu_sec", "golem.usage.duration_sec"],
        f"golem.com.payment.platform.{PLATFORM}.address": provider.node_id,
        "golem.com.payment.protocol.version": 3,
        "golem.srv.caps.multi-activity": True,
    }
    constraints = f"(&(golem.srv.comp.expiration>{now_ms})(golem.node.debug.subnet=public))"
    return props, constraints


def demo_demand(requestor: Identity, expiration_ms: int) -> tuple[dict[str, Any], str]:
    """A demand shaped like yapapi's hello-world demand (spec §4.4)."""
    props: dict[str, Any] = {
        "golem.srv.comp.expiration": expiration_ms,
        "golem.srv.caps.multi-activity": True,
        "golem.node.debug.subnet": "public",
        f"golem.com.payment.platform.{PLATFORM}.address": requestor.node_id,
        "golem.com.payment.protocol.version": "3",
        "golem.srv.comp.task_package": "hash:sha3:" + "0" * 56 + ":http://127.0.0.1/image",
    }
    constraints = (
        "(&(golem.node.debug.subnet=public)\n\t"
        f"(|(golem.com.payment.platform.{PLATFORM}.address=*))\n\t"
        "(golem.com.payment.protocol.version>1)\n\t"
        "(golem.com.pricing.model=linear)\n\t"
        "(&(golem.inf.mem.gib>=0.5)\n\t(golem.inf.storage.gib>=2.0)\n\t"
        "(golem.inf.cpu.threads>=1)\n\t(golem.runtime.name=vm)))"
    )
    return props, constraints


async def run_demo(market_url: str | None, echo: Callable[[str], None]) -> None:
    node: MarketNode | None = None
    if market_url is None:
        node = MarketNode(MarketNodeConfig(port=0))
        await node.start()
        market_url = node.ws_url
        echo(f"market node   listening on {node.url} (REST: {node.url}/market/v1/offers)")
    clock = SystemClock()
    start = time.perf_counter()

    def step(who: str, text: str) -> None:
        echo(f"{who:<13} {text}  [{(time.perf_counter() - start) * 1000:7.1f} ms]")

    provider = MarketClient(market_url, Identity.generate(), "demo-provider")
    requestor = MarketClient(market_url, Identity.generate(), "demo-requestor")
    try:
        await provider.connect()
        await requestor.connect()
        step("provider", f"connected as {provider.node_id}")
        step("requestor", f"connected as {requestor.node_id}")
        now = clock.now()
        offer_props, offer_cons = demo_offer(provider.identity, to_millis(now))
        offer_id = await provider.subscribe_offer(offer_props, offer_cons, now + timedelta(hours=1))
        step("provider", f"published offer {offer_id}")
        start = time.perf_counter()
        demand_props, demand_cons = demo_demand(requestor.identity, to_millis(now + timedelta(minutes=15)))
        demand_id = await requestor.subscribe_demand(demand_props, demand_cons, now + timedelta(minutes=15))
        step("requestor", f"published demand {demand_id}")

        initial = await requestor.next_event(demand_id, timeout=10)
        assert isinstance(initial, ProposalEvent)
        step(
            "requestor",
            f"received Initial proposal {initial.proposal.proposal_id} from {initial.proposal.issuer_id}",
        )
        countered = dict(demand_props, **{"golem.com.payment.chosen-platform": PLATFORM})
        await requestor.counter_proposal(demand_id, initial.proposal.proposal_id, countered, demand_cons)
        step("requestor", f"countered, choosing payment platform {PLATFORM}")

        draft = await provider.next_event(offer_id, timeout=10)
        assert isinstance(draft, ProposalEvent)
        step("provider", f"received the requestor's Draft {draft.proposal.proposal_id}")
        await provider.counter_proposal(offer_id, draft.proposal.proposal_id, offer_props, offer_cons)
        step("provider", "countered with its offer")

        answer = await requestor.next_event(demand_id, timeout=10)
        assert isinstance(answer, ProposalEvent)
        step("requestor", f"received the provider's Draft {answer.proposal.proposal_id}")
        agreement = await requestor.create_agreement(
            answer.proposal.proposal_id, clock.now() + timedelta(hours=1)
        )
        await requestor.confirm_agreement(agreement)
        step("requestor", f"proposed agreement {agreement.agreement_id}, signed")

        proposed = await provider.next_agreement_event(timeout=10)
        step("provider", "received the agreement; requestor signature verified")
        await provider.approve_agreement(proposed.agreement)
        step("provider", "approved and counter-signed")

        approved = await requestor.next_agreement_event(timeout=10)
        await provider.next_agreement_event(timeout=10)
        assert approved.event_type is AgreementEventType.APPROVED
        step("both", f"see agreement {approved.agreement.agreement_id} Approved, both signatures verified")

        reason = {"message": "Successfully finished all work", "golem.requestor.code": "Success"}
        await requestor.terminate_agreement(approved.agreement, reason)
        terminated = await provider.next_agreement_event(timeout=10)
        await requestor.next_agreement_event(timeout=10)
        step("provider", f"saw it Terminated by the {terminated.terminator}: {terminated.reason}")
    finally:
        await requestor.close()
        await provider.close()
        if node is not None:
            await node.close()
