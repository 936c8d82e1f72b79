"""Packages: loading a docker save archive once per hash, refusing bad ones, the image cache."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from exeunits.errors import PackageError
from exeunits.payloads.image import BuiltImage, build_busybox_image, sha3_224_file
from exeunits.runtime.base import ActivitySpec
from exeunits.runtime.docker import ACTIVITY_LABEL, OWNER_LABEL, VOLUMES_LABEL, DockerRuntimeFactory

from .conftest import Activities, Output


def tagged(engine: Any, name: str) -> bool:
    try:
        engine.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def rewrite_manifest(source: Path, target: Path, repo_tags: list[str]) -> BuiltImage:
    with tarfile.open(source) as original, tarfile.open(target, "w") as copy:
        for member in original:
            data = original.extractfile(member) if member.isreg() else None
            if member.name == "manifest.json" and data is not None:
                manifest = json.loads(data.read())
                manifest[0]["RepoTags"] = repo_tags
                body = json.dumps(manifest).encode()
                member.size = len(body)
                data = io.BytesIO(body)
            copy.addfile(member, data)
    return BuiltImage(target, sha3_224_file(target), "", target.stat().st_size)


async def test_same_package_is_loaded_once(
    busybox_image: BuiltImage, owner: str, tmp_path: Path, docker_engine: Any
) -> None:
    # Start from a cold cache: an earlier test may have loaded the session's package already.
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_engine.images.remove(f"golem-pkg:{busybox_image.sha3_224}")
    async with DockerRuntimeFactory(owner) as factory:
        activities = Activities(factory, busybox_image, tmp_path)
        first, second = await asyncio.gather(activities.started(), activities.started())
        assert factory.loads == 1
        assert first.container_id != second.container_id
        assert (await second.run("/bin/echo", ["hi"], Output())).stdout == b"hi\n"

    # A restarted provider finds the tagged image and does not load it again either.
    async with DockerRuntimeFactory(owner) as restarted:
        again = await restarted.create(activities.spec())
        await again.terminate()
        assert restarted.loads == 0


async def test_lru_images_are_evicted_over_the_cap(
    busybox_image: BuiltImage, owner: str, tmp_path: Path, docker_engine: Any
) -> None:
    other = build_busybox_image(tmp_path / "other", tag="golem-busybox-other:test", extra_files={"/x": b"x"})
    try:
        await check_lru_eviction(busybox_image, other, owner, tmp_path, docker_engine)
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            docker_engine.images.remove(other.tag, force=True)


async def check_lru_eviction(
    busybox_image: BuiltImage, other: BuiltImage, owner: str, tmp_path: Path, docker_engine: Any
) -> None:
    async with DockerRuntimeFactory(owner, image_cache_bytes=1) as factory:
        activities = Activities(factory, busybox_image, tmp_path)
        first = await factory.create(activities.spec())
        assert tagged(docker_engine, f"golem-pkg:{busybox_image.sha3_224}")  # held: kept over the cap
        await first.terminate()
        second = await factory.create(activities.spec(image=other))

        assert not tagged(docker_engine, f"golem-pkg:{busybox_image.sha3_224}")
        assert tagged(docker_engine, f"golem-pkg:{other.sha3_224}")
        await second.terminate()
        # Evicted means loaded again when asked for.
        loads = factory.loads
        await (await factory.create(activities.spec())).terminate()
        assert factory.loads == loads + 1


@pytest.mark.parametrize("content", [b"not a tar at all" * 100, b""])
async def test_malformed_archive_is_a_package_error(
    activities: Activities, tmp_path: Path, content: bytes
) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(content)
    spec = activities.spec(image=BuiltImage(bad, sha3_224_file(bad), "", len(content)))
    with pytest.raises(PackageError):
        await activities.factory.create(spec)


@pytest.mark.parametrize("package_hash", ["", "abc", "Z" * 56, "0" * 55 + ":"])
async def test_malformed_hash_is_a_package_error(activities: Activities, package_hash: str) -> None:
    spec = dataclasses.replace(activities.spec(), package_hash=package_hash)
    with pytest.raises(PackageError):
        await activities.factory.create(spec)


async def test_tar_without_image_is_a_package_error(activities: Activities, tmp_path: Path) -> None:
    bad = tmp_path / "empty-image.tar"
    with tarfile.open(bad, "w") as tar:
        body = b'[{"Config": "missing.json", "RepoTags": null, "Layers": ["nope/layer.tar"]}]'
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    spec = activities.spec(image=BuiltImage(bad, sha3_224_file(bad), "", bad.stat().st_size))
    with pytest.raises(PackageError):
        await activities.factory.create(spec)


async def test_names_inside_a_package_are_ignored(
    activities: Activities, busybox_image: BuiltImage, tmp_path: Path, docker_engine: Any
) -> None:
    # A package claiming another package's cache tag, and an operator's image name.
    victim = "0" * 56
    claimed = [f"golem-pkg:{victim}", "operator-image:latest"]
    hostile = rewrite_manifest(busybox_image.archive, tmp_path / "hostile.tar", claimed)

    runtime = await activities.factory.create(activities.spec(image=hostile))

    assert not tagged(docker_engine, claimed[0]) and not tagged(docker_engine, claimed[1])
    assert tagged(docker_engine, f"golem-pkg:{hostile.sha3_224}")
    await runtime.terminate()


async def test_start_reaps_only_its_own_owners_leftovers(
    busybox_image: BuiltImage, owner: str, tmp_path: Path, docker_engine: Any
) -> None:
    # What a provider that crashed mid-activity leaves: its labelled container and its folders.
    async with DockerRuntimeFactory(owner) as factory:  # makes sure the package is loaded
        spec = ActivitySpec("left-behind", busybox_image.archive, busybox_image.sha3_224, tmp_path / "a")
        await (await factory.create(spec)).terminate()
    folders_root = tmp_path / "a" / "vm-volumes"
    folders_root.mkdir(parents=True)
    image = docker_engine.images.get(f"golem-pkg:{busybox_image.sha3_224}")
    mine = docker_engine.containers.create(
        image.id, ["true"], labels={OWNER_LABEL: owner, ACTIVITY_LABEL: "a", VOLUMES_LABEL: str(folders_root)}
    )
    theirs = docker_engine.containers.create(image.id, ["true"], labels={OWNER_LABEL: owner + "-other"})
    try:
        async with DockerRuntimeFactory(owner):
            pass
        with pytest.raises(docker.errors.NotFound):
            docker_engine.containers.get(mine.id)
        assert not folders_root.exists()
        docker_engine.containers.get(theirs.id)  # still there
    finally:
        theirs.remove(force=True)


def test_busybox_image_is_reused_when_current(busybox_image: BuiltImage) -> None:
    again = build_busybox_image(busybox_image.archive.parent)
    assert again == busybox_image
    assert sha3_224_file(busybox_image.archive) == busybox_image.sha3_224
