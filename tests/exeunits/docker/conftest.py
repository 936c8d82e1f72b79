"""Real Docker for the ``vm`` runtime's tests: one busybox package per session, one owner per test.

Every test here talks to the local engine; the folder is skipped (with the reason) only when the
engine cannot be reached. Limits are small so that the safety tests (fork bomb, memory hog, output
flood) finish in a second or two each.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from exeunits.payloads.image import BuiltImage, build_busybox_image
from exeunits.runtime.base import ActivitySpec, DeployOptions, MiB, ResourceLimits, StreamName
from exeunits.runtime.docker import OWNER_LABEL, DockerRuntime, DockerRuntimeFactory

SMALL = ResourceLimits(cpu_threads=1.0, memory_bytes=64 * MiB, pids=64, output_cap_bytes=1 * MiB)


def _engine_problem() -> str | None:
    try:
        client = docker.from_env()
    except docker.errors.DockerException as exc:
        return str(exc)
    try:
        client.ping()
    except Exception as exc:
        return str(exc)
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    problem = _engine_problem()
    if problem is not None:
        pytest.skip(f"Docker engine not reachable ({problem}); the vm runtime tests need one")
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _needs_docker(request: pytest.FixtureRequest) -> None:
    """Skip the folder's Docker tests when there is no engine (modules opt out with NEEDS_DOCKER)."""
    if getattr(request.module, "NEEDS_DOCKER", True):
        request.getfixturevalue("docker_engine")


@pytest.fixture(scope="session")
def busybox_image(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    built = build_busybox_image(tmp_path_factory.mktemp("packages"))
    image_id = docker_engine.images.get(built.tag).id
    yield built
    # Every name the session gave this image (its tag, its golem-pkg cache tags) goes with it.
    with contextlib.suppress(docker.errors.DockerException):
        docker_engine.images.remove(image_id, force=True)


@pytest.fixture
def owner(docker_engine: Any) -> Iterator[str]:
    """A provider identity of this test alone; whatever it leaves behind is removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    for container in docker_engine.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={name}"}):
        container.remove(force=True)


@pytest.fixture
async def factory(owner: str) -> AsyncIterator[DockerRuntimeFactory]:
    async with DockerRuntimeFactory(owner) as started:
        yield started


@dataclass
class Output:
    """What a run's callback received, in order."""

    chunks: list[tuple[StreamName, bytes]] = field(default_factory=list)

    def __call__(self, stream: StreamName, chunk: bytes) -> None:
        self.chunks.append((stream, chunk))

    def joined(self, stream: StreamName) -> bytes:
        return b"".join(chunk for name, chunk in self.chunks if name == stream)


@dataclass
class Activities:
    """Makes started activities of the session's busybox package under a test's tmp folder."""

    factory: DockerRuntimeFactory
    image: BuiltImage
    root: Path
    made: int = 0

    def spec(self, limits: ResourceLimits = SMALL, image: BuiltImage | None = None) -> ActivitySpec:
        self.made += 1
        activity_id = f"act-{self.made}-{uuid.uuid4().hex[:8]}"
        package = image or self.image
        return ActivitySpec(
            activity_id=activity_id,
            package_path=package.archive,
            package_hash=package.sha3_224,
            workdir=self.root / activity_id,
            limits=limits,
        )

    async def create(self, limits: ResourceLimits = SMALL) -> DockerRuntime:
        return await self.factory.create(self.spec(limits))

    async def started(
        self, limits: ResourceLimits = SMALL, options: DeployOptions | None = None
    ) -> DockerRuntime:
        runtime = await self.create(limits)
        await runtime.deploy(options or DeployOptions())
        await runtime.start([])
        return runtime


@pytest.fixture
def activities(factory: DockerRuntimeFactory, busybox_image: BuiltImage, tmp_path: Path) -> Activities:
    return Activities(factory, busybox_image, tmp_path)
