"""Commands through a real wasmtime engine: output, argv, env, exit codes, volumes, lifecycle."""

from __future__ import annotations

import os

import pytest

from exeunits.errors import ActivityStateError, RuntimeCommandError
from exeunits.runtime.base import DeployOptions, ExeUnitRuntime, RuntimeFactory
from exeunits.runtime.wasm import EXIT_TRAPPED, EXIT_UNKNOWN_ENTRY_POINT, WasmRuntimeFactory

from .conftest import Activities, Output


async def test_classes_implement_the_runtime_protocols(activities: Activities) -> None:
    # Checked by mypy: the assignments fail type-checking if a signature drifts from base.py.
    factory: RuntimeFactory = WasmRuntimeFactory()
    runtime: ExeUnitRuntime = await activities.start(activities.module("hello"))

    assert factory.name == "wasmtime"
    assert runtime.volumes()


async def test_hello_streams_stdout_and_stderr_before_run_returns(activities: Activities) -> None:
    runtime = await activities.start(activities.module("hello"))
    output = Output()

    result = await runtime.run("hello", [], output)

    assert result.return_code == 0
    assert result.message is None
    assert result.stdout == b"hello from wasm\n"
    assert result.stderr == b"to stderr\n"
    assert not result.stdout_truncated and not result.stderr_truncated
    # Everything captured was handed to the callback, per stream and in order, before run returned.
    assert output.joined("stdout") == result.stdout
    assert output.joined("stderr") == result.stderr
    assert await runtime.cpu_seconds() > 0


async def test_volumes_are_host_folders_under_the_workdir(activities: Activities) -> None:
    runtime = await activities.start(activities.module("hello"))
    spec_workdir = activities.root / runtime.activity_id

    volumes = runtime.volumes()

    assert set(volumes) == {"/golem/input", "/golem/output", "/golem/work"}
    for host in volumes.values():
        assert host.is_dir()
        assert spec_workdir in host.parents


async def test_args_follow_the_entry_point_in_argv(activities: Activities) -> None:
    runtime = await activities.start(activities.module("echo_args"))

    named = await runtime.run("echo_args", ["one", "two words", ""], Output())
    main = await runtime.run("main", [], Output())

    assert named.stdout == b"echo_args\none\ntwo words\n\n"
    assert main.stdout == b"main\n"


async def test_environment_comes_from_deploy_and_nothing_from_the_host(activities: Activities) -> None:
    runtime = await activities.start(
        activities.module("print_env"), env={"GREETING": "hi there", "EMPTY": ""}
    )

    result = await runtime.run("print_env", [], Output())

    assert sorted(result.stdout.decode().splitlines()) == ["EMPTY=", "GREETING=hi there"]


@pytest.mark.parametrize(("args", "code"), [(["42"], 42), (["0"], 0), ([], 3), (["125"], 125)])
async def test_exit_code_is_returned(activities: Activities, args: list[str], code: int) -> None:
    runtime = await activities.start(activities.module("exit_code"))

    result = await runtime.run("exit_code", args, Output())

    assert result.return_code == code
    assert result.message is None


async def test_exit_status_wasi_cannot_express_is_reported_as_a_trap(activities: Activities) -> None:
    runtime = await activities.start(activities.module("exit_code"))

    result = await runtime.run("exit_code", ["200"], Output())

    assert result.return_code == EXIT_TRAPPED
    assert result.message is not None and "invalid exit status" in result.message


async def test_input_is_read_and_output_written_through_preopens(activities: Activities) -> None:
    runtime = await activities.start(activities.module("copy"))
    (runtime.volumes()["/golem/input"] / "in.txt").write_text("hello, World\n")

    result = await runtime.run("copy", [], Output())

    assert result.return_code == 0, result.stderr
    assert result.stdout == b"copied 13 bytes\n"
    assert (runtime.volumes()["/golem/output"] / "out.txt").read_text() == "HELLO, WORLD\n"


async def test_input_volume_is_read_only(activities: Activities) -> None:
    runtime = await activities.start(activities.module("copy"))
    (runtime.volumes()["/golem/input"] / "in.txt").write_text("x")

    result = await runtime.run("copy", ["/golem/input", "in.txt", "/golem/input", "out.txt"], Output())

    assert result.return_code == 1
    assert result.stderr.startswith(b"cannot open out.txt: errno ")
    assert not (runtime.volumes()["/golem/input"] / "out.txt").exists()


