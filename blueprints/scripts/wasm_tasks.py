"""Task model on WebAssembly: the primes in a range counted and added up by ``wasmtime`` providers,
the range split across tasks, the results merged and checked against a local computation.

    python blueprints/scripts/wasm_tasks.py --module-hash HASH --module-url URL
        [--start 0] [--stop 10000000] [--tasks 8]

(with YAGNA_APPKEY / YAGNA_API_URL set as in the README). The module is ``primes.wasm``, built
from ``blueprints/wasm/primes.wat`` by ``python -m blueprints.wasm build DIR``;
``python -m blueprints.run wasm`` builds it, pushes it to the devnet's registry and runs this.

The payload is a custom yapapi ``Payload``: the constraint ``golem.runtime.name=wasmtime`` picks
WebAssembly providers, and ``golem.srv.comp.task_package`` names the module as a ``vm`` image is
named (``hash:sha3:<sha3-224>:<url>``). Each task runs the entry point ``main LO HI``; a result that
does not answer the question asked is rejected and the task retried. The merged count and sum are
compared with a sieve computed here; the script exits 1 if they differ.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass

from yapapi import Golem, Task, WorkContext
from yapapi.events import CommandEvent, Event, TaskRejected
from yapapi.payload import Payload
from yapapi.props import inf
from yapapi.props.base import constraint, prop
from yapapi.script import Script

from blueprints.report import Costs

LIMIT = 10**12
"""The largest number the module accepts."""


@dataclass
class WasmPayload(Payload):
    """Demands a wasmtime provider and names the module like a vm image: hash:sha3:<hex>:<url>."""

    package: str = prop("golem.srv.comp.task_package")
    runtime: str = constraint(inf.INF_RUNTIME_NAME, default="wasmtime")


@dataclass(frozen=True)
class Chunk:
    lo: int
    hi: int


@dataclass(frozen=True)
class Counted:
    chunk: Chunk
    count: int
    total: int
    provider: str


class BadOutput(ValueError):
    """A task's output does not answer the question asked."""


def split(start: int, stop: int, tasks: int) -> list[Chunk]:
    """``[start, stop)`` in ``tasks`` consecutive chunks. Later numbers cost more to test (trial
    division up to the square root), so chunk sizes shrink a little along the range to even the
    work out: boundaries at equal steps of ``n ** 1.5``."""
    if not 0 <= start < stop <= LIMIT:
        raise ValueError(f"the range must satisfy 0 <= start < stop <= {LIMIT}")
    if not 1 <= tasks <= stop - start:
        raise ValueError(f"--tasks must be 1..{stop - start} (the size of the range)")
    a, b = start**1.5, stop**1.5
    bounds = [start] + [round((a + (b - a) * i / tasks) ** (2 / 3)) for i in range(1, tasks)] + [stop]
    for i in range(1, len(bounds)):  # keep every chunk non-empty after rounding
        bounds[i] = min(max(bounds[i], bounds[i - 1] + 1), stop - (len(bounds) - 1 - i))
    return [Chunk(lo, hi) for lo, hi in itertools.pairwise(bounds)]


def parse_output(stdout: str | None, chunk: Chunk) -> tuple[int, int]:
    """(count, sum) from the module's line ``LO HI COUNT SUM``; BadOutput unless it is about ``chunk``."""
    fields = (stdout or "").split()
    if len(fields) != 4 or not all(f.isdigit() for f in fields):
        raise BadOutput(f"expected 'LO HI COUNT SUM', got {stdout!r}")
    lo, hi, count, total = (int(f) for f in fields)
    if (lo, hi) != (chunk.lo, chunk.hi) or count > hi - lo:
        raise BadOutput(f"an answer about [{lo}, {hi}) with {count} primes, for [{chunk.lo}, {chunk.hi})")
    return count, total


def local_primes(start: int, stop: int) -> tuple[int, int]:
    """(count, sum) of the primes in ``[start, stop)`` by a sieve of Eratosthenes, computed here."""
    sieve = bytearray([1]) * stop
    sieve[:2] = b"\0\0"[: min(2, stop)]
    for n in range(2, int(stop**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, stop, n)))
    primes = [n for n in range(start, stop) if sieve[n]]
    return len(primes), sum(primes)


async def worker(
    context: WorkContext, tasks: AsyncIterator[Task[Chunk, Counted]]
) -> AsyncGenerator[Script, Awaitable[list[CommandEvent]]]:
    async for task in tasks:
        chunk = task.data
        script = context.new_script()
        future_result = script.run("main", str(chunk.lo), str(chunk.hi))
        yield script
        result = await future_result
        try:
            count, total = parse_output(result.stdout, chunk)
        except BadOutput as exc:
            task.reject_result(f"bad output from {context.provider_name}: {exc}", retry=True)
            await tasks.aclose()  # type: ignore[attr-defined]
            return
        task.accept_result(Counted(chunk, count, total, context.provider_name or "?"))


async def main(args: argparse.Namespace) -> int:
    chunks = split(args.start, args.stop, args.tasks)
    payload = WasmPayload(package=f"hash:sha3:{args.module_hash}:{args.module_url}")
    started = time.perf_counter()
    costs = Costs()

    def on_event(event: Event) -> None:
        if isinstance(event, TaskRejected):
            print(f"rejected: {event.reason}", flush=True)

    results: list[Counted] = []
    print(f"counting primes in [{args.start}, {args.stop}) in {len(chunks)} tasks on wasmtime providers")
    async with Golem(budget=args.budget, subnet_tag=args.subnet_tag) as golem:
        golem.add_event_consumer(on_event)
        golem.add_event_consumer(costs)
        work: list[Task[Chunk, Counted]] = [Task(data=c) for c in chunks]
        async for done in golem.execute_tasks(worker, work, payload=payload, max_workers=args.max_workers):
            assert done.result is not None
            results.append(done.result)
            r = done.result
            print(
                f"[{time.perf_counter() - started:6.1f}s] [{r.chunk.lo}, {r.chunk.hi}): {r.count} primes"
                f" by {r.provider} ({len(results)}/{len(chunks)})",
                flush=True,
            )
    count, total = sum(r.count for r in results), sum(r.total for r in results)
    print(f"primes in [{args.start}, {args.stop}): {count}, their sum {total}")
    print(f"took {time.perf_counter() - started:.1f} s")
    for provider, n in sorted(Counter(r.provider for r in results).items()):
        print(f"  {provider}: {n} task(s)")
    print(costs)
    expected = local_primes(args.start, args.stop)
    if (count, total) != expected:
        print(f"check: FAILED, a local sieve finds {expected[0]} primes summing to {expected[1]}")
        return 1
    print("check: equal to a local sieve")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--module-hash", required=True, help="sha3-224 of primes.wasm")
    parser.add_argument("--module-url", required=True, help="where providers download it")
    parser.add_argument("--start", type=int, default=0, help="first number of the range (default: 0)")
    parser.add_argument("--stop", type=int, default=10_000_000, help="end of the range, excluded")
    parser.add_argument("--tasks", type=int, default=8, help="tasks to split the range into (default: 8)")
    parser.add_argument("--max-workers", type=int, default=4, help="providers used at once (default: 4)")
    parser.add_argument("--budget", type=float, default=1.0, help="GLM to allocate (default: 1)")
    parser.add_argument("--subnet-tag", default="public")
    args = parser.parse_args(argv)
    try:
        split(args.start, args.stop, args.tasks)
    except ValueError as exc:
        parser.error(str(exc))
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
