"""yapapi's service model: several instances of a long-running service that the requestor talks to
repeatedly, then stops cleanly.

    python blueprints/scripts/service.py --image-hash HASH --image-url URL [--instances 2] [--rounds 3]

(with YAGNA_APPKEY / YAGNA_API_URL set as in the README). Each instance starts a background
counter in its container (a process that outlives the command that started it), and every round
the requestor asks each instance for its state; the instances print their reports.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncGenerator, Awaitable
from typing import Any

from yapapi import Golem
from yapapi.events import CommandEvent
from yapapi.payload import Payload, vm
from yapapi.script import Script
from yapapi.services import Service

COUNTER = "n=0; while true; do n=$((n+1)); echo $n > /golem/work/count; sleep 0.2; done"


class Counter(Service):
    image_hash = ""
    image_url = ""
    rounds = 3

    @staticmethod
    async def get_payload() -> Payload:
        return await vm.repo(image_hash=Counter.image_hash, image_url=Counter.image_url)

    async def start(self) -> AsyncGenerator[Script, Awaitable[list[CommandEvent]]]:
        async for script in super().start():
            yield script
        context = self._ctx
        assert context is not None  # yapapi sets it before start()
        script = context.new_script()
        script.run("/bin/sh", "-c", f"/bin/sh -c '{COUNTER}' > /dev/null 2>&1 &")
        yield script

    async def run(self) -> AsyncGenerator[Script, Awaitable[list[CommandEvent]]]:
        context = self._ctx
        assert context is not None
        for round_no in range(self.rounds):
            await asyncio.sleep(0.5)
            script = context.new_script()
            future = script.run("/bin/sh", "-c", "cat /golem/work/count")
            yield script
            result: Any = await future
            print(f"instance {context.provider_name} round {round_no}: count {result.stdout.strip()}")


async def main(image_hash: str, image_url: str, instances: int, rounds: int) -> None:
    Counter.image_hash, Counter.image_url, Counter.rounds = image_hash, image_url, rounds
    async with Golem(budget=1.0, subnet_tag="public") as golem:
        cluster = await golem.run_service(Counter, num_instances=instances, expiration=None)
        while not all(i.state.value == "running" for i in cluster.instances):
            await asyncio.sleep(0.2)
        print(f"{len(cluster.instances)} instances running")
        while any(i.state.value == "running" for i in cluster.instances):
            await asyncio.sleep(0.2)
        cluster.stop()  # type: ignore[no-untyped-call]
        while any(i.state.value not in ("terminated",) for i in cluster.instances):
            await asyncio.sleep(0.2)
        print("all instances stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--image-hash", required=True)
    parser.add_argument("--image-url", required=True)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.image_hash, args.image_url, args.instances, args.rounds))
