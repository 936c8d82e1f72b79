"""Ten tasks over the providers of the network, moving files both ways: each task sends a JSON
description and a data file, runs a shell pipeline on them, and downloads the result.

    python blueprints/scripts/tasks.py --image-hash HASH --image-url URL --out DIR

(with YAGNA_APPKEY / YAGNA_API_URL set as in the README). Each task also sleeps ``--seconds``, so
that work takes time and several providers get some. A plain yapapi 0.13.1 script (upload_json,
upload_file, run, download_file); it prints one line per task with the provider that computed it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path

from yapapi import Golem, Task, WorkContext
from yapapi.events import CommandEvent
from yapapi.payload import vm
from yapapi.script import Script

Worker = Callable[
    [WorkContext, AsyncIterator[Task[int, str]]], AsyncGenerator[Script, Awaitable[list[CommandEvent]]]
]


def make_worker(out_dir: Path, data_file: Path, seconds: float) -> Worker:
    async def worker(
        context: WorkContext, tasks: AsyncIterator[Task[int, str]]
    ) -> AsyncGenerator[Script, Awaitable[list[CommandEvent]]]:
        async for task in tasks:
            n = task.data
            script = context.new_script(timeout=None)
            script.upload_json({"task": n, "square": n * n}, "/golem/input/task.json")
            script.upload_file(str(data_file), "/golem/input/data.txt")
            script.run(
                "/bin/sh",
                "-c",
                f"sleep {seconds}; (cat /golem/input/task.json; echo; tr a-z A-Z < /golem/input/data.txt)"
                f" > /golem/output/out-{n}.txt",
            )
            target = out_dir / f"out-{n}.txt"
            script.download_file(f"/golem/output/out-{n}.txt", str(target))
            yield script
            task.accept_result(result=f"{n} {context.provider_name}")

    return worker


async def main(image_hash: str, image_url: str, out_dir: Path, count: int, seconds: float) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    data_file = out_dir / "data.txt"
    data_file.write_text("golem network\n")
    package = await vm.repo(image_hash=image_hash, image_url=image_url)
    tasks: list[Task[int, str]] = [Task(data=n) for n in range(count)]
    async with Golem(budget=5.0, subnet_tag="public") as golem:
        worker = make_worker(out_dir, data_file, seconds)
        async for completed in golem.execute_tasks(worker, tasks, payload=package, max_workers=4):
            print(f"done {completed.result}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--image-hash", required=True)
    parser.add_argument("--image-url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=1.0, help="how long each task works")
    args = parser.parse_args()
    asyncio.run(main(args.image_hash, args.image_url, args.out, args.count, args.seconds))
