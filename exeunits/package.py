"""Packages: fetch once, verify by sha3-224 before anything uses them, cache by hash.

A demand names its package as ``hash:sha3:<sha3-224 hex>:<url>`` (``golem.srv.comp.task_package``).
:class:`PackageStore` downloads it (streaming, hashing as it goes), refuses it if the digest differs,
and keeps verified files under ``<cache>/<hash>`` with a size cap and least-recently-used eviction.
Concurrent fetches of one hash share one download.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from exeunits.errors import HashMismatchError, PackageError

log = logging.getLogger(__name__)

_HEX56 = re.compile(r"^[0-9a-f]{56}$")
CHUNK = 1024 * 1024

ProgressCallback = Callable[[int, int | None], None]
"""Called with (bytes so far, total bytes if the server said)."""


@dataclass(frozen=True)
class PackageRef:
    sha3: str
    url: str

    @classmethod
    def parse(cls, text: str) -> PackageRef:
        """Parse ``hash:sha3:<hex>:<url>`` (the URL may itself contain colons)."""
        parts = text.split(":", 3)
        if len(parts) != 4 or parts[0] != "hash" or parts[1] != "sha3":
            raise PackageError(f"not a package reference (hash:sha3:<sha3-224 hex>:<url>): {text!r}")
        digest = parts[2].lower()
        if not _HEX56.match(digest):
            raise PackageError(f"package hash is not 56 hex digits (sha3-224): {parts[2]!r}")
        if not parts[3].startswith(("http://", "https://")):
            raise PackageError(f"package URL must be http(s): {parts[3]!r}")
        return cls(digest, parts[3])

    def __str__(self) -> str:
        return f"hash:sha3:{self.sha3}:{self.url}"


def sha3_224_file(path: Path) -> str:
    digest = hashlib.sha3_224()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class PackageStore:
    """A verified, size-capped, LRU cache of packages by sha3-224."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        max_cache_bytes: int = 20 * 1024**3,
        max_package_bytes: int = 8 * 1024**3,
        timeout: float = 3600.0,
    ) -> None:
        self.cache_dir = cache_dir
        self.max_cache_bytes = max_cache_bytes
        self.max_package_bytes = max_package_bytes
        self.timeout = timeout
        self._locks: dict[str, asyncio.Lock] = {}
        self.downloads = 0  # packages fetched from the network so far

    def path_of(self, sha3: str) -> Path:
        return self.cache_dir / sha3

    async def fetch(self, ref: PackageRef, progress: ProgressCallback | None = None) -> Path:
        """The verified local file of ``ref``, downloading it if it is not cached yet."""
        lock = self._locks.setdefault(ref.sha3, asyncio.Lock())
        async with lock:
            target = self.path_of(ref.sha3)
            if target.exists():
                os.utime(target)  # mark as recently used
                return target
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            try:
                actual = await self._download(ref.url, partial, progress)
                if actual != ref.sha3:
                    raise HashMismatchError(
                        f"package from {ref.url} hashes to sha3-224 {actual}, "
                        f"not the {ref.sha3} it was named by; it was discarded"
                    )
                partial.replace(target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
            self.downloads += 1
            await asyncio.to_thread(self._evict, keep=target)
            return target

    async def fetch_unnamed(self, url: str, progress: ProgressCallback | None = None) -> tuple[Path, str]:
        """Download a package no hash was given for; it is cached under the hash of what arrived."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        partial = self.cache_dir / f"{os.getpid()}-{id(url)}.partial"
        try:
            digest = await self._download(url, partial, progress)
            target = self.path_of(digest)
            partial.replace(target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        self.downloads += 1
        await asyncio.to_thread(self._evict, keep=target)
        return target, digest

    async def add_file(self, path: Path) -> tuple[Path, str]:
        """Put a local file in the cache (for ``golem exeunit run`` on a file); returns (path, hash)."""
        if not path.is_file():
            raise PackageError(f"no package file at {path}")
        digest = await asyncio.to_thread(sha3_224_file, path)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        target = self.path_of(digest)
        if not target.exists():
            partial = target.with_suffix(".partial")
            await asyncio.to_thread(_copy, path, partial)
            partial.replace(target)
        return target, digest

    async def _download(self, url: str, dest: Path, progress: ProgressCallback | None) -> str:
        digest = hashlib.sha3_224()
        received = 0
        timeout = aiohttp.ClientTimeout(total=self.timeout, sock_read=60)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as response:
                if response.status != 200:
                    raise PackageError(f"cannot download package: {url} answered HTTP {response.status}")
                total = response.content_length
                if total is not None and total > self.max_package_bytes:
                    raise PackageError(
                        f"package is {total} bytes, over the limit of {self.max_package_bytes}"
                    )
                with dest.open("wb") as fh:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        received += len(chunk)
                        if received > self.max_package_bytes:
                            raise PackageError(f"package is over the limit of {self.max_package_bytes} bytes")
                        digest.update(chunk)
                        fh.write(chunk)
                        if progress is not None:
                            progress(received, total)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PackageError(f"cannot download package from {url}: {exc or type(exc).__name__}") from exc
        return digest.hexdigest()

    def _evict(self, keep: Path) -> None:
        entries = [p for p in self.cache_dir.iterdir() if p.is_file() and _HEX56.match(p.name)]
        total = sum(p.stat().st_size for p in entries)
        for path in sorted(entries, key=lambda p: p.stat().st_mtime):
            if total <= self.max_cache_bytes:
                break
            if path == keep:
                continue
            size = path.stat().st_size
            path.unlink(missing_ok=True)
            total -= size
            log.info("evicted package %s from the cache (%d bytes)", path.name, size)


def _copy(src: Path, dest: Path) -> None:
    with src.open("rb") as fin, dest.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            fout.write(chunk)
