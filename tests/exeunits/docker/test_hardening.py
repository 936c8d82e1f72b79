"""What a hostile command can and cannot do inside a vm activity: each test asserts the outcome."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from exeunits.runtime.base import MiB, ResourceLimits

from .conftest import SMALL, Activities, Output


async def test_no_network_but_loopback(activities: Activities) -> None:
    accepted = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()

    # A service on the host's loopback: the container's 127.0.0.1 is its own, so it must not reach it.
    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    runtime = await activities.started()
    try:
        interfaces = await runtime.run("ls", ["/sys/class/net"], Output())
        assert interfaces.stdout.split() == [b"lo"]
        devices = await runtime.run("cat", ["/proc/net/dev"], Output())
        names = [line.split(b":")[0].strip() for line in devices.stdout.splitlines()[2:]]
        assert names == [b"lo"]

        host = await runtime.run("/bin/sh", ["-c", f"echo hi | nc -w 2 127.0.0.1 {port}"], Output())
        assert host.return_code != 0
        for target in ("1.1.1.1", "172.17.0.1"):  # the internet; the host's docker0 bridge
            outside = await runtime.run("/bin/sh", ["-c", f"echo hi | nc -w 2 {target} 80"], Output())
            assert outside.return_code != 0
            assert b"network is unreachable" in outside.stderr.lower(), outside.stderr
        routes = await runtime.run("ip", ["route"], Output())
        assert routes.return_code == 0 and routes.stdout == b""
        ping = await runtime.run("ping", ["-c", "1", "-W", "1", "1.1.1.1"], Output())
        assert ping.return_code != 0
    finally:
        server.close()
        await server.wait_closed()
    assert accepted == 0


async def test_all_capabilities_dropped_and_no_new_privileges(activities: Activities) -> None:
    runtime = await activities.started()
    result = await runtime.run(
        "grep", ["-E", "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):", "/proc/self/status"], Output()
    )
    fields = dict(line.split(b":\t") for line in result.stdout.splitlines())
    assert fields[b"NoNewPrivs"] == b"1"
    for name in (b"CapPrm", b"CapEff", b"CapBnd"):
        assert int(fields[name], 16) == 0, result.stdout.decode()
    # Root without CAP_CHOWN / CAP_SYS_ADMIN: the usual escalation steps fail.
    chown = await runtime.run("/bin/sh", ["-c", "touch /tmp/f && chown 65534 /tmp/f"], Output())
    assert chown.return_code != 0


async def test_fork_bomb_is_stopped_by_the_pids_limit(activities: Activities, docker_engine: Any) -> None:
    limits = ResourceLimits(memory_bytes=64 * MiB, pids=32)
    bombed = await activities.started(limits)
    # Every `sleep` stays alive in the background (and holds the exec's stdout open).
    bomb = "while sleep 600 & do :; done"

    started = time.monotonic()
    result = await asyncio.wait_for(bombed.run("/bin/sh", ["-c", bomb], Output()), timeout=20)

    assert time.monotonic() - started < 10
    assert result.return_code != 0
    assert b"can't fork" in result.stderr, result.stderr
    processes = docker_engine.api.top(bombed.container_id)["Processes"]
    assert limits.pids - 5 <= len(processes) <= limits.pids
    # The host and its other activities are unharmed.
    other = await activities.started(SMALL)
    assert (await other.run("/bin/echo", ["ok"], Output())).stdout == b"ok\n"
    await bombed.terminate()


async def test_memory_hog_is_killed_and_the_result_says_so(activities: Activities) -> None:
    limits = ResourceLimits(memory_bytes=64 * MiB, pids=64)
    runtime = await activities.started(limits)

    # tail holds the whole (newline-free) input in memory: 300 MiB against a 64 MiB limit.
    result = await runtime.run("/bin/sh", ["-c", "head -c 300m /dev/zero | tail"], Output())

    assert result.return_code == 137
    assert result.message is not None and "memory limit of 64 MiB" in result.message
    after = await runtime.run("/bin/echo", ["still here"], Output())
    assert after.stdout == b"still here\n" and after.message is None


async def test_memory_kill_of_a_child_is_reported_too(activities: Activities) -> None:
    runtime = await activities.started(ResourceLimits(memory_bytes=64 * MiB, pids=64))
    container = str(runtime.container_id)
    cgroups = [
        Path(f"/sys/fs/cgroup/memory/docker/{container}"),
        Path(f"/sys/fs/cgroup/system.slice/docker-{container}.scope"),
    ]
    if not any(path.is_dir() for path in cgroups):
        pytest.skip("the container's memory cgroup is not visible from here")

    result = await runtime.run("/bin/sh", ["-c", "head -c 300m /dev/zero | tail; echo survived"], Output())

    assert result.return_code == 0 and result.stdout == b"survived\n"
    assert result.message == "a process was killed: memory limit of 64 MiB reached"


async def test_output_flood_is_truncated_at_the_cap(activities: Activities) -> None:
    limits = ResourceLimits(memory_bytes=64 * MiB, pids=64, output_cap_bytes=256 * 1024)
    runtime = await activities.started(limits)
    output = Output()

    result = await runtime.run("/bin/sh", ["-c", "yes | head -c 50000000; echo done >&2"], output)

    assert result.return_code == 0
    assert result.stdout_truncated and not result.stderr_truncated
    assert len(result.stdout) == limits.output_cap_bytes
    assert result.stdout == b"y\n" * (limits.output_cap_bytes // 2)
    assert result.stderr == b"done\n"
    # The callback saw exactly what was kept: nothing past the cap went downstream.
    assert output.joined("stdout") == result.stdout


async def test_read_only_helper_cannot_be_changed(activities: Activities, docker_engine: Any) -> None:
    runtime = await activities.started()
    result = await runtime.run("/bin/sh", ["-c", "echo x > /.golem/busybox"], Output())
    assert result.return_code != 0
    mounts = docker_engine.api.inspect_container(runtime.container_id)["Mounts"]
    sources = {m["Destination"]: (m["Source"], m["RW"]) for m in mounts}
    assert sources.pop("/.golem/busybox")[1] is False
    # Nothing else of the host is mounted: only the activity's own folders.
    assert all(source.startswith(str(runtime.spec.workdir)) for source, _ in sources.values())
