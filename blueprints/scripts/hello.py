"""Hello world in yapapi's task model: one task runs `date` on a provider and prints the result.

    python blueprints/scripts/hello.py --image-hash HASH --image-url URL

(with YAGNA_APPKEY / YAGNA_API_URL set as in the README).
Written against yapapi 0.13.1 exactly as its users write scripts; nothing here knows our daemon.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable

from yapapi import Golem, Task, WorkContext
from yapapi.events import CommandEvent
from yapapi.payload import vm
from yapapi.script import Script


async def worker(
    context: WorkContext, tasks: AsyncIterator[Task[None, str]]
) -> AsyncGenerator[Script, Awaitable[list[CommandEvent]]]:
    async for task in tasks:
        script = context.new_script()
        future_result = script.run("/bin/sh", "-c", "date")
        yield script
        result = await future_result
        task.accept_result(result=result.stdout)


async def main(image_hash: str, image_url: str) -> None:
    package = await vm.repo(image_hash=image_hash, image_url=image_url)
    tasks: list[Task[None, str]] = [Task(data=None)]
    async with Golem(budget=1.0, subnet_tag="public") as golem:
        async for completed in golem.execute_tasks(worker, tasks, payload=package):
            print(completed.result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--image-hash", required=True)
    parser.add_argument("--image-url", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.image_hash, args.image_url))
