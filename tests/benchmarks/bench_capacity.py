"""Capacity: N simulated nodes connected to one market node, each with an offer.

Measures the market node process's resident memory before and after, how long connecting and
publishing took, and its CPU use at rest (all sessions idle) over a window.

    .venv/bin/python tests/benchmarks/bench_capacity.py [--nodes 1000] [--rest 15]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from market.client import MarketClient
from market.core.clock import SystemClock, to_millis
from market.core.identity import Identity
from market.demo import demo_offer
from tests.benchmarks._market_process import MarketProcess


async def main(nodes: int, rest: float) -> None:
    clock = SystemClock()
    async with MarketProcess("--max-messages-per-second", "1000") as market:
        proc = psutil.Process(market.pid)
        await asyncio.sleep(0.5)
        rss_before = proc.memory_info().rss
        clients = [
            MarketClient(market.ws_url, Identity.generate(), f"sim-{i}", request_timeout=60)
            for i in range(nodes)
        ]
        t0 = time.perf_counter()
        batch = 50
        for start in range(0, nodes, batch):
            group = clients[start : start + batch]
            await asyncio.gather(*(c.connect(timeout=60) for c in group))

            async def publish(client: MarketClient) -> None:
                props, cons = demo_offer(client.identity, to_millis(clock.now()))
                props["golem.inf.mem.gib"] = float(1 + hash(client.node_id) % 64)
                await client.subscribe_offer(props, cons, clock.now() + timedelta(hours=1))

            await asyncio.gather(*(publish(c) for c in group))
        connect_s = time.perf_counter() - t0
        await asyncio.sleep(1.0)
        rss_after = proc.memory_info().rss
        cpu0 = proc.cpu_times()
        w0 = time.perf_counter()
        await asyncio.sleep(rest)
        cpu1 = proc.cpu_times()
        window = time.perf_counter() - w0
        cpu_pct = ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / window * 100
        for start in range(0, nodes, 200):
            await asyncio.gather(*(c.close() for c in clients[start : start + 200]))
    print(f"capacity: {nodes} nodes, one offer each, market node in its own process")
    print(f"  connect + authenticate + publish all:  {connect_s:.2f} s")
    idle, loaded = rss_before / 2**20, rss_after / 2**20
    print(f"  market node RSS idle / with nodes:      {idle:.1f} MiB / {loaded:.1f} MiB")
    print(f"  memory per connected node with offer:   {(rss_after - rss_before) / nodes / 1024:.1f} KiB")
    print(f"  market node CPU at rest over {window:.0f} s:     {cpu_pct:.2f} % of one core")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rest", type=float, default=15.0)
    args = parser.parse_args()
    asyncio.run(main(args.nodes, args.rest))
