"""The package store against a real HTTP server: verify before use, cache by hash, evict LRU."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from exeunits.errors import HashMismatchError, PackageError
from exeunits.package import PackageRef, PackageStore
from tests.exeunits.conftest import FileServer


def sha3(data: bytes) -> str:
    return hashlib.sha3_224(data).hexdigest()


def test_reference_parsing() -> None:
    ref = PackageRef.parse("hash:sha3:" + "ab" * 28 + ":http://host:8000/a:b.tar")
    assert ref.sha3 == "ab" * 28 and ref.url == "http://host:8000/a:b.tar"
    assert str(ref) == "hash:sha3:" + "ab" * 28 + ":http://host:8000/a:b.tar"
    for bad in (
        "sha3:abc:http://x",
        "hash:sha3:abc:http://x",
        "hash:md5:" + "a" * 56 + ":http://x",
        "hash:sha3:" + "a" * 56 + ":ftp://x",
    ):
        with pytest.raises(PackageError):
            PackageRef.parse(bad)


async def test_fetch_verifies_and_caches(tmp_path: Path, file_server: FileServer) -> None:
    data = os.urandom(300_000)
    file_server.files["pkg"] = data
    store = PackageStore(tmp_path / "cache")
    ref = PackageRef(sha3(data), f"{file_server.url}/pkg")
    seen: list[int] = []
    path = await store.fetch(ref, lambda done, total: seen.append(done))
    assert path.read_bytes() == data and seen[-1] == len(data)
    assert await store.fetch(ref) == path
    assert file_server.gets == 1 and store.downloads == 1


async def test_wrong_hash_is_never_kept(tmp_path: Path, file_server: FileServer) -> None:
    file_server.files["pkg"] = b"evil bytes"
    store = PackageStore(tmp_path / "cache")
    ref = PackageRef(sha3(b"good bytes"), f"{file_server.url}/pkg")
    with pytest.raises(HashMismatchError, match="discarded"):
        await store.fetch(ref)
    assert list((tmp_path / "cache").iterdir()) == []


async def test_http_errors_and_size_limit(tmp_path: Path, file_server: FileServer) -> None:
    store = PackageStore(tmp_path / "cache", max_package_bytes=1000)
    with pytest.raises(PackageError, match="HTTP 404"):
        await store.fetch(PackageRef("a" * 56, f"{file_server.url}/missing"))
    file_server.files["big"] = b"x" * 5000
    with pytest.raises(PackageError, match="limit"):
        await store.fetch(PackageRef(sha3(b"x" * 5000), f"{file_server.url}/big"))
    with pytest.raises(PackageError, match="cannot download"):
        await store.fetch(PackageRef("a" * 56, "http://127.0.0.1:9/nothing-listens-here"))
    assert list((tmp_path / "cache").iterdir()) == []


async def test_lru_eviction(tmp_path: Path, file_server: FileServer) -> None:
    store = PackageStore(tmp_path / "cache", max_cache_bytes=250_000)
    refs = []
    for name in ("a", "b", "c"):
        data = os.urandom(100_000)
        file_server.files[name] = data
        refs.append(PackageRef(sha3(data), f"{file_server.url}/{name}"))
    first = await store.fetch(refs[0])
    second = await store.fetch(refs[1])
    os.utime(second, (1, 1))  # b is now the least recently used
    os.utime(first, (2, 2))
    await store.fetch(refs[2])
    assert first.exists() and not second.exists() and store.path_of(refs[2].sha3).exists()


async def test_unnamed_and_local_packages(tmp_path: Path, file_server: FileServer) -> None:
    file_server.files["pkg"] = b"module bytes"
    store = PackageStore(tmp_path / "cache")
    path, digest = await store.fetch_unnamed(f"{file_server.url}/pkg")
    assert digest == sha3(b"module bytes") and path.read_bytes() == b"module bytes"
    local = tmp_path / "local.wasm"
    local.write_bytes(b"\x00asm")
    path, digest = await store.add_file(local)
    assert digest == sha3(b"\x00asm") and path.parent == tmp_path / "cache"
    with pytest.raises(PackageError, match="no package file"):
        await store.add_file(tmp_path / "nope")
