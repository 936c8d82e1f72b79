"""Fixtures for the ``wasmtime`` runtime tests: a real engine, real modules, real folders."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exeunits.payloads.wasm import build_module, build_package_zip
from exeunits.runtime.base import ActivitySpec, DeployOptions, ResourceLimits, StreamName
from exeunits.runtime.wasm import WasmRuntime, WasmRuntimeFactory


def run_threads() -> list[threading.Thread]:
    """Threads running (or about to run) a wasm command."""
    return [thread for thread in threading.enumerate() if thread.name.startswith("wasm-run-")]


@dataclass
class Output:
    """An ``on_output`` callback that records what it is given."""

    chunks: list[tuple[StreamName, bytes]] = field(default_factory=list)

    def __call__(self, stream: StreamName, data: bytes) -> None:
        self.chunks.append((stream, data))

    def joined(self, stream: StreamName) -> bytes:
        return b"".join(data for name, data in self.chunks if name == stream)


class Activities:
    """Makes packages and started exe units under one test's temporary folder."""

    def __init__(self, factory: WasmRuntimeFactory, root: Path) -> None:
        self.factory = factory
        self.root = root
        self.runtimes: list[WasmRuntime] = []
        (root / "packages").mkdir()

    def module(self, name: str, file_name: str | None = None) -> Path:
        path = self.root / "packages" / (file_name or f"{name}.wasm")
        path.write_bytes(build_module(name))
        return path

    def raw(self, file_name: str, content: bytes) -> Path:
        path = self.root / "packages" / file_name
        path.write_bytes(content)
        return path

    def zip(
        self,
        file_name: str,
        modules: Mapping[str, str | bytes],
        manifest: Mapping[str, object] | str | None,
    ) -> Path:
        return build_package_zip(self.root / "packages" / file_name, modules, manifest)

    def spec(
        self, package: Path, *, limits: ResourceLimits | None = None, name: str | None = None
    ) -> ActivitySpec:
        activity_id = name or f"activity-{len(self.runtimes) + 1}"
        return ActivitySpec(
            activity_id=activity_id,
            package_path=package,
            package_hash=hashlib.sha3_224(package.read_bytes()).hexdigest(),
            workdir=self.root / activity_id,
            limits=limits or ResourceLimits(),
        )

    async def start(
        self,
        package: Path,
        *,
        limits: ResourceLimits | None = None,
        env: dict[str, str] | None = None,
        volumes: tuple[str, ...] = (),
        name: str | None = None,
    ) -> WasmRuntime:
        runtime = await self.factory.create(self.spec(package, limits=limits, name=name))
        self.runtimes.append(runtime)
        await runtime.deploy(DeployOptions(env=env or {}, volumes=volumes))
        await runtime.start([])
        return runtime


@pytest.fixture
async def factory() -> AsyncIterator[WasmRuntimeFactory]:
    async with WasmRuntimeFactory() as wasm:
        yield wasm
    assert not wasm.ticker_running


@pytest.fixture
async def activities(factory: WasmRuntimeFactory, tmp_path: Path) -> AsyncIterator[Activities]:
    made = Activities(factory, tmp_path)
    yield made
    for runtime in made.runtimes:
        await runtime.terminate()
    assert not run_threads()
