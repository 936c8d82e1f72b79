"""Client side of the package registry, for ``golem packages``: hash a file, stream it up, list.

The file's SHA3-224 is computed locally first and sent with the upload, so the market node refuses
bytes that changed on the way (or on disk meanwhile) instead of storing them under another name.
The body is streamed from disk in chunks with its length declared, so a node can refuse a too-large
package before it is sent and memory use does not grow with the file.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from market.hub.registry import RegistryError

CHUNK_BYTES = 1024 * 1024
DEFAULT_MARKET_URL = "http://127.0.0.1:7470"

Progress = Callable[[str, int, int], None]
"""Called with (phase, bytes done, bytes in total); phase is "hashing" or "uploading"."""


class RegistryClientError(RegistryError):
    """The market node refused a request, could not be reached, or answered something unexpected."""


def registry_base(market_url: str) -> URL:
    """The node's HTTP base from what users have at hand: ``http(s)://HOST:PORT`` or the ``ws://…/ws``
    URL daemons are given."""
    try:
        url = URL(market_url.strip())
    except ValueError as exc:
        raise RegistryClientError(f"not a URL: {market_url!r}") from exc
    schemes = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
    if url.scheme not in schemes or not url.host:
        raise RegistryClientError(
            f"expected the market node as http://HOST:PORT (or its ws://HOST:PORT/ws), not {market_url!r}"
        )
    path = url.path.rstrip("/")
    if url.scheme in ("ws", "wss") and path.endswith("/ws"):
        path = path[: -len("/ws")]
    return url.with_scheme(schemes[url.scheme]).with_path(path or "/").with_query(None).with_fragment(None)


def sha3_224_of(path: Path, progress: Progress | None = None) -> str:
    """The SHA3-224 hex digest of a file, read in chunks (blocking; call it in a thread)."""
    hasher = hashlib.sha3_224()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            hasher.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress("hashing", done, total)
    return hasher.hexdigest()


async def _file_chunks(path: Path, size: int, progress: Progress | None) -> AsyncIterator[bytes]:
    done = 0
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            done += len(chunk)
            if progress is not None:
                progress("uploading", done, size)
            yield chunk


async def _answer(response: aiohttp.ClientResponse, what: str) -> Any:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        body = None
    if response.status >= 400:
        message = body.get("message") if isinstance(body, dict) else None
        raise RegistryClientError(f"{what} refused ({response.status}): {message or response.reason}")
    if body is None:
        raise RegistryClientError(f"{what}: the market node's answer is not JSON")
    return body


async def push(
    market_url: str,
    path: Path,
    *,
    token: str | None = None,
    tag: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Upload the file at ``path`` to the market node's registry; its JSON answer (hash, url, size, ...)."""
    if not path.is_file():
        raise RegistryClientError(f"not a file: {path}")
    size = path.stat().st_size
    digest = await asyncio.to_thread(sha3_224_of, path, progress)
    base = registry_base(market_url)
    query = {"hash": digest, "name": path.name}
    if tag:
        query["tag"] = tag
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                base / "packages", params=query, data=_file_chunks(path, size, progress), headers=headers
            ) as response,
        ):
            answer = await _answer(response, "upload")
    except aiohttp.ClientError as exc:
        raise RegistryClientError(f"cannot upload to {base}: {exc}") from exc
    if not isinstance(answer, dict) or answer.get("hash") != digest:
        raise RegistryClientError(f"the market node stored something else than {digest}: {answer!r}")
    return answer


async def list_packages(market_url: str) -> list[dict[str, Any]]:
    """What the market node's registry holds."""
    base = registry_base(market_url)
    try:
        async with aiohttp.ClientSession() as session, session.get(base / "packages") as response:
            answer = await _answer(response, "listing")
    except aiohttp.ClientError as exc:
        raise RegistryClientError(f"cannot reach {base}: {exc}") from exc
    if not isinstance(answer, list):
        raise RegistryClientError(f"unexpected listing from {base}: {answer!r}")
    return answer
