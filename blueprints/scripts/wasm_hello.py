"""A WebAssembly job in yapapi's task model, through a custom ``Payload`` that demands the
``wasmtime`` runtime: each task runs the module's ``main`` entry point on a provider.

    python blueprints/scripts/wasm_hello.py --module-hash HASH --module-url URL [--count N]

(with YAGNA_APPKEY / YAGNA_API_URL set as in the README). The module is any WASI command; the
test builds ``exeunits.payloads.wasm``'s ``hello``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass

from yapapi import Golem, Task, WorkContext
from yapapi.events import CommandEvent
from yapapi.payload import Payload
from yapapi.props import inf
from yapapi.props.base import constraint, prop
from yapapi.script import Script


@dataclass
class WasmPayload(Payload):
    """Demands a wasmtime provider and names the module like a vm image: hash:sha3:<hex>:<url>."""

    package: str = prop("golem.srv.comp.task_package")
    runtime: str = constraint(inf.INF_RUNTIME_NAME, default="wasmtime")


async def worker(
    context: WorkContext, tasks: AsyncIterator[Task[int, str]]
) -> AsyncGenerator[Script, Awaitable[list[CommandEvent]]]:
    async for task in tasks:
        script = context.new_script()
        future_result = script.run("main")
        yield script
        result = await future_result
        task.accept_result(result=f"{task.data}: {(result.stdout or '').strip()} ({context.provider_name})")


async def main(module_hash: str, module_url: str, count: int) -> None:
    payload = WasmPayload(package=f"hash:sha3:{module_hash}:{module_url}")
    tasks: list[Task[int, str]] = [Task(data=n) for n in range(count)]
    async with Golem(budget=1.0, subnet_tag="public") as golem:
        async for completed in golem.execute_tasks(worker, tasks, payload=payload):
            print(completed.result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--module-hash", required=True)
    parser.add_argument("--module-url", required=True)
    parser.add_argument("--count", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.module_hash, args.module_url, args.count))
