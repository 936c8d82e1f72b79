"""gftp throughput: a file down (provider fetches a published file) and up (provider uploads into a
receive slot) between two nodes through a market node running in its own process.

Baseline, measured in the same run: raw binary frames of the same size pushed one way through the
same market node with no protocol around them (what the relay alone can carry, with the receiver
only counting bytes).

    .venv/bin/python tests/benchmarks/bench_gftp.py [--mib 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from exeunits.gftp import CHUNK_BYTES, RelayGftpResolver
from market.client import BinaryMessage, MarketClient, RelayRouter
from market.core.identity import Identity
from requestor.gftp import FileShare
from tests.benchmarks._market_process import MarketProcess

MIB = 1024 * 1024


async def raw_relay(sender: MarketClient, receiver_router: RelayRouter, total: int, chunk: int) -> float:
    """Seconds to push ``total`` bytes of frames one way, until the receiver has counted them all."""
    got = 0
    done = asyncio.Event()

    async def count(message: BinaryMessage) -> None:
        nonlocal got
        got += len(message.body)
        if got >= total:
            done.set()

    receiver_router.on_channel("bench:", count)
    body = os.urandom(chunk)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        await sender.send_bytes(receiver_router.client.node_id, body, channel="bench:raw")
        sent += len(body)
        if sent % (16 * MIB) == 0:
            # Without this pause the sender outruns the receiver and the relay buffers everything.
            while got < sent - 16 * MIB:
                await asyncio.sleep(0.001)
    await asyncio.wait_for(done.wait(), 60)
    return time.perf_counter() - start


async def main(mib: int, rounds: int, chunk: int) -> None:
    total = mib * MIB
    async with MarketProcess() as market:
        requestor = MarketClient(market.ws_url, Identity.generate(), "bench-requestor", request_timeout=30)
        provider = MarketClient(market.ws_url, Identity.generate(), "bench-provider", request_timeout=30)
        await requestor.connect(timeout=10)
        await provider.connect(timeout=10)
        try:
            async with RelayRouter(requestor) as r_router, RelayRouter(provider) as p_router:
                share = FileShare(r_router, chunk_bytes=chunk)
                resolver = RelayGftpResolver(p_router, chunk_bytes=chunk)
                with tempfile.TemporaryDirectory(prefix="bench-gftp-") as tmp:
                    folder = Path(tmp)
                    src = folder / "input.bin"
                    src.write_bytes(os.urandom(total))
                    [(_, url)] = share.publish([src])
                    results: dict[str, list[float]] = {"raw relay": [], "download": [], "upload": []}
                    for _ in range(rounds):
                        results["raw relay"].append(await raw_relay(requestor, p_router, total, chunk))

                        fetched = folder / "fetched.bin"
                        start = time.perf_counter()
                        await resolver.download(url, fetched)
                        results["download"].append(time.perf_counter() - start)
                        assert fetched.stat().st_size == total

                        target = folder / "received.bin"
                        _, slot = share.receive(target)
                        start = time.perf_counter()
                        await resolver.upload(fetched, slot)
                        results["upload"].append(time.perf_counter() - start)
                        assert target.read_bytes() == src.read_bytes()
                        share.close(slot)
                        fetched.unlink()
                        target.unlink()
                    await share.aclose()
        finally:
            await provider.close()
            await requestor.close()

    baseline = total / min(results["raw relay"]) / 1e6
    print(f"gftp through a market node process, {mib} MiB, best of {rounds}, chunk {chunk // 1024} KiB")
    for name, times in results.items():
        best = total / min(times) / 1e6
        print(
            f"  {name:10s} {best:8.1f} MB/s  (median {total / sorted(times)[len(times) // 2] / 1e6:7.1f})"
            f"  {best / baseline:5.2f}x raw relay"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-kib", type=int, default=CHUNK_BYTES // 1024)
    args = parser.parse_args()
    asyncio.run(main(args.mib, args.rounds, args.chunk_kib * 1024))
