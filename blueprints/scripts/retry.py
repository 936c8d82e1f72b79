"""A command that fails, and the retry that succeeds: the first attempt of each task exits 3,
yapapi reports the failure with its exit code and retries the task, which then succeeds.

    python blueprints/scripts/retry.py --image-hash HASH --image-url URL [--count N]

(with YAGNA_APPKEY / YAGNA_API_URL set as in the README).
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable

from yapapi import Golem, Task, WorkContext
from yapapi.events import CommandEvent, Event, TaskRejected, WorkerFinished
from yapapi.payload import vm
from yapapi.script import Script

attempts: Counter[int] = Counter()


async def worker(
    context: WorkContext, tasks: AsyncIterator[Task[int, str]]
) -> AsyncGenerator[Script, Awaitable[list[CommandEvent]]]:
    async for task in tasks:
        attempts[task.data] += 1
        command = "exit 3" if attempts[task.data] == 1 else f"echo task {task.data} ok"
        script = context.new_script()
        future = script.run("/bin/sh", "-c", command)
        yield script
        result = await future
        task.accept_result(result=(result.stdout or "").strip())


def report(event: Event) -> None:
    # What a user sees of a failed command: the exception yapapi hands the worker, with the exit code.
    if isinstance(event, WorkerFinished) and event.exc_info:
        print(f"worker failed: {event.exc_info[1]}")
    elif isinstance(event, TaskRejected):
        print(f"task rejected: {event.reason}")


async def main(image_hash: str, image_url: str, count: int) -> None:
    package = await vm.repo(image_hash=image_hash, image_url=image_url)
    tasks: list[Task[int, str]] = [Task(data=n) for n in range(count)]
    async with Golem(budget=1.0, subnet_tag="public") as golem:
        golem.add_event_consumer(report)
        async for completed in golem.execute_tasks(worker, tasks, payload=package):
            print(f"{completed.result} after {attempts[completed.data]} attempts")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--image-hash", required=True)
    parser.add_argument("--image-url", required=True)
    parser.add_argument("--count", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.image_hash, args.image_url, args.count))
