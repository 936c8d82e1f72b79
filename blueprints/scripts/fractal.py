"""Task model: a Mandelbrot image rendered in tiles by the network's providers and merged into one PNG.

    python blueprints/scripts/fractal.py --image-hash HASH --image-url URL [--size 240x160]
        [--tiles 8] [--max-iter 256] [--out mandelbrot.png]

(with YAGNA_APPKEY / YAGNA_API_URL set as in the README; ``--registry URL`` instead of
``--image-url`` resolves the hash through a package registry, e.g. the market node's).
``python -m blueprints.run fractal`` builds the image, pushes it to the devnet and runs this.

Each tile is one task: the provider renders its rows with the payload image's ``mandel.awk``
(busybox awk) into ``/golem/output``, the requestor downloads the tile, checks it (a PGM of the
right size, every pixel in range) and merges the tiles into a PNG. A task is retried elsewhere when
its provider fails (yapapi reschedules the tasks of a failed worker) or when its output is bad: the
worker rejects the result and stops using that provider. ``--check`` renders the same image locally
and compares the two byte for byte.

Prints a line per tile as it starts and finishes, then the PNG's path, how many tiles each provider
rendered, and what the invoices cost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from yapapi import Golem, Task, WorkContext
from yapapi.events import CommandEvent, Event, TaskRejected, TaskStarted, WorkerFinished
from yapapi.payload import Payload, vm
from yapapi.script import Script

from blueprints.fractal import (
    FractalError,
    Tile,
    check_max_iter,
    encode_png,
    merge,
    parse_size,
    parse_tile,
    render_png,
    split,
)
from blueprints.report import Costs, reason

TILE_IN_CONTAINER = "/golem/output/tile.pgm"
JOB_TIMEOUT = timedelta(minutes=30)
TILE_TIMEOUT = timedelta(minutes=10)
"""How long one tile may take on a provider (busybox awk renders ~40k pixels/s at 256 iterations)."""


@dataclass
class Rendered:
    tile: Tile
    counts: list[list[int]]
    provider: str
    seconds: float


@dataclass
class Job:
    width: int
    height: int
    max_iter: int
    tiles_dir: Path
    started: float = field(default_factory=time.perf_counter)
    done: int = 0
    total: int = 0
    costs: Costs = field(default_factory=Costs)

    def elapsed(self) -> str:
        return f"{time.perf_counter() - self.started:6.1f}s"


Worker = Callable[
    [WorkContext, AsyncIterator[Task[Tile, Rendered]]], AsyncGenerator[Script, Awaitable[list[CommandEvent]]]
]


def make_worker(job: Job) -> Worker:
    async def worker(
        context: WorkContext, tasks: AsyncIterator[Task[Tile, Rendered]]
    ) -> AsyncGenerator[Script, Awaitable[list[CommandEvent]]]:
        async for task in tasks:
            tile = task.data
            began = time.perf_counter()
            script = context.new_script(timeout=TILE_TIMEOUT)
            render = tile.awk_command(job.width, job.height, job.max_iter)
            script.run("/bin/sh", "-c", f"{render} > {TILE_IN_CONTAINER}")
            # One local file per tile and provider: a retried tile never reads another attempt's bytes.
            local = job.tiles_dir / f"tile-{tile.index}.{context.provider_name}.pgm"
            script.download_file(TILE_IN_CONTAINER, str(local))
            yield script
            try:
                counts = parse_tile(local.read_bytes(), tile, job.max_iter)
            except (OSError, FractalError) as exc:
                # A provider whose output is wrong once is not trusted with more tiles: the tile
                # goes back to the queue and this worker ends, which ends its agreement.
                task.reject_result(f"bad output from {context.provider_name}: {exc}", retry=True)
                await tasks.aclose()  # type: ignore[attr-defined]
                return
            seconds = time.perf_counter() - began
            task.accept_result(Rendered(tile, counts, context.provider_name or "?", seconds))

    return worker


def on_event(job: Job) -> Callable[[Event], None]:
    def report(event: Event) -> None:
        if isinstance(event, TaskStarted):
            print(f"[{job.elapsed()}] {event.task.data} started on {event.provider_info.name}", flush=True)
        elif isinstance(event, TaskRejected):
            print(f"[{job.elapsed()}] {event.task.data} rejected: {event.reason}", flush=True)
        elif isinstance(event, WorkerFinished) and event.exc_info:
            print(
                f"[{job.elapsed()}] {event.provider_info.name} failed ({reason(event.exception)});"
                " its tile goes back to the queue",
                flush=True,
            )

    return report


async def resolve_image(image_hash: str, image_url: str | None, registry: str | None) -> Payload:
    if image_url:
        return await vm.repo(image_hash=image_hash, image_url=image_url)
    if registry:
        return await vm.repo(image_hash=image_hash, repository_url=registry.rstrip("/"))
    raise FractalError("give --image-url, or --registry to resolve --image-hash")


async def main(args: argparse.Namespace) -> int:
    width, height = parse_size(args.size)
    max_iter = check_max_iter(args.max_iter)
    tiles = split(width, height, args.tiles)
    package = await resolve_image(args.image_hash, args.image_url, args.registry)
    rendered: dict[Tile, Rendered] = {}
    with TemporaryDirectory(prefix="fractal-tiles-") as tiles_dir:
        job = Job(width, height, max_iter, Path(tiles_dir), total=len(tiles))
        print(
            f"rendering {width}x{height}, {max_iter} iterations, in {len(tiles)} tiles"
            f" (subnet {args.subnet_tag})",
            flush=True,
        )
        async with Golem(budget=args.budget, subnet_tag=args.subnet_tag) as golem:
            golem.add_event_consumer(on_event(job))
            golem.add_event_consumer(job.costs)

            work: list[Task[Tile, Rendered]] = [Task(data=t) for t in tiles]
            async for done in golem.execute_tasks(
                make_worker(job), work, payload=package, max_workers=args.max_workers, timeout=JOB_TIMEOUT
            ):
                result = done.result
                assert result is not None
                rendered[result.tile] = result
                print(
                    f"[{job.elapsed()}] {result.tile} done by {result.provider} in {result.seconds:.1f} s"
                    f" ({len(rendered)}/{len(tiles)})",
                    flush=True,
                )
            rendering = time.perf_counter() - job.started
            print(f"[{job.elapsed()}] all tiles rendered; waiting for invoices", flush=True)
    counts = {r.tile: r.counts for r in rendered.values()}
    png = encode_png(width, height, merge(width, height, counts, max_iter))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(png)
    print(f"wrote {args.out} ({width}x{height}, {len(png)} bytes)")
    print(f"tiles rendered in {rendering:.1f} s; {time.perf_counter() - job.started:.1f} s with the invoices")
    tiles_by = Counter(r.provider for r in rendered.values())
    for provider in sorted(set(tiles_by) | set(job.costs.by_provider)):
        billed = job.costs.by_provider.get(provider)
        invoiced = "no invoice" if billed is None else f"invoiced {billed.normalize():f} GLM"
        print(f"  {provider}: {tiles_by[provider]} tile(s), {invoiced}")
    print(job.costs)
    if args.check:
        if png != render_png(width, height, len(tiles), max_iter):
            print("check: FAILED, the image differs from a local render")
            return 1
        print("check: the image equals a local render byte for byte")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--image-hash", required=True, help="sha3-224 of the payload image")
    parser.add_argument("--image-url", help="where providers download the image")
    parser.add_argument("--registry", help="a package registry resolving --image-hash (e.g. the market node)")
    parser.add_argument("--size", default="240x160", help="WIDTHxHEIGHT (default: %(default)s)")
    parser.add_argument("--tiles", type=int, default=8, help="tasks to split the image into (default: 8)")
    parser.add_argument("--max-iter", type=int, default=256, help="iteration limit (default: 256)")
    parser.add_argument("--out", type=Path, default=Path("mandelbrot.png"), help="the PNG to write")
    parser.add_argument("--max-workers", type=int, default=4, help="providers used at once (default: 4)")
    parser.add_argument("--budget", type=float, default=5.0, help="GLM to allocate (default: 5)")
    parser.add_argument("--subnet-tag", default="public")
    parser.add_argument("--check", action="store_true", help="compare with a local render")
    return parser.parse_args(argv)


if __name__ == "__main__":
    options = parse_args()
    try:
        sys.exit(asyncio.run(main(options)))
    except FractalError as error:
        sys.exit(f"error: {error}")
