"""What the vm runtime costs over raw Docker, and what fetching a package costs.

Part 1, measured in the same run on the same busybox image with the same hardening:

* ours: ``create`` (cached package) + ``deploy`` + ``start``; ``run echo hi``; ``terminate``;
* raw ``docker run --rm IMAGE echo hi`` (SDK ``containers.run``, same options) — the baseline for
  a whole activity (start, one command, removal);
* raw ``docker exec`` (SDK ``exec_run``) in a running container — the baseline for one ``run``.

Part 2: a ~50 MB package (busybox plus a random blob) served by aiohttp on 127.0.0.1, downloaded by
streaming to a file, verified (sha3-224 of the file), and loaded into Docker by the runtime's
factory from a cold engine (image removed first), each timed on its own.

    .venv/bin/python tests/benchmarks/bench_docker.py [--runs 20] [--loads 3]

Not collected by pytest (the ``bench_`` prefix) and not a timed assertion: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import docker
import docker.errors
from aiohttp import ClientSession, web
from docker.types import Mount

from exeunits.payloads.image import BuiltImage, build_busybox_image
from exeunits.runtime.base import ActivitySpec, DeployOptions, MiB, ResourceLimits
from exeunits.runtime.docker import HELPER_SOURCE, HELPER_TARGET, KEEPALIVE, DockerRuntimeFactory

LIMITS = ResourceLimits(cpu_threads=1.0, memory_bytes=128 * MiB, pids=64)
HARDENING: dict[str, Any] = {
    "network_mode": "none",
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "pids_limit": LIMITS.pids,
    "mem_limit": LIMITS.memory_bytes,
    "memswap_limit": LIMITS.memory_bytes,
    "nano_cpus": int(LIMITS.cpu_threads * 1e9),
    "init": True,
}
BLOB_BYTES = 50 * MiB


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def timed(action: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await action()
    return (time.perf_counter() - started) * 1000


def print_rows(title: str, rows: dict[str, list[float]]) -> None:
    print(title)
    print(f"  {'step':<44}{'p50':>9}{'p90':>9}{'mean':>9}")
    for name, values in rows.items():
        cells = [pct(values, 50), pct(values, 90), statistics.mean(values)]
        print(f"  {name:<44}" + "".join(f"{c:9.1f}" for c in cells))


async def activity_overhead(image: BuiltImage, runs: int, root: Path) -> None:
    client = docker.from_env()
    owner = f"bench-{uuid.uuid4().hex[:8]}"
    ours: dict[str, list[float]] = {
        "ours: create+deploy+start (cached package)": [],
        "ours: run echo hi": [],
        "ours: terminate": [],
        "ours: whole activity (all three)": [],
    }
    raw: dict[str, list[float]] = {"raw: docker run --rm echo hi": [], "raw: docker exec echo hi": []}
    async with DockerRuntimeFactory(owner) as factory:
        warm_spec = ActivitySpec("warm", image.archive, image.sha3_224, root / "warm", LIMITS)
        await (await factory.create(warm_spec)).terminate()
        for i in range(runs):
            spec = ActivitySpec(f"a{i}", image.archive, image.sha3_224, root / f"a{i}", LIMITS)
            holder: dict[str, Any] = {}

            async def bring_up(spec: ActivitySpec = spec, holder: dict[str, Any] = holder) -> None:
                runtime = await factory.create(spec)
                await runtime.deploy(DeployOptions())
                await runtime.start([])
                holder["runtime"] = runtime

            up = await timed(bring_up)
            runtime = holder["runtime"]
            echo = await timed(lambda runtime=runtime: runtime.run("/bin/echo", ["hi"], lambda s, b: None))
            down = await timed(runtime.terminate)
            ours["ours: create+deploy+start (cached package)"].append(up)
            ours["ours: run echo hi"].append(echo)
            ours["ours: terminate"].append(down)
            ours["ours: whole activity (all three)"].append(up + echo + down)

        image_id = client.images.get(f"golem-pkg:{image.sha3_224}").id
        helper = [Mount(HELPER_TARGET, str(HELPER_SOURCE), type="bind", read_only=True)]

        def docker_run() -> None:
            client.containers.run(image_id, ["/bin/echo", "hi"], remove=True, **HARDENING)

        for _ in range(runs):
            raw["raw: docker run --rm echo hi"].append(await timed(lambda: asyncio.to_thread(docker_run)))

        container = client.containers.run(
            image_id, entrypoint=KEEPALIVE, command=[], detach=True, mounts=helper, **HARDENING
        )
        try:
            for _ in range(runs):
                exec_once = container.exec_run
                raw["raw: docker exec echo hi"].append(
                    await timed(lambda exec_once=exec_once: asyncio.to_thread(exec_once, ["/bin/echo", "hi"]))
                )
        finally:
            container.remove(force=True)
    client.close()

    print_rows(f"activity overhead, cached busybox package, {runs} runs each (ms)", {**ours, **raw})
    whole = statistics.median(ours["ours: whole activity (all three)"])
    run_once = statistics.median(raw["raw: docker run --rm echo hi"])
    one_exec = statistics.median(ours["ours: run echo hi"])
    raw_exec = statistics.median(raw["raw: docker exec echo hi"])
    print("  ratios of medians (ours / raw):")
    print(f"    whole activity / docker run --rm    {whole / run_once:6.2f}")
    print(f"    run echo hi    / docker exec        {one_exec / raw_exec:6.2f}")


async def package_fetch(loads: int, root: Path) -> None:
    blob = os.urandom(BLOB_BYTES)
    image = build_busybox_image(root / "big", tag="golem-busybox-bench:big", extra_files={"/data/blob": blob})
    client = docker.from_env()

    async def serve(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(image.size)})
        await response.prepare(request)
        with image.archive.open("rb") as f:
            while chunk := f.read(MiB):
                await response.write(chunk)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/package.tar", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/package.tar"

    rows: dict[str, list[float]] = {"download (aiohttp stream to file)": [], "verify (sha3-224 of file)": []}
    rows["load into Docker (cold engine)"] = []
    rows["total"] = []
    try:
        async with ClientSession() as session:
            for i in range(loads):
                target = root / f"download-{i}.tar"

                async def download(target: Path = target) -> None:
                    async with session.get(url) as response:
                        response.raise_for_status()
                        with target.open("wb") as out:
                            async for chunk in response.content.iter_chunked(MiB):
                                out.write(chunk)

                def verify(target: Path = target) -> None:
                    digest = hashlib.sha3_224()
                    with target.open("rb") as f:
                        while chunk := f.read(MiB):
                            digest.update(chunk)
                    assert digest.hexdigest() == image.sha3_224, "downloaded package does not verify"

                fetched = await timed(download)
                verified = await timed(lambda verify=verify: asyncio.to_thread(verify))
                forget_image(client, image)
                owner = f"bench-{uuid.uuid4().hex[:8]}"
                async with DockerRuntimeFactory(owner) as factory:
                    spec = ActivitySpec(f"load{i}", target, image.sha3_224, root / f"load{i}", LIMITS)
                    loaded = await timed(lambda factory=factory, spec=spec: factory.create(spec))
                    await factory.close()
                rows["download (aiohttp stream to file)"].append(fetched)
                rows["verify (sha3-224 of file)"].append(verified)
                rows["load into Docker (cold engine)"].append(loaded)
                rows["total"].append(fetched + verified + loaded)
                target.unlink()
    finally:
        await runner.cleanup()
        forget_image(client, image)
        client.close()
    size = image.size / MiB
    print_rows(f"package fetch, {size:.1f} MiB docker archive from 127.0.0.1, {loads} runs (ms)", rows)
    median_download = statistics.median(rows["download (aiohttp stream to file)"]) / 1000
    median_verify = statistics.median(rows["verify (sha3-224 of file)"]) / 1000
    print(f"  throughput: download {size / median_download:.0f} MiB/s, ", end="")
    print(f"verify {size / median_verify:.0f} MiB/s")


def forget_image(client: Any, image: BuiltImage) -> None:
    """Remove the package's image entirely, so the next load really imports its layers."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        image_id = client.images.get(image.tag).id
        client.images.remove(image_id, force=True)
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(f"golem-pkg:{image.sha3_224}", force=True)


async def main(runs: int, loads: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
        root = Path(tmp)
        image = build_busybox_image(root / "small", tag="golem-busybox-bench:small")
        try:
            await activity_overhead(image, runs, root)
        finally:
            client = docker.from_env()
            forget_image(client, image)
            client.close()
        print()
        await package_fetch(loads, root)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="activities / commands per row")
    parser.add_argument("--loads", type=int, default=3, help="package fetches")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.loads))
