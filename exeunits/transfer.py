"""File transfers of the ``transfer`` command.

URLs: ``container:/path`` (a file inside one of the activity's volumes, resolved to its host folder;
nothing outside a volume is reachable), ``http(s)://`` (GET to download, PUT to upload), and
``gftp://`` through a :class:`GftpResolver` that the daemons supply (they carry the bytes over the
market relay). ``file://`` is allowed only where the owner opts in (``golem exeunit run`` on a payload
author's own machine), never in a daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiohttp

from exeunits.errors import TransferError

CHUNK = 1024 * 1024


class GftpResolver(Protocol):
    """Moves files to and from ``gftp://`` URLs (the requestor's published files)."""

    async def download(self, url: str, dest: Path) -> None: ...

    async def upload(self, src: Path, url: str) -> None: ...


def container_path(url: str, volumes: Mapping[str, Path]) -> Path:
    """The host file behind ``container:/path``, refusing anything outside the activity's volumes.

    The path is normalised first (so ``/golem/input/../../etc/passwd`` is ``/etc/passwd`` and is
    refused), and the host result is checked after resolving symlinks, so a link planted in a volume
    cannot point the transfer outside it either.
    """
    raw = url.removeprefix("container:")
    if not raw.startswith("/"):
        raise TransferError(f"container path must be absolute: {url!r}")
    if "\x00" in raw:
        raise TransferError("container path contains a NUL byte")
    path = PurePosixPath(os.path.normpath(raw))
    best: tuple[PurePosixPath, Path] | None = None
    for inside, host in volumes.items():
        mount = PurePosixPath(inside)
        if (path == mount or mount in path.parents) and (
            best is None or len(mount.parts) > len(best[0].parts)
        ):
            best = (mount, host)
    if best is None:
        known = ", ".join(sorted(volumes)) or "none"
        raise TransferError(f"{raw} is not inside a volume of this activity (volumes: {known})")
    mount, host = best
    relative = path.relative_to(mount)
    root = host.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise TransferError(f"{raw} resolves outside its volume")
    return target


class TransferService:
    """Performs transfers for one exe unit host; one instance may serve many activities."""

    def __init__(
        self,
        *,
        gftp: GftpResolver | None = None,
        allow_local_files: bool = False,
        max_bytes: int = 16 * 1024**3,
        timeout: float = 3600.0,
    ) -> None:
        self.gftp = gftp
        self.allow_local_files = allow_local_files
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def transfer(self, source: str, destination: str, volumes: Mapping[str, Path]) -> None:
        """Copy ``source`` to ``destination``; on failure the destination is left as it was."""
        src_kind, dst_kind = _scheme(source), _scheme(destination)
        for kind, url in ((src_kind, source), (dst_kind, destination)):
            if kind == "file" and not self.allow_local_files:
                raise TransferError(f"file:// URLs are not allowed here: {url}")
            if kind == "gftp" and self.gftp is None:
                raise TransferError("gftp:// transfers need a daemon; none is attached to this exe unit")
            if kind is None:
                raise TransferError(f"unsupported transfer URL {url!r} (container:, http(s)://, gftp://)")
        if src_kind != "container" and dst_kind != "container":
            raise TransferError("one side of a transfer must be a container: path")
        if src_kind == "container":
            src_path = container_path(source, volumes)
            if not src_path.is_file():
                raise TransferError(f"no file at {source}")
            await self._upload(src_path, destination, dst_kind, volumes)
        else:
            dst_path = container_path(destination, volumes)
            await self._download(source, src_kind, dst_path)

    async def _download(self, url: str, kind: str | None, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".transfer-")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if kind in ("http", "https"):
                await self._http_get(url, tmp)
            elif kind == "gftp":
                assert self.gftp is not None
                await self.gftp.download(url, tmp)
            elif kind == "file":
                await asyncio.to_thread(shutil.copyfile, _local_path(url), tmp)
            tmp.replace(dest)
        except OSError as exc:
            raise TransferError(f"transfer from {url} failed: {exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    async def _upload(self, src: Path, url: str, kind: str | None, volumes: Mapping[str, Path]) -> None:
        try:
            if kind in ("http", "https"):
                await self._http_put(src, url)
            elif kind == "gftp":
                assert self.gftp is not None
                await self.gftp.upload(src, url)
            elif kind == "file":
                await asyncio.to_thread(shutil.copyfile, src, _local_path(url))
            elif kind == "container":
                dest = container_path(url, volumes)
                dest.parent.mkdir(parents=True, exist_ok=True)
                await asyncio.to_thread(shutil.copyfile, src, dest)
        except OSError as exc:
            raise TransferError(f"transfer to {url} failed: {exc}") from exc

    async def _http_get(self, url: str, dest: Path) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout, sock_read=60)
        received = 0
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as response:
                if response.status != 200:
                    raise TransferError(f"GET {url} answered HTTP {response.status}")
                with dest.open("wb") as fh:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        received += len(chunk)
                        if received > self.max_bytes:
                            raise TransferError(f"download exceeds the limit of {self.max_bytes} bytes")
                        fh.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransferError(f"GET {url} failed: {exc or type(exc).__name__}") from exc

    async def _http_put(self, src: Path, url: str) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            with src.open("rb") as fh:
                async with aiohttp.ClientSession(timeout=timeout) as http, http.put(url, data=fh) as response:
                    if response.status >= 300:
                        raise TransferError(f"PUT {url} answered HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransferError(f"PUT {url} failed: {exc or type(exc).__name__}") from exc


def _scheme(url: str) -> str | None:
    if url.startswith("container:"):
        return "container"
    scheme = urlsplit(url).scheme
    return scheme if scheme in ("http", "https", "gftp", "file") else None


def _local_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))
