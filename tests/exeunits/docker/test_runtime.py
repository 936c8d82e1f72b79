"""The vm runtime's life cycle against a real engine: deploy, start, run, volumes, terminate."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from exeunits.errors import ActivityStateError, RuntimeCommandError, RuntimeUnavailableError
from exeunits.runtime.base import DeployOptions, ExeUnitRuntime, RuntimeFactory
from exeunits.runtime.docker import DockerRuntimeFactory

from .conftest import Activities, Output


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)


async def test_implements_the_runtime_protocols(activities: Activities) -> None:
    factory: RuntimeFactory = activities.factory
    runtime: ExeUnitRuntime = await factory.create(activities.spec())
    assert factory.name == "vm"
    assert runtime.volumes() == {}


async def test_run_streams_stdout_and_stderr_in_order_before_returning(activities: Activities) -> None:
    runtime = await activities.started()
    output = Output()
    returned_at: list[float] = []
    seen_at: list[float] = []

    def on_output(stream: Any, chunk: bytes) -> None:
        seen_at.append(time.monotonic())
        output(stream, chunk)

    script = "echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three"
    result = await runtime.run("/bin/sh", ["-c", script], on_output)
    returned_at.append(time.monotonic())

    assert result.return_code == 0
    assert result.stdout == b"one\nthree\n"
    assert result.stderr == b"two\n"
    assert not result.stdout_truncated and not result.stderr_truncated
    assert result.message is None
    assert [chunk.strip() for _, chunk in output.chunks] == [b"one", b"two", b"three"]
    assert [stream for stream, _ in output.chunks] == ["stdout", "stderr", "stdout"]
    # The first chunk came while the command was still running, not in a batch at the end.
    assert returned_at[0] - seen_at[0] > 0.4


async def test_non_zero_exit_code_is_a_result_not_an_error(activities: Activities) -> None:
    runtime = await activities.started()
    result = await runtime.run("/bin/sh", ["-c", "echo failing >&2; exit 7"], Output())
    assert result.return_code == 7
    assert result.stderr == b"failing\n"
    missing = await runtime.run("/no/such/program", [], Output())
    assert missing.return_code != 0


async def test_volumes_are_host_folders_both_ways(activities: Activities) -> None:
    runtime = await activities.started()
    volumes = runtime.volumes()
    assert set(volumes) >= {"/golem/input", "/golem/output", "/golem/work", "/golem/resource"}
    for folder in volumes.values():
        assert folder.is_dir() and folder.is_relative_to(runtime.spec.workdir)
    (volumes["/golem/input"] / "in.txt").write_text("hello from the host\n")

    script = "tr a-z A-Z < /golem/input/in.txt > /golem/output/out.txt && pwd"
    result = await runtime.run("/bin/sh", ["-c", script], Output())

    assert result.return_code == 0, result.stderr
    assert result.stdout == b"/golem/work\n"
    assert (volumes["/golem/output"] / "out.txt").read_text() == "HELLO FROM THE HOST\n"


async def test_deploy_options_env_hostname_and_extra_volumes(activities: Activities) -> None:
    options = DeployOptions(env={"GOLEM_X": "42", "PATH": "/bin"}, volumes=("/data/",), hostname="worker-1")
    runtime = await activities.started(options=options)
    assert "/data" in runtime.volumes()

    result = await runtime.run("/bin/sh", ["-c", 'echo "$GOLEM_X $PATH"; hostname; touch /data/x'], Output())

    assert result.stdout == b"42 /bin\nworker-1\n", result.stderr
    assert (runtime.volumes()["/data"] / "x").is_file()


@pytest.mark.parametrize("volume", ["relative/path", "/", "/a/../etc", "/proc/x", "/.golem", "/sys"])
async def test_deploy_refuses_volumes_outside_what_the_activity_owns(
    activities: Activities, volume: str
) -> None:
    runtime = await activities.create()
    with pytest.raises(RuntimeCommandError):
        await runtime.deploy(DeployOptions(volumes=(volume,)))
    assert runtime.container_id is None


async def test_commands_out_of_order_are_refused(activities: Activities) -> None:
    runtime = await activities.create()
    with pytest.raises(ActivityStateError):
        await runtime.run("/bin/echo", ["hi"], Output())
    with pytest.raises(ActivityStateError):
        await runtime.start([])
    await runtime.deploy(DeployOptions())
    with pytest.raises(ActivityStateError):
        await runtime.deploy(DeployOptions())


async def test_background_process_outlives_its_run_until_terminate(
    activities: Activities, docker_engine: Any
) -> None:
    runtime = await activities.started()

    quiet = await runtime.run("/bin/sh", ["-c", "sleep 30 > /dev/null 2>&1 &"], Output())
    started = time.monotonic()
    # This child keeps the exec's stdout open; the run still ends with its main process. (Docker
    # itself would give up after 2 s; the runtime notices the exit sooner.)
    holding = await runtime.run("/bin/sh", ["-c", "echo parent; sleep 31 &"], Output())
    assert time.monotonic() - started < 1.9
    assert quiet.return_code == 0 and holding.return_code == 0
    assert holding.stdout == b"parent\n"

    # Seen from the host (an exec right after one whose output is still held waits for Docker to
    # give up on that stream, a few seconds).
    top = docker_engine.api.top(runtime.container_id)
    sleepers = {p[-1]: int(p[top["Titles"].index("PID")]) for p in top["Processes"] if "sleep 3" in p[-1]}
    assert sorted(sleepers) == ["sleep 30", "sleep 31"]
    await runtime.terminate()
    await wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in sleepers.values()))


async def test_terminate_removes_container_and_folders_and_is_idempotent(
    activities: Activities, docker_engine: Any
) -> None:
    runtime = await activities.started()
    container_id = runtime.container_id
    folders = list(runtime.volumes().values())
    await runtime.run(
        "/bin/sh", ["-c", "mkdir -p /golem/output/deep/er && echo x > /golem/output/deep/er/f"], Output()
    )

    await runtime.terminate()
    await runtime.terminate()

    with pytest.raises(docker.errors.NotFound):
        docker_engine.containers.get(container_id)
    assert not any(folder.exists() for folder in folders)
    with pytest.raises(ActivityStateError):
        await runtime.run("/bin/echo", ["late"], Output())


async def test_terminate_before_deploy_and_factory_close_clean_up(
    activities: Activities, docker_engine: Any, owner: str
) -> None:
    never_deployed = await activities.create()
    await never_deployed.terminate()
    live = await activities.started()

    await activities.factory.close()

    with pytest.raises(docker.errors.NotFound):
        docker_engine.containers.get(live.container_id)
    await activities.factory.close()


async def test_cpu_seconds_grow_with_work(activities: Activities) -> None:
    runtime = await activities.started()
    before = await runtime.cpu_seconds()
    busy = "i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done"
    await runtime.run("/bin/sh", ["-c", busy], Output())
    after = await runtime.cpu_seconds()
    assert after > before + 0.02
    await runtime.terminate()
    assert await runtime.cpu_seconds() == pytest.approx(after, abs=0.5)


async def test_cancelling_a_run_kills_its_process_promptly(activities: Activities) -> None:
    runtime = await activities.started()
    output = Output()
    task = asyncio.create_task(runtime.run("/bin/sh", ["-c", "echo started; sleep 1000; echo never"], output))
    await wait_until(lambda: output.joined("stdout") == b"started\n")

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - cancelled_at < 2.0

    ps = await runtime.run("ps", [], Output())
    assert b"sleep 1000" not in ps.stdout, ps.stdout.decode()
    # The activity is still usable after a cancelled command.
    assert (await runtime.run("/bin/echo", ["ok"], Output())).stdout == b"ok\n"


async def test_factory_start_without_engine_says_so() -> None:
    def unreachable() -> Any:
        # Port 1 on loopback: nothing listens there, the connection is refused at once.
        return docker.DockerClient(base_url="tcp://127.0.0.1:1", version="1.41", timeout=5)

    factory = DockerRuntimeFactory("nobody", client_factory=unreachable)
    with pytest.raises(RuntimeUnavailableError, match="cannot reach the Docker engine"):
        await factory.start()


async def test_factory_refuses_a_helper_that_is_not_static(tmp_path: Path) -> None:
    script = tmp_path / "busybox"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    factory = DockerRuntimeFactory("nobody", helper_binary=script)
    with pytest.raises(RuntimeUnavailableError, match="statically linked busybox"):
        await factory.start()
