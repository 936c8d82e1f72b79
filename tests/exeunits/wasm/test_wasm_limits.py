"""Bounds on runs: CPU, memory, output, cancellation, termination, and isolation between activities."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from exeunits.errors import ActivityStateError, RuntimeCommandError
from exeunits.runtime.base import MiB, ResourceLimits
from exeunits.runtime.wasm import (
    EXIT_KILLED,
    EXIT_TRAPPED,
    WasmRuntime,
    WasmRuntimeConfig,
    WasmRuntimeFactory,
)

from .conftest import Activities, Output, run_threads


async def wait_until_running(runtime: WasmRuntime, timeout: float = 5.0) -> None:
    """Until the run in flight has used some CPU (its module is executing)."""
    deadline = time.monotonic() + timeout
    while await runtime.cpu_seconds() <= 0.02:
        assert time.monotonic() < deadline, "the run never started"
        await asyncio.sleep(0.01)


async def test_infinite_loop_is_stopped_by_the_cpu_bound(activities: Activities) -> None:
    runtime = await activities.start(activities.module("loop"), limits=ResourceLimits(cpu_seconds=0.3))

    started = time.monotonic()
    result = await runtime.run("loop", [], Output())
    elapsed = time.monotonic() - started

    assert result.return_code == EXIT_KILLED
    assert result.message == "CPU time limit of 0.3 s exceeded"
    assert 0.3 <= await runtime.cpu_seconds() < 0.6
    assert elapsed < 3.0


async def test_cpu_time_of_a_run_in_flight_is_reported(activities: Activities) -> None:
    runtime = await activities.start(activities.module("loop"), limits=ResourceLimits(cpu_seconds=0.4))
    run = asyncio.create_task(runtime.run("loop", [], Output()))

    await wait_until_running(runtime)

    assert not run.done()
    assert (await run).return_code == EXIT_KILLED
    assert await runtime.cpu_seconds() >= 0.4


async def test_memory_growth_stops_at_the_limit(activities: Activities) -> None:
    runtime = await activities.start(activities.module("grow"), limits=ResourceLimits(memory_bytes=8 * MiB))

    result = await runtime.run("grow", [], Output())

    assert result.return_code == 1
    # 8 MiB is 128 pages of 64 KiB: every growth up to it succeeds, the next one fails.
    assert result.stdout == b"memory.grow failed at 128 pages\n"


async def test_trap_after_reaching_the_memory_limit_says_so(activities: Activities) -> None:
    runtime = await activities.start(activities.module("grow"), limits=ResourceLimits(memory_bytes=4 * MiB))

    result = await runtime.run("grow", ["trap"], Output())

    assert result.return_code == EXIT_TRAPPED
    assert result.message == "trap: wasm `unreachable` instruction executed (memory limit of 4 MiB reached)"


async def test_module_needing_more_memory_than_allowed_cannot_start(activities: Activities) -> None:
    # The module declares two pages (128 KiB) of initial memory.
    runtime = await activities.start(
        activities.module("hello"), limits=ResourceLimits(memory_bytes=64 * 1024)
    )

    with pytest.raises(RuntimeCommandError, match=r"cannot instantiate entry point 'hello': .*memory"):
        await runtime.run("hello", [], Output())


async def test_output_flood_is_capped_and_stopped_by_the_cpu_bound(activities: Activities) -> None:
    cap = 64 * 1024
    runtime = await activities.start(
        activities.module("flood"), limits=ResourceLimits(cpu_seconds=0.5, output_cap_bytes=cap)
    )
    runs = activities.root / runtime.activity_id / "runs"
    output = Output()
    written, on_disk = 0, 0

    async def watch_disk() -> None:
        nonlocal written, on_disk
        while True:
            for path in runs.glob("stdout"):
                with contextlib.suppress(FileNotFoundError):
                    status = path.stat()
                    written = max(written, status.st_size)
                    on_disk = max(on_disk, status.st_blocks * 512)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch_disk())
    try:
        result = await runtime.run("flood", [], output)
    finally:
        watcher.cancel()

    assert result.return_code == EXIT_KILLED
    assert result.message == "CPU time limit of 0.5 s exceeded"
    assert result.stdout == b"x" * cap
    assert result.stdout_truncated
    assert not result.stderr_truncated
    assert output.joined("stdout") == result.stdout
    # The module wrote far more than the disk ever held: its file was trimmed as it went.
    assert written > 16 * MiB
    assert on_disk * 4 < written
    assert list(runs.iterdir()) == []


async def test_output_exactly_at_the_cap_is_not_truncated(activities: Activities) -> None:
    runtime = await activities.start(
        activities.module("hello"), limits=ResourceLimits(output_cap_bytes=len(b"hello from wasm\n"))
    )

    result = await runtime.run("hello", [], Output())

    assert result.stdout == b"hello from wasm\n"
    assert not result.stdout_truncated
    assert result.stderr == b"to stderr\n"


async def test_cancelling_a_run_stops_it_promptly_and_leaves_no_thread(activities: Activities) -> None:
    package = activities.zip(
        "both.zip",
        {"loop.wasm": "loop", "hello.wasm": "hello"},
        {"entry_points": {"loop": {"wasm": "loop.wasm"}, "hello": {"wasm": "hello.wasm"}}},
    )
    runtime = await activities.start(package)
    run = asyncio.create_task(runtime.run("loop", [], Output()))
    await wait_until_running(runtime)

    cancelled_at = time.monotonic()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    took = time.monotonic() - cancelled_at

    assert took < 1.0
    assert run_threads() == []
    # The exe unit is usable again, and charged for the CPU the cancelled run used.
    assert (await runtime.run("hello", [], Output())).return_code == 0
    assert await runtime.cpu_seconds() > 0.02


async def test_timeout_around_run_cancels_it(activities: Activities) -> None:
    runtime = await activities.start(activities.module("loop"))

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await runtime.run("loop", [], Output())

    assert run_threads() == []


async def test_terminate_during_a_run_kills_it(activities: Activities) -> None:
    runtime = await activities.start(activities.module("loop"))
    run = asyncio.create_task(runtime.run("loop", [], Output()))
    await wait_until_running(runtime)

    await runtime.terminate()
    result = await run

    assert result.return_code == EXIT_KILLED
    assert result.message == "killed: the activity was terminated"
    assert run_threads() == []
    assert not (activities.root / runtime.activity_id / "volumes").exists()


async def test_closing_the_factory_stops_runs_in_flight_and_the_ticker(activities: Activities) -> None:
    factory = activities.factory
    runtime = await activities.start(activities.module("loop"))
    run = asyncio.create_task(runtime.run("loop", [], Output()))
    await wait_until_running(runtime)
    assert factory.ticker_running

    await factory.close()
    result = await run

    assert result.message == "killed: the runtime was shut down"
    assert not factory.ticker_running
    assert run_threads() == []


async def test_runaway_activities_do_not_disturb_another(activities: Activities) -> None:
    limits = ResourceLimits(cpu_seconds=1.0, memory_bytes=16 * MiB, output_cap_bytes=4096)
    loop = await activities.start(activities.module("loop"), limits=limits)
    flood = await activities.start(activities.module("flood"), limits=limits)
    grow = await activities.start(activities.module("grow"), limits=limits)
    quiet = await activities.start(activities.module("hello"))
    runaways = [
        asyncio.create_task(loop.run("loop", [], Output())),
        asyncio.create_task(flood.run("flood", [], Output())),
        asyncio.create_task(grow.run("grow", ["trap"], Output())),
    ]

    results = [await quiet.run("hello", [], Output()) for _ in range(20)]

    assert not runaways[0].done() and not runaways[1].done()
    assert all(r.return_code == 0 and r.stdout == b"hello from wasm\n" for r in results)
    loop_result, flood_result, grow_result = await asyncio.gather(*runaways)
    assert loop_result.message == flood_result.message == "CPU time limit of 1 s exceeded"
    assert flood_result.stdout_truncated and len(flood_result.stdout) == 4096
    assert grow_result.return_code == EXIT_TRAPPED
    assert run_threads() == []


async def test_runs_of_one_activity_do_not_overlap(activities: Activities) -> None:
    runtime = await activities.start(activities.module("loop"), limits=ResourceLimits(cpu_seconds=0.3))
    first = asyncio.create_task(runtime.run("loop", [], Output()))
    await asyncio.sleep(0)

    with pytest.raises(ActivityStateError, match="already running"):
        await runtime.run("loop", [], Output())
    assert (await first).return_code == EXIT_KILLED


async def test_default_cpu_bound_comes_from_the_factory_config(tmp_path: Path) -> None:
    async with WasmRuntimeFactory(config=WasmRuntimeConfig(default_cpu_seconds=0.2)) as factory:
        activities = Activities(factory, tmp_path)
        runtime = await activities.start(activities.module("loop"))

        result = await runtime.run("loop", [], Output())

        assert result.message == "CPU time limit of 0.2 s exceeded"
        await runtime.terminate()
