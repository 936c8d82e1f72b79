"""``golem exeunit run``: run an ExeScript locally against a package, for payload authors.

The same exe units a provider runs (hardened container, WASI sandbox), without a market: fetch and
verify the package, create one activity, run the script, print each event as it streams and each
result, then remove the activity. ``file://`` transfers are allowed here, so a script can bring
local files in and out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import click

from exeunits.activity import Activity, ExecutorSettings
from exeunits.errors import ExeUnitError
from exeunits.package import PackageRef, PackageStore
from exeunits.runtime.base import ActivitySpec, MiB, ResourceLimits, RuntimeFactory
from exeunits.script import Command, CommandOutcome, Deploy, Start, parse_exescript
from exeunits.transfer import TransferService
from market.core.config import data_dir
from market.core.ids import new_id

RUNTIMES = ("vm", "wasmtime")


@click.group()
def exeunit() -> None:
    """Exe units: run ExeScripts against Docker (vm) and WebAssembly (wasmtime) packages."""


@exeunit.command()
@click.argument("package")
@click.argument("script", type=click.File("r"))
@click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default=None,
    help="Runtime to use [default: wasmtime for .wasm modules and zips, vm otherwise].",
)
@click.option("--memory-mib", type=click.IntRange(16), default=512, show_default=True, help="Memory limit.")
@click.option("--cpu-threads", type=click.FloatRange(0.1), default=1.0, show_default=True, help="CPU limit.")
@click.option("--pids", type=click.IntRange(8), default=256, show_default=True, help="Process limit (vm).")
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=600.0,
    show_default=True,
    help="Per-command timeout, seconds.",
)
@click.option(
    "--no-implicit-init", is_flag=True, help="Do not add deploy+start in front of a script that lacks them."
)
@click.option("--json", "as_json", is_flag=True, help="Print events and results as JSON lines.")
def run(
    package: str,
    script: Any,
    runtime: str | None,
    memory_mib: int,
    cpu_threads: float,
    pids: int,
    timeout: float,
    no_implicit_init: bool,
    as_json: bool,
) -> None:
    """Run SCRIPT (an ExeScript JSON array, or - for stdin) against PACKAGE.

    PACKAGE is a file (a `docker save` archive, a .wasm module or a zip with a manifest), an
    http(s) URL, or a reference hash:sha3:<sha3-224>:<url> whose hash is checked.
    """
    try:
        commands = parse_exescript(script.read())
    except ExeUnitError as exc:
        raise click.ClickException(str(exc)) from exc
    if not no_implicit_init and not isinstance(commands[0], Deploy):
        commands = [Deploy(), Start(), *commands]
    limits = ResourceLimits(cpu_threads=cpu_threads, memory_bytes=memory_mib * MiB, pids=pids)
    try:
        ok = asyncio.run(_run(package, commands, runtime, limits, timeout, as_json))
    except ExeUnitError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(0 if ok else 1)


def _say(text: str) -> None:
    click.echo(text, err=True)


async def _fetch(package: str, store: PackageStore) -> tuple[Path, str]:
    def progress(done: int, total: int | None) -> None:
        if total:
            _say(f"  downloading {done * 100 // total:3d}% of {total / MiB:.1f} MiB")

    if package.startswith("hash:"):
        ref = PackageRef.parse(package)
        return await store.fetch(ref, progress), ref.sha3
    if package.startswith(("http://", "https://")):
        return await store.fetch_unnamed(package, progress)
    return await store.add_file(Path(package))


def _guess_runtime(path: Path) -> str:
    with path.open("rb") as fh:
        magic = fh.read(4)
    return "wasmtime" if magic in (b"\x00asm", b"PK\x03\x04") else "vm"


def _factory(name: str) -> RuntimeFactory:
    if name == "vm":
        from exeunits.runtime.docker import DockerRuntimeFactory

        return DockerRuntimeFactory(owner=f"exeunit-cli-{socket.gethostname()}-{os.getpid()}")
    from exeunits.runtime.wasm import WasmRuntimeFactory

    return WasmRuntimeFactory()


async def _run(
    package: str,
    commands: list[Command],
    runtime_name: str | None,
    limits: ResourceLimits,
    timeout: float,
    as_json: bool,
) -> bool:
    home = data_dir() / "exeunit"
    store = PackageStore(home / "packages")
    path, digest = await _fetch(package, store)
    name = runtime_name or _guess_runtime(path)
    _say(f"package sha3-224 {digest} ({path.stat().st_size / MiB:.1f} MiB), runtime {name}")
    factory = _factory(name)
    await factory.start()
    activity_id = new_id()
    workdir = home / "activities" / activity_id
    workdir.mkdir(parents=True)
    activity: Activity | None = None
    try:
        exe = await factory.create(ActivitySpec(activity_id, path, digest, workdir, limits))
        activity = Activity(
            activity_id,
            exe,
            TransferService(allow_local_files=True),
            settings=ExecutorSettings(command_timeout=timeout),
        )
        batch = activity.exec(commands)
        async for event in batch.follow():
            if as_json:
                click.echo(json.dumps({"event": event.to_wire()}))
            else:
                click.echo(_describe(event.index, event.kind))
        ok = True
        for result in batch.results:
            if as_json:
                click.echo(json.dumps({"result": result.to_wire()}))
            elif result.result is CommandOutcome.ERROR:
                click.echo(f"[{result.index}] Error: {result.message}")
            ok = ok and result.result is CommandOutcome.OK
        return ok
    finally:
        if activity is not None:
            await activity.destroy()
        await factory.close()
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)


def _describe(index: int, kind: dict[str, Any]) -> str:
    ((what, detail),) = kind.items()
    if what == "started":
        ((name, args),) = detail["command"].items()
        shown = (
            " ".join([args.get("entry_point", ""), *args.get("args", [])]).strip() if name == "run" else ""
        )
        return f"[{index}] {name} {shown}".rstrip()
    if what in ("stdout", "stderr"):
        text = detail if isinstance(detail, str) else bytes(detail).decode("utf-8", "replace")
        return "\n".join(f"[{index}] {what}: {line}" for line in text.rstrip("\n").split("\n"))
    if what == "finished":
        suffix = f" ({detail['message']})" if detail.get("message") else ""
        return f"[{index}] finished, exit code {detail['return_code']}{suffix}"
    return f"[{index}] {what}: {detail}"