async def test_work_folder_keeps_files_between_runs_of_two_entry_points(activities: Activities) -> None:
    package = activities.zip(
        "tools.zip",
        {"copy.wasm": "copy", "bin/cat.wasm": "cat"},
        {"entry_points": {"upper": {"wasm": "copy.wasm"}, "show": {"wasm": "bin/cat.wasm"}}},
    )
    runtime = await activities.start(package)
    (runtime.volumes()["/golem/input"] / "in.txt").write_text("kept\n")

    copied = await runtime.run("upper", ["/golem/input", "in.txt", "/golem/work", "tmp.txt"], Output())
    shown = await runtime.run("show", ["/golem/work", "tmp.txt"], Output())

    assert copied.return_code == 0, copied.stderr
    assert shown.return_code == 0, shown.stderr
    assert shown.stdout == b"KEPT\n"


async def test_extra_deploy_volume_is_preopened_read_write(activities: Activities) -> None:
    runtime = await activities.start(activities.module("copy"), volumes=("/data/sets",))
    (runtime.volumes()["/golem/input"] / "in.txt").write_text("abc")

    result = await runtime.run("copy", ["/golem/input", "in.txt", "/data/sets", "out.txt"], Output())

    assert result.return_code == 0, result.stderr
    assert (runtime.volumes()["/data/sets"] / "out.txt").read_text() == "ABC"


@pytest.mark.parametrize("volume", ["relative/path", "/golem/../etc", "/"])
async def test_deploy_refuses_volumes_outside_the_activity(activities: Activities, volume: str) -> None:
    runtime = await activities.factory.create(activities.spec(activities.module("hello")))
    activities.runtimes.append(runtime)

    with pytest.raises(RuntimeCommandError, match="volume"):
        await runtime.deploy(DeployOptions(volumes=(volume,)))


@pytest.mark.parametrize("path", ["../../../../../etc/passwd", "/etc/passwd", "escape", "escape-dir/passwd"])
async def test_module_cannot_reach_host_paths_outside_its_preopens(activities: Activities, path: str) -> None:
    runtime = await activities.start(activities.module("cat"))
    input_folder = runtime.volumes()["/golem/input"]
    # Symlinks placed in a volume (by a transfer, say) must not lead out of it either.
    (input_folder / "escape").symlink_to("/etc/passwd")
    (input_folder / "escape-dir").symlink_to("/etc")
    assert os.path.exists("/etc/passwd")

    result = await runtime.run("cat", ["/golem/input", path], Output())

    assert result.return_code == 1
    assert result.stdout == b""
    assert result.stderr.startswith(f"cannot open {path}: errno ".encode())


async def test_unknown_entry_point_returns_127_naming_the_known_ones(activities: Activities) -> None:
    runtime = await activities.start(activities.module("hello"))

    result = await runtime.run("nope", [], Output())

    assert result.return_code == EXIT_UNKNOWN_ENTRY_POINT
    assert result.message == "unknown entry point 'nope'; this package has: hello, main"


async def test_commands_out_of_order_are_refused_and_terminate_cleans_up(activities: Activities) -> None:
    runtime = await activities.factory.create(activities.spec(activities.module("hello")))
    activities.runtimes.append(runtime)
    workdir = activities.root / runtime.activity_id

    with pytest.raises(ActivityStateError):
        await runtime.run("hello", [], Output())
    with pytest.raises(ActivityStateError):
        await runtime.start([])
    await runtime.deploy(DeployOptions())
    with pytest.raises(ActivityStateError):
        await runtime.run("hello", [], Output())
    await runtime.start([])
    assert (await runtime.run("hello", [], Output())).return_code == 0
    assert (workdir / "volumes").is_dir()

    await runtime.terminate()
    await runtime.terminate()

    assert not (workdir / "volumes").exists()
    assert not (workdir / "runs").exists()
    with pytest.raises(ActivityStateError):
        await runtime.run("hello", [], Output())


async def test_run_folders_are_removed_after_each_run(activities: Activities) -> None:
    runtime = await activities.start(activities.module("hello"))

    await runtime.run("hello", [], Output())

    assert list((activities.root / runtime.activity_id / "runs").iterdir()) == []


async def test_a_package_is_compiled_once_for_all_activities_and_runs(
    activities: Activities, factory: WasmRuntimeFactory
) -> None:
    package = activities.module("hello")
    first = await activities.start(package)
    second = await activities.start(package)

    for _ in range(5):
        assert (await first.run("hello", [], Output())).return_code == 0
        assert (await second.run("main", [], Output())).return_code == 0

    assert factory.compilations == 1
