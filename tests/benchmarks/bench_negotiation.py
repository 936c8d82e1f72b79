"""Negotiation latency on loopback, market node in its own process.

Per run (a fresh demand against one live offer): demand published → first proposal received;
counter-proposal round trip (requestor counters → provider receives → provider counters → requestor
receives); agreement proposed → approved (create + sign + confirm → provider verifies, signs,
approves → requestor sees Approved); and the whole demand → Approved. Prints p50/p90/p99.

    .venv/bin/python tests/benchmarks/bench_negotiation.py [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from market.client import MarketClient
from market.core.clock import SystemClock, to_millis
from market.core.identity import Identity
from market.demo import PLATFORM, demo_demand, demo_offer
from market.protocol.messages import AgreementEventType, ProposalEvent
from tests.benchmarks._market_process import MarketProcess


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def main(runs: int) -> None:
    clock = SystemClock()
    async with MarketProcess() as market:
        provider = MarketClient(market.ws_url, Identity.generate(), "bench-provider")
        requestor = MarketClient(market.ws_url, Identity.generate(), "bench-requestor")
        await provider.connect()
        await requestor.connect()
        offer_props, offer_cons = demo_offer(provider.identity, to_millis(clock.now()))
        offer_id = await provider.subscribe_offer(offer_props, offer_cons, clock.now() + timedelta(hours=2))
        figures: dict[str, list[float]] = {
            "first proposal": [],
            "counter round trip": [],
            "proposed → approved": [],
            "demand → approved": [],
        }
        for _ in range(runs):
            expiration = clock.now() + timedelta(minutes=15)
            demand_props, demand_cons = demo_demand(requestor.identity, to_millis(expiration))
            t0 = time.perf_counter()
            demand_id = await requestor.subscribe_demand(demand_props, demand_cons, expiration)
            initial = await requestor.next_event(demand_id, timeout=10)
            t1 = time.perf_counter()
            assert isinstance(initial, ProposalEvent)
            countered = dict(demand_props, **{"golem.com.payment.chosen-platform": PLATFORM})
            await requestor.counter_proposal(demand_id, initial.proposal.proposal_id, countered, demand_cons)
            draft = await provider.next_event(offer_id, timeout=10)
            assert isinstance(draft, ProposalEvent)
            await provider.counter_proposal(offer_id, draft.proposal.proposal_id, offer_props, offer_cons)
            answer = await requestor.next_event(demand_id, timeout=10)
            t2 = time.perf_counter()
            assert isinstance(answer, ProposalEvent)
            agreement = await requestor.create_agreement(
                answer.proposal.proposal_id, clock.now() + timedelta(hours=1)
            )
            await requestor.confirm_agreement(agreement)
            proposed = await provider.next_agreement_event(timeout=10)
            await provider.approve_agreement(proposed.agreement)
            approved = await requestor.next_agreement_event(timeout=10)
            t3 = time.perf_counter()
            assert approved.event_type is AgreementEventType.APPROVED
            await provider.next_agreement_event(timeout=10)
            figures["first proposal"].append((t1 - t0) * 1000)
            figures["counter round trip"].append((t2 - t1) * 1000)
            figures["proposed → approved"].append((t3 - t2) * 1000)
            figures["demand → approved"].append((t3 - t0) * 1000)
            await requestor.terminate_agreement(approved.agreement, {"message": "bench"})
            await provider.next_agreement_event(timeout=10)
            await requestor.next_agreement_event(timeout=10)
            await requestor.unsubscribe(demand_id)
        await requestor.close()
        await provider.close()
    print(f"negotiation on loopback, market node in its own process, {runs} runs (ms)")
    print(f"{'step':<22}{'p50':>8}{'p90':>8}{'p99':>8}{'mean':>8}")
    for name, values in figures.items():
        cells = [pct(values, 50), pct(values, 90), pct(values, 99), statistics.mean(values)]
        print(f"{name:<22}" + "".join(f"{c:8.2f}" for c in cells))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    asyncio.run(main(parser.parse_args().runs))
